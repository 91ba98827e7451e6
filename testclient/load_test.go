package testclient

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestCheckLoopback(t *testing.T) {
	for u, ok := range map[string]bool{
		"ws://127.0.0.1:4000/rewind":   true,
		"ws://127.9.8.7/rewind":        true,
		"ws://[::1]:4000/rewind":       true,
		"ws://localhost:4000/rewind":   true,
		"http://127.0.0.1:4001":        true,
		"ws://10.0.0.1:4000/rewind":    false,
		"ws://example.com/rewind":      false,
		"ws://localhost.evil.com/x":    false,
		"wss://[2001:db8::1]:443/x":    false,
		"ws://0.0.0.0:4000/rewind":     false,
		"ws://127.0.0.1.nip.io/rewind": false,
	} {
		if err := CheckLoopback(u); (err == nil) != ok {
			t.Errorf("CheckLoopback(%q) = %v, want ok=%v", u, err, ok)
		}
	}
}

func TestLoadPassword(t *testing.T) {
	a, b := LoadPassword("s", 1), LoadPassword("s", 2)
	if a != LoadPassword("s", 1) || a == b || a == LoadPassword("t", 1) || len(a) != 32 {
		t.Errorf("passwords %q %q", a, b)
	}
}

func TestLoadConfigRefuses(t *testing.T) {
	ok := LoadConfig{URL: "ws://127.0.0.1:4000/rewind"}
	for name, mutate := range map[string]func(*LoadConfig){
		"remote url":       func(c *LoadConfig) { c.URL = "ws://192.0.2.1/rewind" },
		"remote admin":     func(c *LoadConfig) { c.Admin = &Admin{URL: "http://192.0.2.1:4001"} },
		"no url":           func(c *LoadConfig) { c.URL = "" },
		"one terminal":     func(c *LoadConfig) { c.Terminals = 1 },
		"too many":         func(c *LoadConfig) { c.Terminals = MaxLoadTerminals + 1 },
		"too long":         func(c *LoadConfig) { c.Duration = 2 * time.Hour },
		"rate":             func(c *LoadConfig) { c.Rate = MaxLoadRate + 1 },
		"sources":          func(c *LoadConfig) { c.Sources = 255 },
		"sources on ipv6":  func(c *LoadConfig) { c.URL = "ws://[::1]:4000/rewind"; c.Sources = 4 },
		"id overflow":      func(c *LoadConfig) { c.BaseID = 1<<32 - 10 },
		"send workers":     func(c *LoadConfig) { c.SendWorkers = -1 },
		"dial concurrency": func(c *LoadConfig) { c.DialConcurrency = MaxLoadConc + 1 },
		"idle share":       func(c *LoadConfig) { c.IdleShare = 1.5; c.API = &Admin{URL: "http://127.0.0.1:1"} },
		"idle share NaN":   func(c *LoadConfig) { c.IdleShare = math.NaN() },
		"idle without api": func(c *LoadConfig) { c.IdleShare = 0.5 },
		"publish no api":   func(c *LoadConfig) { c.PublishRate = 10 },
		"publish rate":     func(c *LoadConfig) { c.PublishRate = -1; c.API = &Admin{URL: "http://127.0.0.1:1"} },
		"wake no idle":     func(c *LoadConfig) { c.WakeCycles = 10; c.API = &Admin{URL: "http://127.0.0.1:1"} },
		"wake negative":    func(c *LoadConfig) { c.WakeCycles = -1 },
		"remote api":       func(c *LoadConfig) { c.API = &Admin{URL: "http://192.0.2.1:4001"}; c.PublishRate = 1 },
		"publish all idle": func(c *LoadConfig) { c.API = &Admin{URL: "http://127.0.0.1:1"}; c.PublishRate = 1; c.IdleShare = 1 },
	} {
		cfg := ok
		mutate(&cfg)
		if _, err := cfg.withDefaults(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := ok.withDefaults(); err != nil {
		t.Errorf("defaults refused: %v", err)
	}
	remote := LoadConfig{URL: "ws://192.0.2.1/rewind", AllowRemote: true}
	if _, err := remote.withDefaults(); err != nil {
		t.Errorf("remote with AllowRemote refused: %v", err)
	}
}

func TestRunLoadAgainstFakeBroker(t *testing.T) {
	const seed, base, n = "test-seed", 262900000, 6
	var admin struct {
		sync.Mutex
		passwords map[string]string
	}
	admin.passwords = make(map[string]string)
	adminSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Password string }
		if r.Method != http.MethodPut || r.Header.Get("Authorization") != "Bearer key" || json.NewDecoder(r.Body).Decode(&body) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		admin.Lock()
		admin.passwords[strings.TrimPrefix(r.URL.Path, "/v1/terminals/")] = body.Password
		admin.Unlock()
		w.WriteHeader(http.StatusCreated)
	}))
	defer adminSrv.Close()
	f := newRoutingFakeBroker(t, func(id uint32) string { return LoadPassword(seed, id) })

	var progress bytes.Buffer
	rep, err := RunLoad(testContext(t), LoadConfig{
		URL:          f.url(),
		Admin:        &Admin{URL: adminSrv.URL, Key: "key"},
		BaseID:       base,
		Terminals:    n,
		PasswordSeed: seed,
		Sources:      3,
		Duration:     300 * time.Millisecond,
		Rate:         200,
		BrokerPID:    os.Getpid(),
		Progress:     &progress,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Created != n || rep.Connected != n || len(admin.passwords) != n {
		t.Errorf("created %d (admin saw %d), connected %d, want %d", rep.Created, len(admin.passwords), rep.Connected, n)
	}
	if admin.passwords["262900003"] != LoadPassword(seed, 262900003) {
		t.Errorf("admin got password %q", admin.passwords["262900003"])
	}
	if rep.TextsSent == 0 || rep.TextsReceived != rep.TextsSent || len(rep.Errors) != 0 {
		t.Errorf("sent %d, received %d, errors %v", rep.TextsSent, rep.TextsReceived, rep.Errors)
	}
	if rep.LatencyP50ms <= 0 || rep.LatencyP99ms < rep.LatencyP50ms || rep.LatencyMaxms < rep.LatencyP99ms || rep.SetupRate <= 0 || rep.Throughput <= 0 {
		t.Errorf("report %+v", rep)
	}
	if rep.Broker == nil || rep.Broker.PID != os.Getpid() || rep.Broker.After.RSSBytes == 0 {
		t.Errorf("broker usage %+v", rep.Broker)
	}
	f.routeMu.Lock()
	acked := len(f.acks)
	f.routeMu.Unlock()
	if acked != n {
		t.Errorf("%d terminals acknowledged their stored deliveries, want %d", acked, n)
	}
	var text bytes.Buffer
	rep.WriteText(&text)
	for _, want := range []string{"setup", "texts", "latency", "p99", "errors         none", "bytes/session"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
	if _, err := json.Marshal(rep); err != nil {
		t.Error(err)
	}
}

func TestRunLoadWrongAdminKey(t *testing.T) {
	adminSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusUnauthorized)
	}))
	defer adminSrv.Close()
	_, err := RunLoad(testContext(t), LoadConfig{URL: "ws://127.0.0.1:1/rewind", Admin: &Admin{URL: adminSrv.URL}, Terminals: 4})
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("RunLoad = %v, want the admin's 401", err)
	}
}

