package testclient

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rewind-broker/rewind/protocol"
)

// Load scenario defaults and limits. The limits keep a mistyped flag from turning a benchmark
// into an outage: a run is bounded in terminals, time and rate, and stops by itself.
const (
	DefaultLoadBaseID       = 262900000
	DefaultLoadTerminals    = 100
	DefaultLoadRamp         = 200 // sessions/s: fast enough for thousands in seconds, slow enough not to look like a reconnect storm
	DefaultLoadDialConc     = 64  // dials in flight
	DefaultLoadCreateConc   = 16  // admin calls in flight
	DefaultLoadSendConc     = 32  // texts being written at once
	DefaultLoadDuration     = 10 * time.Second
	DefaultLoadRate         = 100 // texts/s over all pairs
	DefaultLoadDrain        = 3 * time.Second
	DefaultLoadPasswordSeed = "rewind-load"
	DefaultLoadPublishConc  = 64 // publishes in flight
	DefaultLoadWakeConc     = 16 // wake cycles in flight

	MaxLoadTerminals = 100_000
	MaxLoadDuration  = time.Hour
	MaxLoadRate      = 200_000
	MaxLoadRamp      = 20_000
	MaxLoadConc      = 4096
	MaxLoadSources   = 254 // 127.0.0.1 … 127.0.0.254
	MaxLoadWake      = 1_000_000

	// loadCallTimeout bounds one admin call or one text write during a load run.
	loadCallTimeout = 10 * time.Second
	// loadTextPrefix starts every text the load scenario sends: "rwload <k> <send unix ns>".
	loadTextPrefix = "rwload "
	// loadPubPrefix starts every text published through the admin API to an active terminal,
	// loadWakePrefix every text published to an idle one; both are followed by "<k> <unix ns>".
	loadPubPrefix  = "rwpub "
	loadWakePrefix = "rwwake "
)

// LoadConfig describes a load run: Terminals terminals with ids BaseID+i connect at Ramp
// sessions/s, then the pairs (i, i^1) exchange private texts for Duration at Rate texts/s in
// total, and the run reports setup rate, throughput, latency and errors. Zero values take the
// defaults above; values beyond the limits are refused.
type LoadConfig struct {
	URL         string // broker WebSocket URL; must be loopback unless AllowRemote
	AllowRemote bool
	// Admin, when non-nil, is used to create the terminals first (PUT /v1/terminals/{id}) with
	// passwords from LoadPassword. Nil means the terminals already exist with those passwords.
	Admin *Admin

	BaseID       uint32
	Terminals    int
	PasswordSeed string // LoadPassword(PasswordSeed, id) is terminal id's password

	Ramp            float64 // sessions per second
	DialConcurrency int
	CreateWorkers   int
	// Sources spreads the terminals' source addresses over 127.0.0.1 … 127.0.0.Sources, so that
	// more sessions fit in the ephemeral port range and the broker's per-address limits see more
	// than one address. 0 or 1: the kernel's choice.
	Sources int

	Duration    time.Duration
	Rate        float64 // texts per second, all pairs together
	SendWorkers int
	Drain       time.Duration // after Duration, how long to wait for texts still in flight

	// API is the broker's admin listener for durable publishes (POST /v1/terminals/{id}/datagrams
	// with its key) and, for idle terminals, the developer mode's /dev/ endpoints. Needed when
	// PublishRate, IdleShare or WakeCycles is set; nil means Admin.
	API *Admin
	// IdleShare (0…1) of the terminals — the last ones — attach a push channel (a fake device
	// from POST /dev/devices, the dev token service as URL; the broker must run with --dev), go
	// idle and drop their sockets after setup.
	IdleShare float64
	// Attach makes every terminal attach a push channel right after authenticating, as part of
	// its setup (connect + challenge + auth + attach, the setup rate's full definition): the dev
	// token service as URL, a device token of its own and one set of push keys for the run (the
	// broker must run with --dev).
	Attach bool
	// PublishRate is durable publishes per second through the admin API to the active
	// terminals, during Duration, by PublishWorkers at most at once.
	PublishRate    float64
	PublishWorkers int
	// WakeCycles, after the exchange, are publish → push → reconnect → delivered → ack → idle
	// cycles over the idle terminals, WakeConcurrency at once (each terminal in one at a time).
	WakeCycles      int
	WakeConcurrency int

	BrokerPID int       // when > 0, the broker's RSS and CPU are read from /proc before and after
	Progress  io.Writer // one progress line per second; nil for none
	Logger    *slog.Logger
}

