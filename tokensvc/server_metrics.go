package tokensvc

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Values of the "result" label of tokensvc_requests_total.
const (
	resultOK            = "ok"
	resultUnauthorized  = "unauthorized"
	resultForbidden     = "forbidden"
	resultRateLimited   = "rate_limited"
	resultUpstreamError = "upstream_error"
	resultNotFound      = "not_found"
	resultBadRequest    = "bad_request"
	resultCanceled      = "canceled"
)

// unknownAppLabel is the app label of requests naming no configured app, so
// that made-up names cannot grow the label set. App names cannot start with
// "_".
const unknownAppLabel = "_unknown"

// metrics holds the service's collectors, registered on a private registry
// so that nothing global leaks in or out.
type metrics struct {
	registry     *prometheus.Registry
	requests     *prometheus.CounterVec   // app, result
	authFailures *prometheus.CounterVec   // reason
	mintDuration *prometheus.HistogramVec // app, kind
	mintFailures *prometheus.CounterVec   // app, kind
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokensvc_requests_total",
			Help: "Credential requests by app and result (ok, unauthorized, forbidden, rate_limited, upstream_error, not_found, bad_request, canceled).",
		}, []string{"app", "result"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokensvc_auth_failures_total",
			Help: "Refused callers by reason (address_not_allowed, missing_bearer, bad_bearer, missing_code, bad_code, broker_mismatch).",
		}, []string{"reason"}),
		mintDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tokensvc_mint_duration_seconds",
			Help:    "Time to mint a credential: a call to Google's token endpoint (fcm) or a JWT signature (apns), failed ones included.",
			Buckets: []float64{.0005, .005, .05, .1, .25, .5, 1, 2.5, 5, 10, 20},
		}, []string{"app", "kind"}),
		mintFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokensvc_mint_failures_total",
			Help: "Failed mints by app and kind; the reason is in the log.",
		}, []string{"app", "kind"}),
	}
	m.registry.MustRegister(
		m.requests, m.authFailures, m.mintDuration, m.mintFailures,
		&expiryCollector{s: s},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// expiryDesc describes tokensvc_credential_expiry_seconds.
var expiryDesc = prometheus.NewDesc(
	"tokensvc_credential_expiry_seconds",
	"Seconds until the service stops handing out the app's current credential. Absent while the app has none cached.",
	[]string{"app"}, nil,
)

// expiryCollector reads the apps' credentials at scrape time, so the gauge
// follows the current configuration (also after a reload) and the clock.
type expiryCollector struct{ s *Server }

func (c *expiryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- expiryDesc }

func (c *expiryCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.state.Load()
	if st == nil {
		return
	}
	now := c.s.now()
	for _, name := range st.names {
		until, ok := st.apps[name].source.validUntil()
		if !ok {
			continue
		}
		ch <- prometheus.MustNewConstMetric(expiryDesc, prometheus.GaugeValue, max(until.Sub(now).Seconds(), 0), name)
	}
}
