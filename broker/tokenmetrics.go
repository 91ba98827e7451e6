package broker

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rewind-broker/rewind/tokensvc"
)

// expiryReporter is implemented by token sources that can say when their cached credentials
// expire (*tokensvc.Client does).
type expiryReporter interface {
	Expiries() []tokensvc.CredentialExpiry
}

// tokenMetrics are the token-service client's metrics: fetches by outcome (fed by
// ObserveTokenFetch) and the seconds until each vendor host's cached credentials expire
// (read from the token source at scrape time).
type tokenMetrics struct {
	fetches      *prometheus.CounterVec
	fetchSeconds prometheus.Histogram
	expiryDesc   *prometheus.Desc
	srv          *Server
}

func newTokenMetrics(srv *Server) *tokenMetrics {
	m := &tokenMetrics{
		srv: srv,
		fetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rewind_token_fetches_total", Help: "Requests to vendor token services, by outcome (ok, http_4xx, http_5xx, network, invalid).",
		}, []string{"outcome"}),
		fetchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "rewind_token_fetch_seconds", Help: "Duration of requests to vendor token services.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		expiryDesc: prometheus.NewDesc("rewind_token_credential_expiry_seconds",
			"Seconds until the cached credentials of a vendor token-service host expire (soonest per host).", []string{"host"}, nil),
	}
	for _, o := range []string{tokensvc.OutcomeOK, tokensvc.OutcomeHTTP4xx, tokensvc.OutcomeHTTP5xx, tokensvc.OutcomeNetwork, tokensvc.OutcomeInvalid} {
		m.fetches.WithLabelValues(o)
	}
	return m
}

// Describe implements prometheus.Collector.
func (m *tokenMetrics) Describe(ch chan<- *prometheus.Desc) {
	m.fetches.Describe(ch)
	m.fetchSeconds.Describe(ch)
	ch <- m.expiryDesc
}

// Collect implements prometheus.Collector.
func (m *tokenMetrics) Collect(ch chan<- prometheus.Metric) {
	m.fetches.Collect(ch)
	m.fetchSeconds.Collect(ch)
	r, ok := m.srv.pushCfg.Tokens.(expiryReporter)
	if !ok {
		return
	}
	now := m.srv.cfg.Clock.Now()
	for _, e := range r.Expiries() {
		ch <- prometheus.MustNewConstMetric(m.expiryDesc, prometheus.GaugeValue, e.Expires.Sub(now).Seconds(), e.Host)
	}
}

// ObserveTokenFetch counts one token-service request; wire it to tokensvc.ClientConfig.OnFetch.
func (srv *Server) ObserveTokenFetch(outcome string, d time.Duration) {
	srv.tokenMetrics.fetches.WithLabelValues(outcome).Inc()
	srv.tokenMetrics.fetchSeconds.Observe(d.Seconds())
}
