package broker

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/rewind-broker/rewind/registry"
)

// Admin API limits.
const (
	// maxAdminBody bounds a JSON request body; terminal records are tiny.
	maxAdminBody = 16 << 10
	// DefaultPageSize and MaxPageSize bound list endpoints.
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// AdminHandler returns the admin HTTP API, authenticated with key as a bearer token.
// Routes (JSON unless noted; errors are {"error": "..."}):
//
//	GET    /healthz                    liveness, no authentication
//	GET    /metrics                    Prometheus metrics
//	GET    /debug/pprof/...            Go profiles (CPU, heap, goroutines, trace)
//	GET    /v1/events                  event stream, Server-Sent Events (?after=&terminal=&types=
//	                                   &follow=false&limit=; Last-Event-ID), see EventsHandler
//	GET    /v1/sessions                live sessions (?limit=&after=<terminal id>&state=active|idle
//	                                   &platform=fcm|apns|none), each with its attach platform
//	GET    /v1/terminals               registered terminals (?limit=&after=<terminal id>)
//	PUT    /v1/terminals/{id}          create or update {"password": "...", "name": "..."}
//	GET    /v1/terminals/{id}          a terminal: state, live session, push attachment (redacted),
//	                                   outbox depth and age, last push attempt
//	GET    /v1/terminals/{id}/pushes   push audit trail, newest first (?limit=&before=<RFC 3339>)
//	                                   → {"pushes": [...], "next_before": time}
//	GET    /v1/users/{dmrid}/terminals a user's terminals: name, state, attach platform, last seen
//	DELETE /v1/terminals/{id}          remove a terminal, its attach and outbox (its live session is
//	                                   closed, 4403) → {"deleted", "session_closed", "outbox_deleted"}
//	POST   /v1/terminals/{id}/kick     close the live session (4403 "kicked by operator") → {"kicked"}
//	POST   /v1/terminals/{id}/detach   remove the push attachment (404 when none) → {"detached"}
//	POST   /v1/terminals/{id}/password rotate {"password": "...", "kick": bool}; never echoed
//	POST   /v1/terminals/{id}/datagrams publish a raw Rewind datagram (stored, then delivered or woken)
//	POST   /v1/users/{dmrid}/texts      publish {"from": id, "text": "..."} to every terminal of a user
func (srv *Server) AdminHandler(key string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	auth := func(h http.HandlerFunc) http.Handler { return requireKey(key, h) }
	mux.Handle("GET /metrics", requireKey(key, srv.Metrics().ServeHTTP))
	mux.Handle("GET /v1/events", auth(srv.EventsHandler().ServeHTTP))
	mux.Handle("GET /v1/sessions", auth(srv.apiSessions))
	mux.Handle("GET /v1/terminals", auth(srv.apiListTerminals))
	mux.Handle("PUT /v1/terminals/{id}", auth(srv.apiPutTerminal))
	mux.Handle("GET /v1/terminals/{id}", auth(srv.apiGetTerminal))
	mux.Handle("DELETE /v1/terminals/{id}", auth(srv.apiDeleteTerminal))
	mux.Handle("GET /v1/terminals/{id}/pushes", auth(srv.apiPushes))
	mux.Handle("POST /v1/terminals/{id}/kick", auth(srv.apiKick))
	mux.Handle("POST /v1/terminals/{id}/detach", auth(srv.apiDetach))
	mux.Handle("POST /v1/terminals/{id}/password", auth(srv.apiPassword))
	mux.Handle("POST /v1/terminals/{id}/datagrams", auth(srv.apiPublishDatagram))
	mux.Handle("POST /v1/users/{dmrid}/texts", auth(srv.apiPublishUserText))
	mux.Handle("GET /v1/users/{dmrid}/terminals", auth(srv.apiUserTerminals))
	// Profiles for performance work (go tool pprof -http : …), behind the same key.
	mux.Handle("GET /debug/pprof/", auth(pprof.Index))
	mux.Handle("GET /debug/pprof/profile", auth(pprof.Profile))
	mux.Handle("GET /debug/pprof/trace", auth(pprof.Trace))
	mux.Handle("GET /debug/pprof/symbol", auth(pprof.Symbol))
	mux.Handle("/", auth(func(w http.ResponseWriter, r *http.Request) {
		apiError(w, http.StatusNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path)
	}))
	return mux
}

// requireKey checks "Authorization: Bearer <key>" in constant time (over hashes, so the key's
// length does not leak either).
func requireKey(key string, h http.HandlerFunc) http.Handler {
	want := sha256.Sum256([]byte(key))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(got))
		if !ok || key == "" || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="rewind-admin"`)
			apiError(w, http.StatusUnauthorized, "missing or wrong admin key")
			return
		}
		h(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func apiError(w http.ResponseWriter, status int, format string, args ...any) {
	writeJSON(w, status, map[string]string{"error": fmt.Sprintf(format, args...)})
}

// parseID parses a terminal id path or query value.
func parseID(s string) (uint32, error) {
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil || v == 0 {
		return 0, fmt.Errorf("%q is not a terminal id (1..4294967295)", s)
	}
	return uint32(v), nil
}

// page reads ?limit= and ?after=.
func page(r *http.Request) (after uint32, limit int, err error) {
	limit = DefaultPageSize
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxPageSize {
			return 0, 0, fmt.Errorf("limit %q: want 1..%d", s, MaxPageSize)
		}
		limit = n
	}
	if s := r.URL.Query().Get("after"); s != "" {
		v, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return 0, 0, fmt.Errorf("after %q: want a terminal id", s)
		}
		after = uint32(v)
	}
	return after, limit, nil
}

// TerminalInfo is a terminal as the admin API shows it (never with its password).
type TerminalInfo struct {
	ID       uint32       `json:"id"`
	User     uint32       `json:"user"`
	Name     string       `json:"name,omitempty"`
	Created  time.Time    `json:"created"`
	Updated  time.Time    `json:"updated"`
	LastSeen *time.Time   `json:"last_seen,omitempty"`
	Session  *SessionInfo `json:"session,omitempty"`
}

func terminalInfo(t registry.Terminal) TerminalInfo {
	info := TerminalInfo{ID: t.ID, User: t.UserID(), Name: t.Name, Created: t.Created.UTC(), Updated: t.Updated.UTC()}
	if !t.LastSeen.IsZero() {
		seen := t.LastSeen.UTC()
		info.LastSeen = &seen
	}
	return info
}

// Page is a page of a list.
type Page[T any] struct {
	Items []T `json:"items"`
	// Next is the "after" value of the next page; absent on the last page.
	Next *uint32 `json:"next,omitempty"`
}

func (srv *Server) apiListTerminals(w http.ResponseWriter, r *http.Request) {
	after, limit, err := page(r)
	if err != nil {
		apiError(w, http.StatusBadRequest, "%v", err)
		return
	}
	ts, err := srv.store.ListTerminals(r.Context(), after, limit+1)
	if err != nil {
		srv.storeError(w, err)
		return
	}
	p := Page[TerminalInfo]{Items: []TerminalInfo{}}
	for i, t := range ts {
		if i == limit {
			next := ts[limit-1].ID
			p.Next = &next
			break
		}
		p.Items = append(p.Items, terminalInfo(t))
	}
	writeJSON(w, http.StatusOK, p)
}

type putTerminalRequest struct {
	Password string `json:"password"`
	Name     string `json:"name"`
}

func (srv *Server) apiPutTerminal(w http.ResponseWriter, r *http.Request) {
	id, err := parseID(r.PathValue("id"))
	if err != nil {
		apiError(w, http.StatusBadRequest, "%v", err)
		return
	}
	var req putTerminalRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAdminBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		apiError(w, http.StatusBadRequest, "body: %v", err)
		return
	}
	t := registry.Terminal{ID: id, Password: req.Password, Name: req.Name}
	if req.Password == "" {
		// An update may keep the password and change only the name.
		old, err := srv.store.GetTerminal(r.Context(), id)
		if err != nil {
			if errors.Is(err, registry.ErrNotFound) {
				apiError(w, http.StatusBadRequest, "password is required for a new terminal")
				return
			}
			srv.storeError(w, err)
			return
		}
		t.Password = old.Password
	}
	created, err := srv.store.PutTerminal(r.Context(), t)
	if err != nil {
		srv.storeError(w, err)
		return
	}
	stored, err := srv.store.GetTerminal(r.Context(), id)
	if err != nil {
		srv.storeError(w, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	srv.log.Info("terminal stored", "terminal", id, "created", created)
	writeJSON(w, status, terminalInfo(stored))
}

// DeleteResult is the answer of DELETE /v1/terminals/{id}.
type DeleteResult struct {
	Deleted       uint32 `json:"deleted"`
	SessionClosed bool   `json:"session_closed"`
	// OutboxDeleted counts the stored datagrams removed with the terminal; absent when the
	// store does not report it.
	OutboxDeleted *int `json:"outbox_deleted,omitempty"`
}

func (srv *Server) apiDeleteTerminal(w http.ResponseWriter, r *http.Request) {
	id, err := parseID(r.PathValue("id"))
	if err != nil {
		apiError(w, http.StatusBadRequest, "%v", err)
		return
	}
	res := DeleteResult{Deleted: id}
	if st, ok := srv.store.(deleterAll); ok {
		var n int
		n, err = st.DeleteTerminalAll(r.Context(), id)
		res.OutboxDeleted = &n
	} else {
		err = srv.store.DeleteTerminal(r.Context(), id)
	}
	if err != nil {
		srv.storeError(w, err)
		return
	}
	res.SessionClosed = srv.Kick(id, CloseDeleted)
	log := srv.log.With("terminal", id, "session_closed", res.SessionClosed)
	if res.OutboxDeleted != nil {
		log = log.With("outbox_deleted", *res.OutboxDeleted)
	}
	log.Info("terminal deleted")
	writeJSON(w, http.StatusOK, res)
}

func (srv *Server) storeError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, registry.ErrNotFound):
		apiError(w, http.StatusNotFound, "no such terminal")
	case errors.Is(err, registry.ErrInvalid):
		apiError(w, http.StatusBadRequest, "%v", err)
	case errors.Is(err, context.Canceled):
		apiError(w, http.StatusServiceUnavailable, "request cancelled")
	default:
		srv.log.Error("registry error", "err", err)
		apiError(w, http.StatusInternalServerError, "registry error")
	}
}