// LoadPassword derives terminal id's password for a load run: the first 32 hex digits of
// SHA-256(seed ":" id). Deterministic, so that a run can reuse terminals created by an earlier
// one.
func LoadPassword(seed string, id uint32) string {
	sum := sha256.Sum256([]byte(seed + ":" + strconv.FormatUint(uint64(id), 10)))
	return hex.EncodeToString(sum[:16])
}

// CheckLoopback returns an error unless rawURL's host is a loopback IP address or "localhost".
// Names other than localhost are refused rather than resolved: a name can point anywhere.
func CheckLoopback(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("testclient: %q is not a loopback address; load runs target loopback only unless remote targets are explicitly allowed", host)
}

func (cfg LoadConfig) withDefaults() (LoadConfig, error) {
	if cfg.URL == "" {
		return cfg, errors.New("testclient: load: URL is required")
	}
	if !cfg.AllowRemote {
		if err := CheckLoopback(cfg.URL); err != nil {
			return cfg, err
		}
		if cfg.Admin != nil {
			if err := CheckLoopback(cfg.Admin.URL); err != nil {
				return cfg, err
			}
		}
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&cfg.Terminals, DefaultLoadTerminals)
	def(&cfg.DialConcurrency, DefaultLoadDialConc)
	def(&cfg.CreateWorkers, DefaultLoadCreateConc)
	def(&cfg.SendWorkers, DefaultLoadSendConc)
	def(&cfg.Sources, 1)
	def(&cfg.PublishWorkers, DefaultLoadPublishConc)
	def(&cfg.WakeConcurrency, DefaultLoadWakeConc)
	if cfg.API == nil {
		cfg.API = cfg.Admin
	}
	if cfg.API != nil && !cfg.AllowRemote {
		if err := CheckLoopback(cfg.API.URL); err != nil {
			return cfg, err
		}
	}
	if cfg.BaseID == 0 {
		cfg.BaseID = DefaultLoadBaseID
	}
	if cfg.PasswordSeed == "" {
		cfg.PasswordSeed = DefaultLoadPasswordSeed
	}
	if cfg.Ramp == 0 {
		cfg.Ramp = DefaultLoadRamp
	}
	if cfg.Duration == 0 {
		cfg.Duration = DefaultLoadDuration
	}
	if cfg.Rate == 0 {
		cfg.Rate = DefaultLoadRate
	}
	if cfg.Drain == 0 {
		cfg.Drain = DefaultLoadDrain
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case cfg.Terminals < 2 || cfg.Terminals > MaxLoadTerminals:
		return cfg, fmt.Errorf("testclient: load: terminals must be 2…%d, got %d", MaxLoadTerminals, cfg.Terminals)
	case uint64(cfg.BaseID)+uint64(cfg.Terminals) > 1<<32:
		return cfg, fmt.Errorf("testclient: load: ids %d + %d overflow 32 bits", cfg.BaseID, cfg.Terminals)
	case cfg.Ramp < 0 || cfg.Ramp > MaxLoadRamp:
		return cfg, fmt.Errorf("testclient: load: ramp must be 0…%d sessions/s, got %g", MaxLoadRamp, cfg.Ramp)
	case cfg.Rate < 0 || cfg.Rate > MaxLoadRate:
		return cfg, fmt.Errorf("testclient: load: rate must be 0…%d texts/s, got %g", MaxLoadRate, cfg.Rate)
	case cfg.Duration < 0 || cfg.Duration > MaxLoadDuration:
		return cfg, fmt.Errorf("testclient: load: duration must be 0…%v, got %v", MaxLoadDuration, cfg.Duration)
	case cfg.Drain < 0 || cfg.Drain > time.Minute:
		return cfg, fmt.Errorf("testclient: load: drain must be 0…1m, got %v", cfg.Drain)
	case cfg.Sources < 1 || cfg.Sources > MaxLoadSources:
		return cfg, fmt.Errorf("testclient: load: sources must be 1…%d, got %d", MaxLoadSources, cfg.Sources)
	case !(cfg.IdleShare >= 0 && cfg.IdleShare <= 1):
		return cfg, fmt.Errorf("testclient: load: idle share must be 0…1, got %g", cfg.IdleShare)
	case cfg.PublishRate < 0 || cfg.PublishRate > MaxLoadRate:
		return cfg, fmt.Errorf("testclient: load: publish rate must be 0…%d publishes/s, got %g", MaxLoadRate, cfg.PublishRate)
	case cfg.WakeCycles < 0 || cfg.WakeCycles > MaxLoadWake:
		return cfg, fmt.Errorf("testclient: load: wake cycles must be 0…%d, got %d", MaxLoadWake, cfg.WakeCycles)
	case cfg.WakeCycles > 0 && cfg.idleCount() == 0:
		return cfg, errors.New("testclient: load: wake cycles need idle terminals: set an idle share")
	case (cfg.PublishRate > 0 || cfg.idleCount() > 0 || cfg.Attach) && cfg.API == nil:
		return cfg, errors.New("testclient: load: publishes, idle terminals and attaching need the admin API (URL and key)")
	case cfg.PublishRate > 0 && cfg.idleCount() == cfg.Terminals:
		return cfg, errors.New("testclient: load: publishes go to active terminals, and every terminal is idle")
	}
	for _, c := range []struct {
		name string
		v    int
	}{{"dial concurrency", cfg.DialConcurrency}, {"create workers", cfg.CreateWorkers}, {"send workers", cfg.SendWorkers},
		{"publish workers", cfg.PublishWorkers}, {"wake concurrency", cfg.WakeConcurrency}} {
		if c.v < 1 || c.v > MaxLoadConc {
			return cfg, fmt.Errorf("testclient: load: %s must be 1…%d, got %d", c.name, MaxLoadConc, c.v)
		}
	}
	if cfg.Sources > 1 {
		u, _ := url.Parse(cfg.URL)
		if ip := net.ParseIP(u.Hostname()); (ip == nil || ip.To4() == nil) && u.Hostname() != "localhost" {
			return cfg, errors.New("testclient: load: spreading sources over 127.0.0.x needs an IPv4 loopback URL")
		}
	}
	return cfg, nil
}

