package broker

// The push audit trail: every push attempt's outcome, stored durably per terminal (registry
// Audits) so that "my phone never rings" can be answered days later. The waker appends one record
// per wake outcome (sent, token_invalid, retrying, rejected, no_push_channel, ...; not
// nothing_pending, when no push was due, nor overloaded, when the wake never reached a worker:
// that one is an event and a metric only) before the outcome is reported to the publish API.
// Records are kept Config.PushAuditRetention and removed by the outbox expiry sweep.

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/rewind-broker/rewind/registry"
)

// DefaultPushAuditRetention: a week covers "it did not ring last weekend" and stays small (one
// record per push attempt, about 100 bytes).
const DefaultPushAuditRetention = 7 * 24 * time.Hour

// defaultAuditPage is how many records PushAuditHandler returns without ?limit.
const defaultAuditPage = 50

// ErrAuditUnavailable means this broker keeps no push audit trail: push is disabled, or its
// store does not implement registry.Audits.
var ErrAuditUnavailable = errors.New("broker: no push audit trail on this broker")

// audits returns the audit trail, or nil.
func (srv *Server) audits() registry.Audits {
	a, _ := srv.pushCfg.Store.(registry.Audits)
	return a
}

// appendAudit stores the audit record of one wake. A failure is logged and counted; the wake's
// outcome stands.
func (srv *Server) appendAudit(rec *wakeRecord, outcome string) {
	a := srv.audits()
	if a == nil || outcome == WakeNothing {
		return
	}
	now := srv.cfg.Clock.Now()
	ctx, cancel := context.WithTimeout(context.Background(), DefaultStoreTimeout)
	defer cancel()
	err := a.AppendAudit(ctx, registry.PushAudit{
		Terminal: rec.terminal, Time: now, Platform: string(rec.platform), MessageID: rec.messageID,
		Outcome: outcome, Reason: rec.reason, Latency: rec.latency, Kind: rec.kind,
	}, now.Add(srv.cfg.PushAuditRetention))
	if err != nil && !errors.Is(err, registry.ErrClosed) {
		srv.metrics.auditErrors.Inc()
		srv.log.Error("push audit record not stored", "terminal", rec.terminal, "outcome", outcome, "err", err)
	}
}

// PushAudit returns up to limit (1..registry.MaxPageSize) audit records of terminal older than
// before (zero: the newest), newest first. ErrAuditUnavailable without an audit trail.
func (srv *Server) PushAudit(ctx context.Context, terminal uint32, before time.Time, limit int) ([]registry.PushAudit, error) {
	a := srv.audits()
	if a == nil {
		return nil, ErrAuditUnavailable
	}
	return a.ListAudit(ctx, terminal, before, limit)
}

// LastPush returns terminal's newest push attempt, whatever its outcome, or nil when the trail
// has none. ErrAuditUnavailable without an audit trail.
func (srv *Server) LastPush(ctx context.Context, terminal uint32) (*registry.PushAudit, error) {
	recs, err := srv.PushAudit(ctx, terminal, time.Time{}, 1)
	if err != nil || len(recs) == 0 {
		return nil, err
	}
	return &recs[0], nil
}

// PushAuditInfo is one audit record as the admin API shows it.
type PushAuditInfo struct {
	Terminal  uint32    `json:"terminal"`
	Time      time.Time `json:"time"`
	Platform  string    `json:"platform,omitempty"`
	MessageID string    `json:"message_id,omitempty"`
	Outcome   string    `json:"outcome"`
	Reason    string    `json:"reason,omitempty"`
	LatencyMS float64   `json:"latency_ms,omitempty"`
	Kind      string    `json:"kind,omitempty"`
}

// AuditInfo converts a record for the admin API.
func AuditInfo(a registry.PushAudit) PushAuditInfo {
	return PushAuditInfo{Terminal: a.Terminal, Time: a.Time.UTC(), Platform: a.Platform, MessageID: a.MessageID,
		Outcome: a.Outcome, Reason: a.Reason, LatencyMS: float64(a.Latency.Microseconds()) / 1000, Kind: a.Kind}
}

// PushAuditHandler serves GET …/{id}/pushes: {"pushes": [PushAuditInfo…], "next_before": time}
// newest first. Query: before (RFC 3339, exclusive; pass next_before to page), limit (default
// 50, at most registry.MaxPageSize). 503 without an audit trail. It does no authentication:
// mount it behind the admin key, on a pattern with an {id} wildcard.
func (srv *Server) PushAuditHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseUint(r.PathValue("id"), 10, 32)
		if err != nil || id == 0 {
			http.Error(w, "bad terminal id", http.StatusBadRequest)
			return
		}
		var before time.Time
		if s := r.URL.Query().Get("before"); s != "" {
			if before, err = time.Parse(time.RFC3339Nano, s); err != nil {
				http.Error(w, "bad before (RFC 3339)", http.StatusBadRequest)
				return
			}
		}
		limit := defaultAuditPage
		if s := r.URL.Query().Get("limit"); s != "" {
			if limit, err = strconv.Atoi(s); err != nil || limit < 1 || limit > registry.MaxPageSize {
				http.Error(w, "bad limit", http.StatusBadRequest)
				return
			}
		}
		recs, err := srv.PushAudit(r.Context(), uint32(id), before, limit)
		switch {
		case errors.Is(err, ErrAuditUnavailable):
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		case err != nil:
			srv.log.Error("push audit read failed", "terminal", id, "err", err)
			http.Error(w, "registry unavailable", http.StatusServiceUnavailable)
			return
		}
		out := struct {
			Pushes     []PushAuditInfo `json:"pushes"`
			NextBefore *time.Time      `json:"next_before,omitempty"`
		}{Pushes: make([]PushAuditInfo, 0, len(recs))}
		for _, a := range recs {
			out.Pushes = append(out.Pushes, AuditInfo(a))
		}
		if len(recs) == limit {
			t := recs[len(recs)-1].Time.UTC()
			out.NextBefore = &t
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(out)
	})
}

// sweepAudit runs with every outbox expiry sweep: it removes expired audit records and samples
// the outbox gauges (rewind_outbox_depth, rewind_outbox_oldest_age_seconds). The gauges are
// sampled, not maintained from counters, so that they are right after a restart and whatever
// removed entries (ack, expiry, admin delete); the sample is one key-only scan of the outbox
// expiry index per sweep.
func (srv *Server) sweepAudit(ctx context.Context, now time.Time) {
	if a := srv.audits(); a != nil {
		if _, err := a.ExpireAudits(ctx, now); err != nil && !errors.Is(err, registry.ErrClosed) {
			srv.log.Error("push audit expiry failed", "err", err)
		}
	}
	if st, ok := srv.pushCfg.Store.(registry.OutboxStats); ok {
		n, first, err := st.OutboxStats(ctx)
		switch {
		case err != nil && !errors.Is(err, registry.ErrClosed):
			srv.log.Error("outbox stats failed", "err", err)
		case err == nil:
			srv.metrics.outboxDepth.Set(float64(n))
			age := 0.0
			if n > 0 && !first.IsZero() {
				age = max(now.Sub(first).Seconds(), 0)
			}
			srv.metrics.outboxOldestAge.Set(age)
		}
	}
}