func TestRunLoadCountsRefusals(t *testing.T) {
	f := newRoutingFakeBroker(t, func(uint32) string { return "not what the load run derives" })
	rep, err := RunLoad(testContext(t), LoadConfig{URL: f.url(), Terminals: 4, Duration: time.Millisecond, Drain: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Connected != 0 || rep.Errors["dial_broker_error_401"] != 4 || rep.Errors["exchange_no_pairs"] != 1 {
		t.Errorf("report %+v", rep)
	}
}

func TestMarkedText(t *testing.T) {
	at := time.Unix(0, 1234567890123)
	for _, prefix := range []string{loadTextPrefix, loadPubPrefix, loadWakePrefix} {
		p, k, got, ok := parseMarkedText(markedText(prefix, 42, at))
		if !ok || p != prefix || k != 42 || !got.Equal(at) {
			t.Errorf("%q: %q %d %v %v", prefix, p, k, got, ok)
		}
	}
	for _, bad := range []string{"hello", "rwload x 1", "rwpub 1", "rwwake 1 y", ""} {
		if _, _, _, ok := parseMarkedText(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
	if _, ok := parseLoadText(markedText(loadPubPrefix, 1, at)); ok {
		t.Error("a publish text is not a load text")
	}
}

// Idle terminals need the developer mode: a broker without it is refused before anything is
// created.
func TestRunLoadIdleNeedsDev(t *testing.T) {
	var created atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			created.Store(true)
		}
		http.Error(w, `{"error":"no such endpoint"}`, http.StatusNotFound)
	}))
	defer srv.Close()
	_, err := RunLoad(testContext(t), LoadConfig{URL: "ws://127.0.0.1:1/rewind", Admin: &Admin{URL: srv.URL, Key: "k"},
		Terminals: 4, IdleShare: 0.5, WakeCycles: 2})
	if !errors.Is(err, ErrNotDevBroker) || !strings.Contains(err.Error(), "--dev") || created.Load() {
		t.Errorf("RunLoad = %v (created %v), want ErrNotDevBroker first", err, created.Load())
	}
}
