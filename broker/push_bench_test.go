//go:build unix

package broker

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rewind-broker/rewind/protocol"
	"github.com/rewind-broker/rewind/testclient"
	"github.com/rewind-broker/rewind/testclient/pushsim"
	"github.com/rewind-broker/rewind/tokensvc"
)

// The push benchmarks run the fake FCM in a child process (this test binary, re-executed), so
// that this process's CPU time is the sender's alone: broker CPU per push is the process's
// rusage (user + system, GC and the testing framework included) over the timed loop divided by
// the pushes sent. The sender is configured as in production (its default HTTP/2 transport,
// trusting the child's certificate), warmed up by one send before the timer starts.
//
// Metrics, besides ns/op, B/op and allocs/op of this process:
//
//	pushes/s            pushes answered 200 per second of wall time
//	µs-cpu/push         this process's CPU per push (the broker's share)
//	fake-µs-cpu/push    the child's CPU per push, from /proc (Linux; absent elsewhere)
//	p50-ms, p99-ms      one Send (for the wake path: the wake's start) to the provider's
//	                    answer: an upper bound of the latency the broker adds, since the fake
//	                    answers at once
//	wake-p99-ms         the wake path only: its start to its outcome reported (audit stored)
func init() { pushsim.ServeFCMProcessIfAsked() }

// remoteFCMEnv is an FCMSender over its default transport to a fake FCM in a child process.
type remoteFCMEnv struct {
	sim    *pushsim.FCMProcess
	sender *FCMSender
	req    PushRequest
}

