package testclient

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestMergeLoadReports(t *testing.T) {
	a := &LoadReport{Terminals: 4, Created: 4, Connected: 4, SetupSeconds: 1, SetupRate: 4, TextsSent: 10, TextsReceived: 10,
		Throughput: 5, LatencyP50ms: 1, LatencyP99ms: 3, LatencyMaxms: 4, Errors: map[string]int64{"x": 1},
		Broker:  &BrokerUsage{After: ProcStats{RSSBytes: 100}},
		Publish: &LoadPublishReport{Offered: 10, Published: 9, Failed: 1, Delivered: 9, PerSecond: 9, LatencyP99ms: 7}}
	b := &LoadReport{Terminals: 4, Created: 4, Connected: 3, SetupSeconds: 2, SetupRate: 1.5, TextsSent: 6, TextsReceived: 5,
		Throughput: 2, LatencyP50ms: 2, LatencyP99ms: 2, LatencyMaxms: 9, Errors: map[string]int64{"x": 2, "y": 1},
		Broker:  &BrokerUsage{After: ProcStats{RSSBytes: 120}},
		Publish: &LoadPublishReport{Offered: 10, Published: 10, Delivered: 10, PerSecond: 10, LatencyP99ms: 5}}
	m := MergeLoadReports([]*LoadReport{a, b})
	r := m.LoadReport
	if r.Terminals != 8 || r.Created != 8 || r.Connected != 7 || r.SetupSeconds != 2 || r.SetupRate != 5.5 ||
		r.TextsSent != 16 || r.TextsReceived != 15 || r.Throughput != 7 {
		t.Errorf("sums %+v", r)
	}
	if r.LatencyP50ms != 2 || r.LatencyP99ms != 3 || r.LatencyMaxms != 9 {
		t.Errorf("latencies: want the largest of the processes', got %v %v %v", r.LatencyP50ms, r.LatencyP99ms, r.LatencyMaxms)
	}
	if r.Errors["x"] != 3 || r.Errors["y"] != 1 || m.BrokerRSSBytes != 120 {
		t.Errorf("errors %v, broker RSS %d", r.Errors, m.BrokerRSSBytes)
	}
	if p := r.Publish; p == nil || p.Published != 19 || p.Failed != 1 || p.PerSecond != 19 || p.LatencyP99ms != 7 {
		t.Errorf("publish %+v", r.Publish)
	}
	// The JSON is what testclient report reads for a split run: the sums at the top level, the
	// largest RSS and every process's report.
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"connected":7`, `"broker_rss_bytes":120`, `"processes":[{`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("JSON lacks %s: %s", want, raw)
		}
	}
}
