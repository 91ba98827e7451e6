package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/rewind-broker/rewind/registry"
)

// Operator actions on one terminal: kick, detach, rotate the password. Each answers 404 for a
// terminal that is not registered, and logs what it did (never a secret).

// decodeJSONBody decodes a JSON request body of at most maxAdminBody bytes into v, refusing
// unknown fields and anything after the object.
func decodeJSONBody(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAdminBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("body: more than one JSON value")
	}
	return nil
}

// terminalFromPath parses {id} and checks that the terminal is registered; it has answered
// the request when ok is false.
func (srv *Server) terminalFromPath(w http.ResponseWriter, r *http.Request) (t registry.Terminal, ok bool) {
	id, err := parseID(r.PathValue("id"))
	if err != nil {
		apiError(w, http.StatusBadRequest, "%v", err)
		return t, false
	}
	t, err = srv.store.GetTerminal(r.Context(), id)
	if err != nil {
		srv.storeError(w, err)
		return t, false
	}
	return t, true
}

// KickResult is the answer of POST /v1/terminals/{id}/kick.
type KickResult struct {
	Terminal uint32 `json:"terminal"`
	// Kicked reports whether there was a live session to close.
	Kicked bool `json:"kicked"`
}

// apiKick: POST /v1/terminals/{id}/kick closes the live session (CLOSE, close 4403 "kicked by
// operator"). The terminal may reconnect at once; to keep it out, rotate its password or
// delete it.
func (srv *Server) apiKick(w http.ResponseWriter, r *http.Request) {
	t, ok := srv.terminalFromPath(w, r)
	if !ok {
		return
	}
	kicked := srv.Kick(t.ID, CloseKicked)
	srv.log.Info("session kicked by operator", "terminal", t.ID, "kicked", kicked)
	writeJSON(w, http.StatusOK, KickResult{Terminal: t.ID, Kicked: kicked})
}

// DetachResult is the answer of POST /v1/terminals/{id}/detach.
type DetachResult struct {
	Terminal uint32 `json:"terminal"`
	Detached bool   `json:"detached"` // always true in a 200
	// Platform is the platform of the attach that was removed.
	Platform string `json:"platform"`
}

// apiDetach: POST /v1/terminals/{id}/detach removes the push attachment, as TERMINAL_DETACH
// would: no push until the terminal attaches again. 404 when it has none.
func (srv *Server) apiDetach(w http.ResponseWriter, r *http.Request) {
	t, ok := srv.terminalFromPath(w, r)
	if !ok {
		return
	}
	a, ok, err := srv.attachOf(r.Context(), t.ID)
	if err != nil {
		srv.storeError(w, err)
		return
	}
	if ok {
		err = srv.attaches().DeleteAttach(r.Context(), t.ID)
	}
	if !ok || errors.Is(err, registry.ErrNotFound) {
		apiError(w, http.StatusNotFound, "terminal %d has no push attachment", t.ID)
		return
	}
	if err != nil {
		srv.storeError(w, err)
		return
	}
	srv.log.Info("attach removed by operator", "terminal", t.ID, "platform", a.Platform)
	srv.emit(Event{Type: EventDetached, Terminal: t.ID, Platform: a.Platform, Reason: detachedByOperator})
	writeJSON(w, http.StatusOK, DetachResult{Terminal: t.ID, Detached: true, Platform: a.Platform})
}

// detachedByOperator is the Reason of the detached event an operator's detach emits (a
// terminal's own TERMINAL_DETACH has none).
const detachedByOperator = "removed by operator"

type passwordRequest struct {
	Password string `json:"password"`
	// Kick closes the live session, so that the terminal must authenticate with the new
	// password now rather than at its next login.
	Kick bool `json:"kick"`
}

// PasswordResult is the answer of POST /v1/terminals/{id}/password; it never holds the
// password.
type PasswordResult struct {
	Terminal uint32    `json:"terminal"`
	Updated  time.Time `json:"updated"`
	// Kicked reports whether a live session was closed (only with "kick": true).
	Kicked bool `json:"kicked"`
}

// apiPassword: POST /v1/terminals/{id}/password {"password": "...", "kick": bool}.
func (srv *Server) apiPassword(w http.ResponseWriter, r *http.Request) {
	t, ok := srv.terminalFromPath(w, r)
	if !ok {
		return
	}
	var req passwordRequest
	if err := decodeJSONBody(w, r, &req); err != nil {
		apiError(w, http.StatusBadRequest, "%v", err)
		return
	}
	if req.Password == "" {
		apiError(w, http.StatusBadRequest, "password is required")
		return
	}
	// The name is the one just read: a rename racing with the rotation may be lost (the
	// registry has no compare-and-swap); it is an operator's own two calls.
	if _, err := srv.store.PutTerminal(r.Context(), registry.Terminal{ID: t.ID, Password: req.Password, Name: t.Name}); err != nil {
		srv.storeError(w, err)
		return
	}
	stored, err := srv.store.GetTerminal(r.Context(), t.ID)
	if err != nil {
		srv.storeError(w, err)
		return
	}
	kicked := req.Kick && srv.Kick(t.ID, CloseKicked)
	srv.log.Info("password changed by operator", "terminal", t.ID, "kicked", kicked)
	writeJSON(w, http.StatusOK, PasswordResult{Terminal: t.ID, Updated: stored.Updated.UTC(), Kicked: kicked})
}

// deleterAll is a store whose delete reports the outbox entries it removed
// (*registry.Badger).
type deleterAll interface {
	DeleteTerminalAll(ctx context.Context, id uint32) (outboxDeleted int, err error)
}
