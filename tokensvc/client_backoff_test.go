package tokensvc

import (
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// TestClientServiceDown walks the clock through an outage: the service
// answers 503, then refuses connections, then comes back. Requests must be
// spaced by the backoff, the old token served only until it expires, and
// the client must recover and reset its backoff.
func TestClientServiceDown(t *testing.T) {
	stub := newVendorStub(t)
	stub.setRespond(fcmAnswer(60)) // margin: a tenth, 6 s
	var refused atomic.Bool
	closedAddr := refusedAddr(t)
	tr := stub.ts.Client().Transport.(*http.Transport).Clone()
	tr.DisableKeepAlives = true // every request dials, so "down" takes effect at once
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		addr := stub.ts.Listener.Addr().String()
		if refused.Load() {
			addr = closedAddr
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	env := newClientEnv(t, stub, ClientConfig{HTTPClient: &http.Client{Transport: tr}})
	t0 := env.clock.Now()
	if cred := env.mustGet(t, vendorURL); cred.Token != "tok-1" {
		t.Fatalf("first Get: %s", cred.Token)
	}

	// step calls Get every 250 ms until the clock reads t0+until, checks
	// what it returns and records every fetch attempt.
	type attempt struct {
		at      time.Duration
		outcome string
	}
	var attempts []attempt
	step := func(until time.Duration) {
		t.Helper()
		for now := env.clock.Now().Sub(t0); now < until; now = env.clock.Now().Sub(t0) {
			before := len(env.fetchOutcomes())
			cred, err := env.c.Get(context.Background(), vendorURL)
			env.c.waitBackground()
			for _, o := range env.fetchOutcomes()[before:] {
				attempts = append(attempts, attempt{now, o})
			}
			switch {
			case now < 60*time.Second:
				if err != nil || cred.Token != "tok-1" {
					t.Fatalf("at %v, before expiry: %+v, %v; want the old token", now, cred, err)
				}
			case err == nil:
				t.Fatalf("at %v, after expiry with the service down: got %+v", now, cred)
			case !errors.Is(err, ErrBackoff) || !errors.Is(err, ErrTokenService):
				t.Fatalf("at %v: %v, want ErrBackoff wrapping ErrTokenService", now, err)
			}
			env.clock.Advance(250 * time.Millisecond)
		}
	}

	// 503 from 54 s, within the refresh margin: background refreshes fail
	// while the old token is served, then foreground fetches fail. The
	// jitter draws its maximum: delays 2, 4, 8, 16, 32 s.
	stub.setRespond(statusAnswer(http.StatusServiceUnavailable))
	env.clock.Advance(54 * time.Second)
	step(90 * time.Second)
	// Connection refused from 90 s: delays 64, 128 s.
	refused.Store(true)
	served := stub.count()
	step(200 * time.Second)
	if stub.count() != served {
		t.Fatal("requests reached the stub while connections were refused")
	}
	// The service comes back; the next try is at 180 + 128 s.
	refused.Store(false)
	stub.setRespond(fcmAnswer(60))
	env.clock.Advance(308*time.Second - env.clock.Now().Sub(t0))
	cred := env.mustGet(t, vendorURL)
	attempts = append(attempts, attempt{env.clock.Now().Sub(t0), env.fetchOutcomes()[len(env.fetchOutcomes())-1]})

	want := []attempt{
		{54 * time.Second, OutcomeHTTP5xx}, {56 * time.Second, OutcomeHTTP5xx}, {60 * time.Second, OutcomeHTTP5xx},
		{68 * time.Second, OutcomeHTTP5xx}, {84 * time.Second, OutcomeHTTP5xx},
		{116 * time.Second, OutcomeNetwork}, {180 * time.Second, OutcomeNetwork},
		{308 * time.Second, OutcomeOK},
	}
	if !slices.Equal(attempts, want) {
		t.Fatalf("fetch attempts (offset, outcome):\n got %v\nwant %v", attempts, want)
	}
	if cred.Token == "tok-1" || cred.Expires != 60 {
		t.Fatalf("after recovery: %+v, want a new token", cred)
	}

	// Success reset the backoff: the next failure waits 2 s again.
	stub.setRespond(statusAnswer(http.StatusBadGateway))
	env.clock.Advance(time.Minute)
	if d := env.backoffUntil(t, vendorURL); d != 2*time.Second {
		t.Fatalf("first backoff after recovery: %v, want 2s", d)
	}
}

// TestClientClientErrorBackoffLonger checks the backoff floors: a 4xx
// (configuration problem) waits 30–60 s, a 5xx 1–2 s.
func TestClientClientErrorBackoffLonger(t *testing.T) {
	stub := newVendorStub(t)
	stub.setRespond(func(w http.ResponseWriter, r *http.Request, n int64) {
		if r.Host == "four.example.com" {
			statusAnswer(http.StatusForbidden)(w, r, n)
			return
		}
		statusAnswer(http.StatusInternalServerError)(w, r, n)
	})
	for _, tt := range []struct {
		name     string
		jitter   func(int64) int64
		four     time.Duration
		five     time.Duration
		fiveNext time.Duration
	}{
		{"jitter at maximum", func(n int64) int64 { return n - 1 }, 60 * time.Second, 2 * time.Second, 4 * time.Second},
		{"jitter at minimum", func(int64) int64 { return 0 }, 30 * time.Second, time.Second, time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := newClientEnv(t, stub, ClientConfig{})
			env.c.jitter = tt.jitter
			four, five := "https://four.example.com/t", "https://five.example.com/t"
			if d := env.backoffUntil(t, four); d != tt.four {
				t.Errorf("4xx backoff %v, want %v", d, tt.four)
			}
			if d := env.backoffUntil(t, five); d != tt.five {
				t.Errorf("5xx backoff %v, want %v", d, tt.five)
			}
			// In backoff: no request.
			n := stub.count()
			if d := env.backoffUntil(t, four); d != tt.four {
				t.Errorf("4xx backoff on a second Get: %v, want %v", d, tt.four)
			}
			if stub.count() != n {
				t.Error("a Get in backoff made a request")
			}
			env.clock.Advance(tt.five)
			if d := env.backoffUntil(t, five); d != tt.fiveNext {
				t.Errorf("second 5xx backoff %v, want %v", d, tt.fiveNext)
			}
			if got := env.fetchOutcomes(); !slices.Equal(got, []string{OutcomeHTTP4xx, OutcomeHTTP5xx, OutcomeHTTP5xx}) {
				t.Errorf("outcomes %v", got)
			}
		})
	}
}

func TestClientRetryAfter(t *testing.T) {
	for _, tt := range []struct {
		name   string
		status int
		header string
		want   time.Duration
	}{
		{"503 longer than backoff", http.StatusServiceUnavailable, "120", 120 * time.Second},
		{"429 longer than backoff", http.StatusTooManyRequests, "90", 90 * time.Second},
		{"429 shorter than the 4xx floor", http.StatusTooManyRequests, "5", 60 * time.Second},
		{"503 as HTTP date", http.StatusServiceUnavailable, "Sun, 01 Jun 2025 12:10:00 GMT", 10 * time.Minute},
		{"503 capped", http.StatusServiceUnavailable, "99999999", time.Hour},
		{"503 malformed", http.StatusServiceUnavailable, "soon", 2 * time.Second},
		{"ignored on 500", http.StatusInternalServerError, "600", 2 * time.Second},
		{"ignored on 400", http.StatusBadRequest, "600", 60 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			stub := newVendorStub(t)
			stub.setRespond(statusAnswer(tt.status, "Retry-After", tt.header))
			env := newClientEnv(t, stub, ClientConfig{})
			if d := env.backoffUntil(t, vendorURL); d != tt.want {
				t.Fatalf("backoff %v, want %v", d, tt.want)
			}
			env.clock.Advance(tt.want - time.Millisecond)
			if d := env.backoffUntil(t, vendorURL); d != time.Millisecond || stub.count() != 1 {
				t.Fatalf("just before the retry time: %v left, %d requests", d, stub.count())
			}
			env.clock.Advance(time.Millisecond)
			env.c.Get(context.Background(), vendorURL)
			if n := stub.count(); n != 2 {
				t.Fatalf("at the retry time: %d requests, want 2", n)
			}
		})
	}
}

func TestBackoffDelay(t *testing.T) {
	top := func(n int64) int64 { return n - 1 }
	for _, tt := range []struct {
		floor, max time.Duration
		n          int
		want       time.Duration
	}{
		{time.Second, 5 * time.Minute, 1, 2 * time.Second},
		{time.Second, 5 * time.Minute, 8, 256 * time.Second},
		{time.Second, 5 * time.Minute, 9, 5 * time.Minute},
		{time.Second, 5 * time.Minute, 1000, 5 * time.Minute},
		{30 * time.Second, 10 * time.Second, 1, 10 * time.Second}, // floor above max
	} {
		if got := backoffDelay(tt.floor, tt.max, tt.n, top); got != tt.want {
			t.Errorf("backoffDelay(%v, %v, %d) = %v, want %v", tt.floor, tt.max, tt.n, got, tt.want)
		}
	}
}
