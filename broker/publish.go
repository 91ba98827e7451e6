package broker

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/rewind-broker/rewind/protocol"
	"github.com/rewind-broker/rewind/registry"
)

// PublishResult says what happened to one published datagram.
type PublishResult struct {
	Terminal uint32 `json:"terminal"`
	Sequence uint64 `json:"sequence"`
	// State is the terminal's state when it was stored: active, idle or offline.
	State string `json:"state"`
	// Push is the wake outcome: not_needed (active), sent, already_pending, no_push_channel,
	// token_invalid, retrying, rejected, overloaded, queued (not known within the wait).
	Push string `json:"push"`
}

func (srv *Server) publishEnabled(w http.ResponseWriter) bool {
	if srv.pushCfg.Store == nil {
		apiError(w, http.StatusServiceUnavailable, "store-and-forward is not enabled on this broker")
		return false
	}
	return true
}

// apiPublishDatagram: POST /v1/terminals/{id}/datagrams with a raw Rewind datagram as body.
func (srv *Server) apiPublishDatagram(w http.ResponseWriter, r *http.Request) {
	if !srv.publishEnabled(w) {
		return
	}
	id, err := parseID(r.PathValue("id"))
	if err != nil {
		apiError(w, http.StatusBadRequest, "%v", err)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(srv.cfg.MaxDatagram)))
	if err != nil {
		apiError(w, http.StatusRequestEntityTooLarge, "datagram larger than %d bytes", srv.cfg.MaxDatagram)
		return
	}
	d, err := protocol.Decode(body)
	if err != nil {
		apiError(w, http.StatusBadRequest, "%v", err)
		return
	}
	if d.Type == protocol.TypeMessageText {
		if _, err := protocol.DecodeTextMessage(d.Data); err != nil {
			apiError(w, http.StatusBadRequest, "%v", err)
			return
		}
	}
	// A terminal with a live session is registered (deleting one closes its session), as in
	// resolve: the common case needs no registry read.
	if srv.hub.session(id) == nil {
		if _, err := srv.store.GetTerminal(r.Context(), id); err != nil {
			srv.storeError(w, err)
			return
		}
	}
	d.Flags &^= protocol.FlagBuffering
	d.Number = 0
	res, err := srv.publish(r.Context(), id, d.MustEncode())
	if err != nil {
		srv.log.Error("publish failed", "terminal", id, "err", err)
		apiError(w, http.StatusServiceUnavailable, "not stored: %v", err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (srv *Server) publish(ctx context.Context, terminal uint32, raw []byte) (PublishResult, error) {
	e, state, outcome, err := srv.storeFor(ctx, terminal, raw, true)
	if err != nil {
		return PublishResult{}, err
	}
	return PublishResult{Terminal: terminal, Sequence: e.Seq, State: state, Push: outcome}, nil
}

type userText struct {
	From uint32 `json:"from"`
	Text string `json:"text"`
}

// apiPublishUserText: POST /v1/users/{dmrid}/texts {"from": …, "text": …}: a private text to
// every terminal of the DMR user.
func (srv *Server) apiPublishUserText(w http.ResponseWriter, r *http.Request) {
	if !srv.publishEnabled(w) {
		return
	}
	user, err := parseID(r.PathValue("dmrid"))
	if err != nil {
		apiError(w, http.StatusBadRequest, "%v", err)
		return
	}
	var req userText
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAdminBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		apiError(w, http.StatusBadRequest, "body: %v", err)
		return
	}
	if req.From == 0 || req.Text == "" {
		apiError(w, http.StatusBadRequest, "from and text are required")
		return
	}
	data, err := protocol.TextMessage{Source: req.From, Destination: user, Option: protocol.OptionPrivate, Text: req.Text}.Encode()
	if err == nil && protocol.HeaderSize+len(data) > srv.cfg.MaxDatagram {
		err = errors.New("text too long for this broker's datagram limit")
	}
	if err != nil {
		apiError(w, http.StatusBadRequest, "%v", err)
		return
	}
	terminals, err := srv.resolve(r.Context(), user)
	if err != nil {
		srv.storeError(w, err)
		return
	}
	if len(terminals) == 0 {
		srv.storeError(w, registry.ErrNotFound)
		return
	}
	raw := protocol.Datagram{Type: protocol.TypeMessageText, Data: data}.MustEncode()
	out := struct {
		Results []PublishResult `json:"results"`
	}{}
	for _, t := range terminals {
		res, err := srv.publish(r.Context(), t, raw)
		if err != nil {
			srv.log.Error("publish failed", "terminal", t, "err", err)
			apiError(w, http.StatusServiceUnavailable, "not stored for terminal %d: %v", t, err)
			return
		}
		out.Results = append(out.Results, res)
	}
	writeJSON(w, http.StatusOK, out)
}