// idleCount is how many terminals (the last ones) go idle.
func (cfg LoadConfig) idleCount() int {
	return int(cfg.IdleShare*float64(cfg.Terminals) + 0.5)
}

// LoadReport is the result of a load run. Latencies are from the sender's write to the
// receiver's Recv, in milliseconds.
type LoadReport struct {
	Terminals    int     `json:"terminals"`
	Created      int     `json:"created"`
	Connected    int     `json:"connected"`
	SetupSeconds float64 `json:"setup_seconds"`
	SetupRate    float64 `json:"setup_sessions_per_second"`
	SetupAttach  bool    `json:"setup_includes_attach,omitempty"` // LoadConfig.Attach
	// SetupBrokerCPUPerSession is the broker's CPU (µs, from /proc) per session set up, over
	// the connect phase; with BrokerPID only.
	SetupBrokerCPUPerSession float64 `json:"setup_broker_cpu_us_per_session,omitempty"`
	// ExchangeBrokerCPUPerOp is the broker's CPU (µs) per text or publish during the exchange
	// and drain; with BrokerPID only.
	ExchangeBrokerCPUPerOp float64          `json:"exchange_broker_cpu_us_per_op,omitempty"`
	ExchangeSeconds        float64          `json:"exchange_seconds"`
	TextsSent              int64            `json:"texts_sent"`
	TextsReceived          int64            `json:"texts_received"`
	Throughput             float64          `json:"texts_received_per_second"`
	LatencyP50ms           float64          `json:"latency_p50_ms"`
	LatencyP99ms           float64          `json:"latency_p99_ms"`
	LatencyMaxms           float64          `json:"latency_max_ms"`
	Errors                 map[string]int64 `json:"errors"`
	Broker                 *BrokerUsage     `json:"broker,omitempty"`

	Idle    *LoadIdleReport    `json:"idle,omitempty"`
	Publish *LoadPublishReport `json:"publish,omitempty"`
	Wake    *LoadWakeReport    `json:"wake,omitempty"`
}

// LoadIdleReport covers the terminals that went idle after setup (LoadConfig.IdleShare).
type LoadIdleReport struct {
	Terminals    int     `json:"terminals"` // asked to go idle
	Idle         int     `json:"idle"`      // attached, idle, socket dropped
	SetupSeconds float64 `json:"setup_seconds"`
}

