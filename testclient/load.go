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

	MaxLoadTerminals = 100_000
	MaxLoadDuration  = time.Hour
	MaxLoadRate      = 200_000
	MaxLoadRamp      = 20_000
	MaxLoadConc      = 4096
	MaxLoadSources   = 254 // 127.0.0.1 … 127.0.0.254

	// loadCallTimeout bounds one admin call or one text write during a load run.
	loadCallTimeout = 10 * time.Second
	// loadTextPrefix starts every text the load scenario sends: "rwload <k> <send unix ns>".
	loadTextPrefix = "rwload "
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
	}
	for _, c := range []struct {
		name string
		v    int
	}{{"dial concurrency", cfg.DialConcurrency}, {"create workers", cfg.CreateWorkers}, {"send workers", cfg.SendWorkers}} {
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

// LoadReport is the result of a load run. Latencies are from the sender's write to the
// receiver's Recv, in milliseconds.
type LoadReport struct {
	Terminals       int              `json:"terminals"`
	Created         int              `json:"created"`
	Connected       int              `json:"connected"`
	SetupSeconds    float64          `json:"setup_seconds"`
	SetupRate       float64          `json:"setup_sessions_per_second"`
	ExchangeSeconds float64          `json:"exchange_seconds"`
	TextsSent       int64            `json:"texts_sent"`
	TextsReceived   int64            `json:"texts_received"`
	Throughput      float64          `json:"texts_received_per_second"`
	LatencyP50ms    float64          `json:"latency_p50_ms"`
	LatencyP99ms    float64          `json:"latency_p99_ms"`
	LatencyMaxms    float64          `json:"latency_max_ms"`
	Errors          map[string]int64 `json:"errors"`
	Broker          *BrokerUsage     `json:"broker,omitempty"`
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

// WriteText prints the report for a person.
func (r *LoadReport) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "terminals      %d (created %d, connected %d)\n", r.Terminals, r.Created, r.Connected)
	fmt.Fprintf(&b, "setup          %.1f sessions/s (%.2fs)\n", r.SetupRate, r.SetupSeconds)
	fmt.Fprintf(&b, "texts          sent %d, received %d in %.2fs: %.1f texts/s\n", r.TextsSent, r.TextsReceived, r.ExchangeSeconds, r.Throughput)
	fmt.Fprintf(&b, "latency        p50 %.3fms  p99 %.3fms  max %.3fms\n", r.LatencyP50ms, r.LatencyP99ms, r.LatencyMaxms)
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