func newRemoteFCMEnv(b *testing.B) *remoteFCMEnv {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sim, err := pushsim.StartFCMProcess(ctx, "", "proj-a", 1)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := sim.Close(); err != nil {
			b.Errorf("fake FCM process: %v", err)
		}
	})
	tr := newFCMTransport()
	tr.TLSClientConfig = &tls.Config{RootCAs: sim.CertPool()}
	b.Cleanup(tr.CloseIdleConnections)
	s, err := NewFCMSender(FCMConfig{Endpoint: sim.URL + "/v1", Transport: tr, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	e := &remoteFCMEnv{sim: sim, sender: s, req: PushRequest{
		Platform:    PlatformFCM,
		DeviceToken: sim.Device,
		Credential:  tokensvc.Credential{Type: tokensvc.TypeFCM, Project: sim.Project, Token: sim.Bearer, Expires: 3600},
		Kind:        PushKindData,
		Enc:         PushEncAES128GCM,
		Body:        make([]byte, 256), // a sealed text message's size
		Visible:     true,
		TTL:         3600 * time.Second,
		CollapseID:  "rewind-262000101",
	}}
	if _, err := s.Send(ctx, e.req); err != nil { // connection set-up is not part of a push
		b.Fatal(err)
	}
	return e
}

// pushMeter measures the timed part of a push benchmark.
type pushMeter struct {
	child     int
	start     time.Time
	cpu       time.Duration
	childCPU  float64
	childOK   bool
	latencies latencyHist
}

func (m *pushMeter) begin(childPid int) {
	m.child = childPid
	ps, err := testclient.ReadProcStats(childPid)
	m.childCPU, m.childOK = ps.CPUSeconds, err == nil
	m.cpu = selfCPU()
	m.start = time.Now()
}

func (m *pushMeter) report(b *testing.B, pushes int) {
	elapsed, cpu := time.Since(m.start), selfCPU()-m.cpu
	if pushes == 0 {
		return
	}
	b.ReportMetric(float64(pushes)/elapsed.Seconds(), "pushes/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(pushes), "µs-cpu/push")
	if ps, err := testclient.ReadProcStats(m.child); err == nil && m.childOK {
		b.ReportMetric((ps.CPUSeconds-m.childCPU)*1e6/float64(pushes), "fake-µs-cpu/push")
	}
	b.ReportMetric(m.latencies.quantile(0.50).Seconds()*1000, "p50-ms")
	b.ReportMetric(m.latencies.quantile(0.99).Seconds()*1000, "p99-ms")
}

// selfCPU is this process's user + system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// latencyHist counts durations in latencyStep buckets up to latencyMax (longer ones in the last
// bucket), without allocating and safely from many goroutines.
type latencyHist struct {
	counts [latencyMax / latencyStep]atomic.Uint32
	n      atomic.Uint64
}

const (
	latencyStep = 5 * time.Microsecond
	latencyMax  = 200 * time.Millisecond
)

func (h *latencyHist) record(d time.Duration) {
	i := min(int(d/latencyStep), len(h.counts)-1)
	h.counts[i].Add(1)
	h.n.Add(1)
}

// quantile is the upper edge of the bucket holding the q-quantile.
func (h *latencyHist) quantile(q float64) time.Duration {
	rank := uint64(q*float64(h.n.Load()) + 0.5)
	var seen uint64
	for i := range h.counts {
		seen += uint64(h.counts[i].Load())
		if seen >= max(rank, 1) {
			return time.Duration(i+1) * latencyStep
		}
	}
	return latencyMax
}

// BenchmarkFCMSend measures one push at a time through FCMSender (firebase SDK, HTTP/2 TLS on
// loopback) to the fake FCM in a child process, with a cached access token.
func BenchmarkFCMSend(b *testing.B) {
	e := newRemoteFCMEnv(b)
	ctx := context.Background()
	m := &pushMeter{}
	b.ReportAllocs()
	m.begin(e.sim.Pid())
	for b.Loop() {
		t := time.Now()
		if _, err := e.sender.Send(ctx, e.req); err != nil {
			b.Fatal(err)
		}
		m.latencies.record(time.Since(t))
	}
	m.report(b, b.N)
}

// BenchmarkFCMSendParallel is BenchmarkFCMSend from DefaultWakeWorkers goroutines, as many as
// the wake path sends from, over the sender's one HTTP/2 connection.
func BenchmarkFCMSendParallel(b *testing.B) {
	e := newRemoteFCMEnv(b)
	ctx := context.Background()
	m := &pushMeter{}
	b.SetParallelism(max(DefaultWakeWorkers/runtime.GOMAXPROCS(0), 1))
	b.ReportAllocs()
	b.ResetTimer()
	m.begin(e.sim.Pid())
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			t := time.Now()
			if _, err := e.sender.Send(ctx, e.req); err != nil {
				b.Error(err)
				return
			}
			m.latencies.record(time.Since(t))
		}
	})
	m.report(b, b.N)
}