// LoadPublishReport covers the durable publishes through the admin API (LoadConfig.PublishRate).
// Latency is the POST's round trip (stored, fsync'd, answered); delivery is from before the POST
// to the active terminal's Recv.
type LoadPublishReport struct {
	Offered        float64 `json:"offered_per_second"`
	Published      int64   `json:"published"`
	Failed         int64   `json:"failed"`
	Delivered      int64   `json:"delivered"`
	PerSecond      float64 `json:"published_per_second"`
	LatencyP50ms   float64 `json:"latency_p50_ms"`
	LatencyP99ms   float64 `json:"latency_p99_ms"`
	LatencyMaxms   float64 `json:"latency_max_ms"`
	DeliveryP50ms  float64 `json:"delivery_p50_ms"`
	DeliveryP99ms  float64 `json:"delivery_p99_ms"`
	DeliveryMaxms  float64 `json:"delivery_max_ms"`
	BrokerCPUPerOp float64 `json:"broker_cpu_us_per_op,omitempty"` // exchange phase CPU / (texts + publishes)
}

// LoadWakeReport covers the wake cycles (LoadConfig.WakeCycles). Push latency is from before the
// publish to the push on /dev/pushes/stream; latency from before the publish to the stored text's
// arrival on the reconnected session. Lost are texts published (answered 200) that no session
// of their terminal received, retries included.
type LoadWakeReport struct {
	Cycles           int     `json:"cycles"`
	Published        int64   `json:"published"`
	Pushes           int64   `json:"pushes"`
	Delivered        int64   `json:"delivered"`
	Lost             int64   `json:"lost"`
	Seconds          float64 `json:"seconds"`
	PerSecond        float64 `json:"cycles_per_second"`
	PushP50ms        float64 `json:"push_p50_ms"`
	PushP99ms        float64 `json:"push_p99_ms"`
	LatencyP50ms     float64 `json:"latency_p50_ms"`
	LatencyP99ms     float64 `json:"latency_p99_ms"`
	LatencyMaxms     float64 `json:"latency_max_ms"`
	UnmatchedPushes  int64   `json:"unmatched_pushes"`
	BrokerCPUSeconds float64 `json:"broker_cpu_seconds,omitempty"`
	BrokerCPUPerOp   float64 `json:"broker_cpu_us_per_cycle,omitempty"`
}

// BrokerUsage is the broker process's footprint around the run: Before is read before the
// first session connects, After once the exchange is over and every session still connected.
type BrokerUsage struct {
	PID                int       `json:"pid"`
	Before             ProcStats `json:"before"`
	After              ProcStats `json:"after"`
	RSSPerSessionBytes int64     `json:"rss_per_session_bytes"`
	CPUSecondsUsed     float64   `json:"cpu_seconds_used"`
}

// NewBrokerUsage is the broker's footprint between before and after with live sessions
// connected (RSS per session is left zero without any).
func NewBrokerUsage(pid int, before, after ProcStats, live int) *BrokerUsage {
	u := &BrokerUsage{PID: pid, Before: before, After: after, CPUSecondsUsed: after.CPUSeconds - before.CPUSeconds}
	if live > 0 {
		u.RSSPerSessionBytes = (after.RSSBytes - before.RSSBytes) / int64(live)
	}
	return u
}

