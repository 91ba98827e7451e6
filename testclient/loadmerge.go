package testclient

// MergedLoadReport is the report of a load run split over several processes (testclient load
// --processes): the sum of the processes' reports, and each of them. Counts and rates add up
// (the processes ran at the same time); latencies are the largest of the processes' (their
// histograms are not merged, so p50 and p99 are upper bounds); the broker's RSS is the largest
// any process read at its end (BrokerRSSBytes), its CPU the one reading around the whole run
// that the caller adds.
type MergedLoadReport struct {
	LoadReport
	BrokerRSSBytes int64         `json:"broker_rss_bytes,omitempty"`
	Processes      []*LoadReport `json:"processes"`
}

// MergeLoadReports sums reps (one per load process).
func MergeLoadReports(reps []*LoadReport) *MergedLoadReport {
	m := &MergedLoadReport{Processes: reps}
	r := &m.LoadReport
	r.Errors = map[string]int64{}
	for _, p := range reps {
		r.Terminals += p.Terminals
		r.Created += p.Created
		r.Connected += p.Connected
		r.SetupSeconds = max(r.SetupSeconds, p.SetupSeconds)
		r.SetupRate += p.SetupRate
		r.SetupAttach = r.SetupAttach || p.SetupAttach
		r.ExchangeSeconds = max(r.ExchangeSeconds, p.ExchangeSeconds)
		r.TextsSent += p.TextsSent
		r.TextsReceived += p.TextsReceived
		r.Throughput += p.Throughput
		r.LatencyP50ms = max(r.LatencyP50ms, p.LatencyP50ms)
		r.LatencyP99ms = max(r.LatencyP99ms, p.LatencyP99ms)
		r.LatencyMaxms = max(r.LatencyMaxms, p.LatencyMaxms)
		for k, v := range p.Errors {
			r.Errors[k] += v
		}
		if p.Broker != nil {
			m.BrokerRSSBytes = max(m.BrokerRSSBytes, p.Broker.After.RSSBytes)
		}
		if pp := p.Publish; pp != nil {
			if r.Publish == nil {
				r.Publish = &LoadPublishReport{}
			}
			q := r.Publish
			q.Offered += pp.Offered
			q.Published += pp.Published
			q.Failed += pp.Failed
			q.Delivered += pp.Delivered
			q.PerSecond += pp.PerSecond
			q.LatencyP50ms = max(q.LatencyP50ms, pp.LatencyP50ms)
			q.LatencyP99ms = max(q.LatencyP99ms, pp.LatencyP99ms)
			q.LatencyMaxms = max(q.LatencyMaxms, pp.LatencyMaxms)
			q.DeliveryP50ms = max(q.DeliveryP50ms, pp.DeliveryP50ms)
			q.DeliveryP99ms = max(q.DeliveryP99ms, pp.DeliveryP99ms)
			q.DeliveryMaxms = max(q.DeliveryMaxms, pp.DeliveryMaxms)
		}
	}
	return m
}