// BenchmarkWakePushParallel measures the broker's whole wake path for one push to an idle
// terminal whose access token is cached: attach lookup, outbox read, the push built (the stored
// text sealed for the terminal's keys), the FCM send to the fake in a child process, metrics,
// the push audit record and the event. DefaultWakeWorkers goroutines run the wake workers'
// function, each for two terminals of its own in turn (the waker never pushes one terminal
// twice at once). The broker logs at Info level as JSON to io.Discard.
func BenchmarkWakePushParallel(b *testing.B) {
	workers := max(DefaultWakeWorkers/runtime.GOMAXPROCS(0), 1) * runtime.GOMAXPROCS(0)
	terminals := 2 * workers
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	sim, err := pushsim.StartFCMProcess(ctx, "", fcmProject, terminals)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := sim.Close(); err != nil {
			b.Errorf("fake FCM process: %v", err)
		}
	})
	vendor := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		json.NewEncoder(rw).Encode(tokensvc.Credential{Type: tokensvc.TypeFCM, Project: fcmProject, Token: sim.Bearer, Expires: 3600})
	}))
	b.Cleanup(vendor.Close)
	// The real clock throughout: the audit trail keys records by time, and a frozen clock would
	// make every append probe past all earlier records of the terminal.
	tokens, err := tokensvc.NewClient(tokensvc.ClientConfig{Policy: tokensvc.URLPolicy{AllowInsecure: true}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tokens.Close() })
	tr := newFCMTransport()
	tr.TLSClientConfig = &tls.Config{RootCAs: sim.CertPool()}
	b.Cleanup(tr.CloseIdleConnections)
	logger := slog.New(slog.NewJSONHandler(io.Discard, nil))
	fcm, err := NewFCMSender(FCMConfig{Endpoint: sim.URL + "/v1", Transport: tr, Logger: logger})
	if err != nil {
		b.Fatal(err)
	}
	answered := &answerTimes{at: make(map[string]*atomic.Int64, terminals)}
	for _, d := range sim.Devices {
		answered.at[d] = new(atomic.Int64)
	}
	h := newHarness(b, func(c *Config) {
		c.Clock, c.Logger = nil, logger
		c.Push = &PushConfig{Tokens: tokens, Senders: map[Platform]Sender{PlatformFCM: answered.wrap(fcm)}, Policy: tokensvc.URLPolicy{AllowInsecure: true}}
	})

	ids := make([]uint32, terminals)
	text, _ := protocol.TextMessage{Source: 2620009, Destination: 2620100, Text: "wake up, a text is waiting"}.Encode()
	stored := protocol.Datagram{Type: protocol.TypeMessageText, Data: text}.MustEncode()
	for i := range ids {
		ids[i] = 2620100 + uint32(i)
		h.addTerminal(ids[i], "p")
		keys, err := testclient.GenerateKeys()
		if err != nil {
			b.Fatal(err)
		}
		c, err := testclient.Dial(ctx, h.config(ids[i], "p"))
		if err != nil {
			b.Fatal(err)
		}
		opt := testclient.AttachOptions{URL: vendor.URL + "/token?code=s3cret", Token: sim.Devices[i], Platform: "fcm", Keys: keys, Name: "phone"}
		if err := c.Attach(ctx, opt); err != nil {
			b.Fatal(err)
		}
		if err := c.Idle(ctx); err != nil {
			b.Fatal(err)
		}
		c.Abort()
		h.waitClosed()
		// Stored behind the broker's back: no wake is requested, the benchmark does them.
		if _, err := h.store.Append(ctx, ids[i], stored, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	if out, _ := h.srv.waker.wake(ids[0]); out != WakeSent { // token fetched, connection set up
		b.Fatalf("warm-up wake: %s", out)
	}

	m := &pushMeter{}
	var whole latencyHist
	var next atomic.Int32
	b.SetParallelism(workers / runtime.GOMAXPROCS(0))
	b.ReportAllocs()
	b.ResetTimer()
	m.begin(sim.Pid())
	b.RunParallel(func(pb *testing.PB) {
		g := int(next.Add(1)-1) % workers
		for i := 0; pb.Next(); i++ {
			k := 2*g + i%2
			t := time.Now()
			if out, _ := h.srv.waker.wake(ids[k]); out != WakeSent {
				b.Errorf("wake: %s", out)
				return
			}
			whole.record(time.Since(t))
			m.latencies.record(time.Unix(0, answered.at[sim.Devices[k]].Load()).Sub(t))
		}
	})
	m.report(b, b.N)
	// The wake until its outcome is reported: the audit record is stored after the answer.
	b.ReportMetric(whole.quantile(0.99).Seconds()*1000, "wake-p99-ms")
}

// answerTimes notes when the provider answered the last push to each device, so that the wake
// benchmark can time "wake starts → provider answers" apart from the audit that follows.
type answerTimes struct {
	at map[string]*atomic.Int64 // device token → UnixNano of the last answer; read-only map
}

func (a *answerTimes) wrap(s Sender) Sender { return answerTimer{s, a} }

type answerTimer struct {
	Sender
	times *answerTimes
}

func (t answerTimer) Send(ctx context.Context, req PushRequest) (PushResult, error) {
	res, err := t.Sender.Send(ctx, req)
	if at := t.times.at[req.DeviceToken]; at != nil {
		at.Store(time.Now().UnixNano())
	}
	return res, err
}
