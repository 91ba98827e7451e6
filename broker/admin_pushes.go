package broker

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/rewind-broker/rewind/registry"
)

// DefaultPushPage is how many audit records GET /v1/terminals/{id}/pushes returns without
// ?limit: a few days of a normally used terminal.
const DefaultPushPage = 50

// PushPage is the answer of GET /v1/terminals/{id}/pushes, newest first.
type PushPage struct {
	Pushes []PushAuditInfo `json:"pushes"`
	// NextBefore is the ?before= of the next (older) page; absent on the last page.
	NextBefore *time.Time `json:"next_before,omitempty"`
}

// pushQuery reads ?limit= and ?before= (RFC 3339, exclusive).
func pushQuery(r *http.Request) (before time.Time, limit int, err error) {
	limit = DefaultPushPage
	q := r.URL.Query()
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > registry.MaxPageSize {
			return before, 0, fmt.Errorf("limit %q: want 1..%d", s, registry.MaxPageSize)
		}
		limit = n
	}
	if s := q.Get("before"); s != "" {
		if before, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return before, 0, fmt.Errorf("before %q: want an RFC 3339 time", s)
		}
	}
	return before, limit, nil
}

// apiPushes: GET /v1/terminals/{id}/pushes?limit=&before= lists the push audit trail of a
// registered terminal, newest first. 503 on a broker without an audit trail.
func (srv *Server) apiPushes(w http.ResponseWriter, r *http.Request) {
	t, ok := srv.terminalFromPath(w, r)
	if !ok {
		return
	}
	before, limit, err := pushQuery(r)
	if err != nil {
		apiError(w, http.StatusBadRequest, "%v", err)
		return
	}
	recs, err := srv.PushAudit(r.Context(), t.ID, before, limit)
	if errors.Is(err, ErrAuditUnavailable) {
		apiError(w, http.StatusServiceUnavailable, "this broker keeps no push audit trail")
		return
	}
	if err != nil {
		srv.storeError(w, err)
		return
	}
	p := PushPage{Pushes: make([]PushAuditInfo, 0, len(recs))}
	for _, a := range recs {
		p.Pushes = append(p.Pushes, AuditInfo(a))
	}
	if len(recs) == limit {
		next := recs[len(recs)-1].Time.UTC()
		p.NextBefore = &next
	}
	writeJSON(w, http.StatusOK, p)
}