// WriteText prints the report for a person.
func (r *LoadReport) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "terminals      %d (created %d, connected %d)\n", r.Terminals, r.Created, r.Connected)
	what := "connect + challenge + auth"
	if r.SetupAttach {
		what += " + attach"
	}
	fmt.Fprintf(&b, "setup          %.1f sessions/s (%.2fs; %s)\n", r.SetupRate, r.SetupSeconds, what)
	if r.SetupBrokerCPUPerSession > 0 {
		fmt.Fprintf(&b, "  broker CPU   %.0f µs/session set up\n", r.SetupBrokerCPUPerSession)
	}
	fmt.Fprintf(&b, "texts          sent %d, received %d in %.2fs: %.1f texts/s\n", r.TextsSent, r.TextsReceived, r.ExchangeSeconds, r.Throughput)
	fmt.Fprintf(&b, "latency        p50 %.3fms  p99 %.3fms  max %.3fms\n", r.LatencyP50ms, r.LatencyP99ms, r.LatencyMaxms)
	if p := r.Publish; p != nil {
		fmt.Fprintf(&b, "publishes      %d of %.0f/s offered: %.1f/s, %d failed, %d delivered\n", p.Published, p.Offered, p.PerSecond, p.Failed, p.Delivered)
		fmt.Fprintf(&b, "  latency      p50 %.3fms  p99 %.3fms  max %.3fms (POST answered)\n", p.LatencyP50ms, p.LatencyP99ms, p.LatencyMaxms)
		fmt.Fprintf(&b, "  delivery     p50 %.3fms  p99 %.3fms  max %.3fms (publish → terminal)\n", p.DeliveryP50ms, p.DeliveryP99ms, p.DeliveryMaxms)
	}
	if i := r.Idle; i != nil {
		fmt.Fprintf(&b, "idle           %d of %d attached and idle (%.2fs)\n", i.Idle, i.Terminals, i.SetupSeconds)
	}
	if wk := r.Wake; wk != nil {
		fmt.Fprintf(&b, "wake cycles    %d asked, %d published, %d pushes, %d delivered, lost %d in %.2fs: %.1f cycles/s\n",
			wk.Cycles, wk.Published, wk.Pushes, wk.Delivered, wk.Lost, wk.Seconds, wk.PerSecond)
		fmt.Fprintf(&b, "  push         p50 %.3fms  p99 %.3fms (publish → push)\n", wk.PushP50ms, wk.PushP99ms)
		fmt.Fprintf(&b, "  delivered    p50 %.3fms  p99 %.3fms  max %.3fms (idle → push → reconnect → delivered)\n", wk.LatencyP50ms, wk.LatencyP99ms, wk.LatencyMaxms)
		if wk.BrokerCPUSeconds > 0 {
			fmt.Fprintf(&b, "  broker CPU   %.2fs, %.0f µs/cycle\n", wk.BrokerCPUSeconds, wk.BrokerCPUPerOp)
		}
	}
	if len(r.Errors) == 0 {
		b.WriteString("errors         none\n")
	} else {
		b.WriteString("errors\n")
		for _, k := range sortedKeys(r.Errors) {
			fmt.Fprintf(&b, "  %-24s %d\n", k, r.Errors[k])
		}
	}
	if u := r.Broker; u != nil {
		fmt.Fprintf(&b, "broker pid %d   RSS %.1f MiB → %.1f MiB (%d bytes/session), CPU %.2fs used\n",
			u.PID, float64(u.Before.RSSBytes)/(1<<20), float64(u.After.RSSBytes)/(1<<20), u.RSSPerSessionBytes, u.CPUSecondsUsed)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// errorCounts counts errors by kind ("dial_close_4429", "broker_error_404", ...).
type errorCounts struct {
	mu sync.Mutex
	m  map[string]int64
}

func (e *errorCounts) add(kind string) { e.addN(kind, 1) }

func (e *errorCounts) addN(kind string, n int64) {
	if n <= 0 {
		return
	}
	e.mu.Lock()
	if e.m == nil {
		e.m = make(map[string]int64)
	}
	e.m[kind] += n
	e.mu.Unlock()
}

func (e *errorCounts) total() (n int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, v := range e.m {
		n += v
	}
	return n
}

func (e *errorCounts) snapshot() map[string]int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]int64, len(e.m))
	for k, v := range e.m {
		out[k] = v
	}
	return out
}

// errorKind names err for the report: the close code or broker error code when there is one.
func errorKind(prefix string, err error) string {
	var be protocol.BrokerError
	switch {
	case errors.As(err, &be):
		return fmt.Sprintf("%s_broker_error_%d", prefix, be.Code)
	case CloseCode(err) >= 0:
		return fmt.Sprintf("%s_close_%d", prefix, CloseCode(err))
	case errors.Is(err, context.DeadlineExceeded):
		return prefix + "_timeout"
	case errors.Is(err, ErrBrokerProtocol):
		return prefix + "_protocol"
	}
	return prefix + "_other"
}

// CheckLoadConfig reports what RunLoad would refuse in cfg (limits, non-loopback targets)
// without running anything, so that a command can treat it as a usage error.
func CheckLoadConfig(cfg LoadConfig) error {
	_, err := cfg.withDefaults()
	return err
}
