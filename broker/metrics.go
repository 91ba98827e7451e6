package broker

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rewind-broker/rewind/protocol"
	"net/http"
)

// metrics are the broker's Prometheus collectors. Labels are low-cardinality only: close
// reasons, datagram type names, failure kinds; never a terminal id.
type metrics struct {
	registry       *prometheus.Registry
	sessions       *prometheus.GaugeVec
	setups         prometheus.Counter
	closes         *prometheus.CounterVec
	authFailures   *prometheus.CounterVec
	datagramsIn    *prometheus.CounterVec
	datagramsOut   *prometheus.CounterVec
	dropped        *prometheus.CounterVec
	routed         *prometheus.CounterVec
	unknownTypes   prometheus.Counter
	malformedTotal prometheus.Counter

	outboxAppends      *prometheus.CounterVec
	storedDelivered    prometheus.Counter
	acked              prometheus.Counter
	expired            prometheus.Counter
	pushes             *prometheus.CounterVec
	pushLatency        *prometheus.HistogramVec
	tokenFetches       *prometheus.CounterVec
	tokenInvalidations prometheus.Counter

	// Event stream and push audit (events.go, audit.go).
	eventSubscribers   prometheus.Gauge
	eventSubsDropped   prometheus.Counter
	outboxDepth        prometheus.Gauge
	outboxOldestAge    prometheus.Gauge
	wakeToDelivery     prometheus.Histogram
	auditErrors        prometheus.Counter
	datagramsOutByType map[protocol.Type]prometheus.Counter // read-only after newMetrics
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		sessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rewind_sessions", Help: "WebSocket sessions by state (handshake, active).",
		}, []string{"state"}),
		setups: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rewind_session_setups_total", Help: "Sessions that completed authentication.",
		}),
		closes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rewind_session_closes_total", Help: "Sessions ended, by reason.",
		}, []string{"reason"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rewind_auth_failures_total", Help: "Failed authentications, by kind (password, unknown_terminal, locked_out, bad_hello).",
		}, []string{"kind"}),
		datagramsIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rewind_datagrams_in_total", Help: "Datagrams received from terminals, by type (unknown types as \"other\").",
		}, []string{"type"}),
		datagramsOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rewind_datagrams_out_total", Help: "Datagrams written to terminals, by type (unknown types as \"other\").",
		}, []string{"type"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rewind_send_drops_total", Help: "Datagrams not delivered to a live session, by reason (queue_full, closing).",
		}, []string{"reason"}),
		routed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rewind_routed_total", Help: "Routing outcomes for terminal traffic (live, group, not_found, offline).",
		}, []string{"outcome"}),
		unknownTypes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rewind_unknown_types_total", Help: "Datagrams of types this broker does not know (ignored).",
		}),
		malformedTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rewind_malformed_total", Help: "Malformed datagrams received.",
		}),
		outboxAppends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rewind_outbox_appends_total", Help: "Datagrams appended durably to outboxes, by result (ok, error).",
		}, []string{"result"}),
		storedDelivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rewind_outbox_deliveries_total", Help: "Stored datagrams queued on a session (replays included).",
		}),
		acked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rewind_outbox_acked_total", Help: "Stored datagrams deleted after DELIVERY_ACK.",
		}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rewind_outbox_expired_total", Help: "Stored datagrams dropped unacknowledged at their TTL.",
		}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rewind_pushes_total", Help: "Wake attempts by platform and outcome (sent, token_invalid, retrying, rejected, no_push_channel, ...).",
		}, []string{"platform", "outcome"}),
		pushLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "rewind_push_seconds", Help: "Time from wake start to the provider's answer (token lookup included).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"platform"}),
		tokenFetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rewind_token_fetch_failures_total", Help: "Wakes that could not get a credential from the token service.",
		}, []string{"outcome"}),
		tokenInvalidations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rewind_token_invalidations_total", Help: "Credentials dropped because FCM or APNs refused them.",
		}),
	}
	m.eventSubscribers = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "rewind_event_subscribers", Help: "Live event-stream (SSE) subscribers.",
	})
	m.eventSubsDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "rewind_events_dropped_subscribers_total", Help: "Event-stream subscribers disconnected because they fell too far behind.",
	})
	m.outboxDepth = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "rewind_outbox_depth", Help: "Stored datagrams in all outboxes (expired ones not yet removed included), sampled at every expiry sweep.",
	})
	m.outboxOldestAge = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "rewind_outbox_oldest_age_seconds", Help: "Age of the stored datagram that expires first (in practice the oldest), sampled at every expiry sweep; 0 when empty.",
	})
	m.wakeToDelivery = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "rewind_wake_to_delivery_seconds", Help: "Time from a push sent to the terminal's first DELIVERY_ACK after it.",
		Buckets: prometheus.ExponentialBuckets(0.25, 2, 12), // 250 ms .. ~8.5 min
	})
	m.auditErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "rewind_push_audit_errors_total", Help: "Push audit records that could not be stored.",
	})
	m.registry.MustRegister(m.eventSubscribers, m.eventSubsDropped, m.outboxDepth, m.outboxOldestAge, m.wakeToDelivery, m.auditErrors)
	// One counter per known datagram type, resolved once: session.write is the hot path.
	m.datagramsOutByType = make(map[protocol.Type]prometheus.Counter)
	for t := 0; t <= 0xFFFF; t++ {
		if typ := protocol.Type(t); typ.Known() {
			m.datagramsOutByType[typ] = m.datagramsOut.WithLabelValues(typ.String())
		}
	}
	m.registry.MustRegister(m.outboxAppends, m.storedDelivered, m.acked, m.expired, m.pushes, m.pushLatency, m.tokenFetches, m.tokenInvalidations)
	m.registry.MustRegister(m.sessions, m.setups, m.closes, m.authFailures, m.datagramsIn, m.datagramsOut,
		m.dropped, m.routed, m.unknownTypes, m.malformedTotal,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Pre-create label values so dashboards see zeros rather than gaps.
	for _, d := range closeReasonsForMetrics {
		m.closes.WithLabelValues(d.Reason)
	}
	for _, s := range []string{"handshake", "active", "idle"} {
		m.sessions.WithLabelValues(s)
	}
	return m
}

// countOut counts one datagram of type t written to a terminal.
func (m *metrics) countOut(t protocol.Type) {
	if c, ok := m.datagramsOutByType[t]; ok {
		c.Inc()
		return
	}
	m.datagramsOut.WithLabelValues("other").Inc()
}

func typeLabel(t protocol.Type) string {
	if t.Known() {
		return t.String()
	}
	return "other"
}

func promHandler(m *metrics) http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}
