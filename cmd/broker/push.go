package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/rewind-broker/rewind/broker"
	"github.com/rewind-broker/rewind/registry"
	"github.com/rewind-broker/rewind/testclient/pushsim"
	"github.com/rewind-broker/rewind/tokensvc"
)

// pushWiring is everything the push fallback needs, built from flags.
type pushWiring struct {
	cfg    *broker.PushConfig
	tokens *tokensvc.Client
	// observe receives token-service fetch outcomes once the broker exists (set by serve
	// before any connection is accepted, so before any fetch).
	observe func(outcome string, d time.Duration)
	sim     *pushsim.Providers // --dev only
	devMux  http.Handler       // --dev only: mounted under /dev/ on the admin listener
	closers []func()
}

func (p *pushWiring) close() {
	for i := len(p.closers) - 1; i >= 0; i-- {
		p.closers[i]()
	}
}

func buildPush(o options, store *registry.Badger, log *slog.Logger) (*pushWiring, error) {
	p := &pushWiring{}
	policy := tokensvc.URLPolicy{AllowInsecure: o.insecureTokenURLs || o.dev}
	for _, h := range strings.Split(o.vendorHosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			policy.AllowedHosts = append(policy.AllowedHosts, h)
		}
	}
	if len(policy.AllowedHosts) == 0 && !policy.AllowInsecure {
		log.Warn("no --vendor-hosts: every TERMINAL_ATTACH is refused (403) and no terminal can be woken; list the vendors' token-service hosts")
	}
	keys, err := readVendorKeys(o.vendorKeysFile)
	if err != nil {
		return nil, err
	}
	fcmCfg := broker.FCMConfig{Endpoint: o.fcmEndpoint, Logger: log}
	apnsCfg := broker.APNsConfig{ProductionHost: o.apnsHost, DevelopmentHost: o.apnsDevHost, Logger: log}
	if o.dev {
		p.sim = pushsim.New()
		p.closers = append(p.closers, p.sim.Close)
		fcmCfg.Endpoint = p.sim.FCM.URL() + "/v1"
		fcmCfg.Transport = p.sim.FCM.Client().Transport
		apnsCfg.ProductionHost, apnsCfg.DevelopmentHost = p.sim.APNs.URL(), p.sim.APNs.URL()
		apnsCfg.Transport = p.sim.APNs.Client().Transport
		p.devMux = devHandler(p.sim, log)
	}
	p.tokens, err = tokensvc.NewClient(tokensvc.ClientConfig{
		Policy:     policy,
		BearerKeys: keys,
		Cache:      broker.TokenCache{Blobs: store},
		OnFetch: func(outcome string, d time.Duration) {
			if p.observe != nil {
				p.observe(outcome, d)
			}
		},
		Logger: log.With("component", "tokens"),
	})
	if err != nil {
		p.close()
		return nil, err
	}
	p.closers = append(p.closers, func() { p.tokens.Close() })
	fcm, err := broker.NewFCMSender(fcmCfg)
	if err != nil {
		p.close()
		return nil, fmt.Errorf("fcm: %w", err)
	}
	apns, err := broker.NewAPNsSender(apnsCfg)
	if err != nil {
		p.close()
		return nil, fmt.Errorf("apns: %w", err)
	}
	p.cfg = &broker.PushConfig{
		Store:       store,
		Tokens:      p.tokens,
		Senders:     map[broker.Platform]broker.Sender{broker.PlatformFCM: fcm, broker.PlatformAPNs: apns},
		Policy:      policy,
		OutboxTTL:   o.outboxTTL,
		PlainLegacy: o.plainLegacy,
		WakeQuiet:   o.wakeQuiet,
		WakeWorkers: o.wakeWorkers,
	}
	return p, nil
}

// readVendorKeys reads "host key" lines; # starts a comment.
func readVendorKeys(path string) (map[string]string, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--vendor-keys-file: %w", err)
	}
	defer f.Close()
	keys := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		host, key, ok := strings.Cut(line, " ")
		if !ok || strings.TrimSpace(key) == "" {
			return nil, fmt.Errorf("--vendor-keys-file line %d: want \"host key\"", n)
		}
		keys[host] = strings.TrimSpace(key)
	}
	return keys, sc.Err()
}

// devHandler serves the developer mode's helpers on the admin listener, without authentication
// (--dev is for one machine):
//
//	GET  /dev/token/fcm, /dev/token/apns  a token service issuing the fake providers' credentials
//	POST /dev/devices?platform=fcm|apns  register a fake device; answers its device token
//	GET  /dev/pushes                     every push the fake providers accepted
//	GET  /dev/pushes/next?device=TOKEN&wait=30s
//	                                     long poll: the next push accepted for a device registered
//	                                     with POST /dev/devices, or 204 No Content when none
//	                                     arrives within wait (default 30s, at most 60s; 0 only
//	                                     looks). 404 for a token this broker did not register,
//	                                     503 when the broker shuts down.
//	GET  /dev/pushes/stream              every push the fake providers accept from now on, for
//	                                     all devices, as one long-lived NDJSON response (see
//	                                     devStreamHandler): one connection for a load run with
//	                                     thousands of idle terminals instead of a poll per device.
//
// The pushes of /dev/pushes/next are buffered per device from its registration on, oldest
// first, at most devPushBuffer of them: beyond that the oldest is dropped. Each push is handed
// to one poll only. A push's JSON is the same object as in /dev/pushes: Platform, Device,
// Priority, CollapseKey, Data (FCM's data, or the APNs payload's "rewind" dictionary: type, enc,
// body) and Received. `testclient phone` is the phone that polls it.
func devHandler(sim *pushsim.Providers, log *slog.Logger) http.Handler {
	const project, team, topic = "rewind-dev", "DEVTEAM123", "com.example.rewind.dev"
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(v)
	}
	buffers := newDevPushBuffers(sim, log)
	mux.HandleFunc("GET /dev/token/fcm", func(w http.ResponseWriter, r *http.Request) {
		reply(w, tokensvc.Credential{Type: tokensvc.TypeFCM, Project: project, Token: sim.FCM.Issue(project), Expires: 3600})
	})
	mux.HandleFunc("GET /dev/token/apns", func(w http.ResponseWriter, r *http.Request) {
		reply(w, tokensvc.Credential{Type: tokensvc.TypeAPNs, Topic: topic, Token: sim.APNs.Issue(team), Expires: 3000, Environment: tokensvc.EnvironmentProduction})
	})
	mux.HandleFunc("POST /dev/devices", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("platform") {
		case "fcm", "":
			token := sim.RegisterDevice(pushsim.PlatformFCM, project)
			buffers.watch(token)
			reply(w, map[string]string{"platform": "fcm", "token": token})
		case "apns":
			token := sim.RegisterDevice(pushsim.PlatformAPNs, topic)
			buffers.watch(token)
			reply(w, map[string]string{"platform": "apns", "token": token, "topic": topic})
		default:
			http.Error(w, "platform must be fcm or apns", http.StatusBadRequest)
		}
	})
	mux.HandleFunc("GET /dev/pushes", func(w http.ResponseWriter, r *http.Request) {
		out := []devPush{}
		for _, p := range sim.Pushes() {
			out = append(out, newDevPush(p))
		}
		reply(w, out)
	})
	mux.HandleFunc("GET /dev/pushes/next", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		device := q.Get("device")
		if device == "" {
			http.Error(w, "device=TOKEN is required", http.StatusBadRequest)
			return
		}
		wait := devPollDefault
		if v := q.Get("wait"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				http.Error(w, "wait must be a duration such as 30s", http.StatusBadRequest)
				return
			}
			wait = min(d, devPollMax)
		}
		p, status := buffers.next(r.Context(), device, wait)
		switch status {
		case http.StatusOK:
			reply(w, newDevPush(p))
		case http.StatusNotFound:
			http.Error(w, "unknown device: register it with POST /dev/devices on this broker run", status)
		case http.StatusServiceUnavailable:
			http.Error(w, "broker shutting down", status)
		default:
			w.WriteHeader(status)
		}
	})
	mux.Handle("GET /dev/pushes/stream", newDevStream(sim, buffers.closing, log))
	log.Warn("developer mode: fake FCM and APNs, dev token service at /dev/token/{fcm,apns} and pushes at /dev/pushes/next on the admin listener; never use in production")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buffers.hookShutdown(r)
		mux.ServeHTTP(w, r)
	})
}

// Limits of GET /dev/pushes/next.
const (
	devPushBuffer  = 64               // pushes kept per device; the oldest is dropped beyond
	devPollDefault = 30 * time.Second // wait when the poll names none
	devPollMax     = 60 * time.Second // longest wait granted
)

// devPush is a push as /dev/pushes and /dev/pushes/next show it.
type devPush struct {
	Platform, Device, Priority, CollapseKey string
	Data                                    map[string]string
	Received                                string
}

func newDevPush(p pushsim.Push) devPush {
	return devPush{string(p.Platform), p.DeviceToken, p.Priority, p.CollapseKey, p.Data, p.Received.Format("15:04:05.000")}
}

// devPushBuffers holds, per device registered through /dev/devices, the pushes not yet handed to
// a poll. It starts no goroutine of its own: pushes arrive on pushsim's handler goroutines, and a
// poll waits in its request's goroutine.
type devPushBuffers struct {
	sim *pushsim.Providers
	log *slog.Logger

	mu      sync.Mutex
	devices map[string]*devPushQueue
	hooked  bool          // RegisterOnShutdown done
	closing chan struct{} // closed when the admin server shuts down
}

type devPushQueue struct {
	pushes  []pushsim.Push // oldest first, at most devPushBuffer
	arrived chan struct{}  // closed and replaced when a push is added
}

func newDevPushBuffers(sim *pushsim.Providers, log *slog.Logger) *devPushBuffers {
	return &devPushBuffers{sim: sim, log: log, devices: make(map[string]*devPushQueue), closing: make(chan struct{})}
}

// watch starts buffering the pushes for device.
func (b *devPushBuffers) watch(device string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.devices[device] != nil {
		return
	}
	b.devices[device] = &devPushQueue{arrived: make(chan struct{})}
	b.sim.OnPush(device, func(p pushsim.Push) { b.add(device, p) })
}

func (b *devPushBuffers) add(device string, p pushsim.Push) {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.devices[device]
	if len(q.pushes) == devPushBuffer {
		clear(q.pushes[:1])
		q.pushes = q.pushes[1:]
		b.log.Debug("dev: push buffer full, oldest push dropped (is the phone polling /dev/pushes/next?)", "platform", p.Platform)
	}
	q.pushes = append(q.pushes, p)
	close(q.arrived)
	q.arrived = make(chan struct{})
}

// next takes device's oldest buffered push, waiting up to wait for one. The status is 200 with a
// push, 204 without, 404 for an unknown device, 503 when the server shuts down.
func (b *devPushBuffers) next(ctx context.Context, device string, wait time.Duration) (pushsim.Push, int) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		b.mu.Lock()
		q := b.devices[device]
		if q == nil {
			b.mu.Unlock()
			return pushsim.Push{}, http.StatusNotFound
		}
		if len(q.pushes) > 0 {
			p := q.pushes[0]
			clear(q.pushes[:1])
			q.pushes = q.pushes[1:]
			b.mu.Unlock()
			return p, http.StatusOK
		}
		arrived := q.arrived
		b.mu.Unlock()
		select {
		case <-arrived:
		case <-timer.C:
			return pushsim.Push{}, http.StatusNoContent
		case <-ctx.Done():
			return pushsim.Push{}, http.StatusNoContent // the poller is gone; nothing was taken
		case <-b.closing:
			return pushsim.Push{}, http.StatusServiceUnavailable
		}
	}
}

// hookShutdown makes the shutdown of the server serving r end waiting polls, so that they do
// not hold up its graceful Shutdown (which waits for requests in flight) for their whole wait.
func (b *devPushBuffers) hookShutdown(r *http.Request) {
	srv, _ := r.Context().Value(http.ServerContextKey).(*http.Server)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.hooked || srv == nil {
		return
	}
	b.hooked = true
	srv.RegisterOnShutdown(func() { close(b.closing) })
}

// devStreamBuffer is how many pushes may wait for one /dev/pushes/stream subscriber. A
// subscriber further behind is disconnected (with a final line) rather than slowing the fakes
// down or growing without bound.
const devStreamBuffer = 8192

// devStreamPush is one line of /dev/pushes/stream: the fields of /dev/pushes plus the time the
// fake accepted the push in Unix nanoseconds, for latency measurements.
type devStreamPush struct {
	devPush
	ReceivedUnixNano int64
}

// devStreamEnd is the last line of /dev/pushes/stream when the broker ends it: End is "behind"
// (the subscriber fell devStreamBuffer pushes behind and was disconnected; Behind counts such
// disconnections since the broker started) or "shutdown".
type devStreamEnd struct {
	End    string
	Behind int64 `json:",omitempty"`
}

// devStream fans every push the fakes accept out to the /dev/pushes/stream subscribers. One
// goroutine reads the fakes' journal (pushsim.Providers.Next) until the fakes are closed; it
// never blocks on a subscriber.
type devStream struct {
	log     *slog.Logger
	closing <-chan struct{} // closed when the admin server shuts down (devPushBuffers' hook)
	buffer  int             // devStreamBuffer; tests make it small

	mu     sync.Mutex
	subs   map[*devStreamSub]struct{}
	behind int64 // subscribers disconnected for falling behind
}

type devStreamSub struct {
	pushes chan pushsim.Push // buffered: devStreamBuffer
	behind chan struct{}     // closed when the subscriber is dropped for falling behind
}

func newDevStream(sim *pushsim.Providers, closing <-chan struct{}, log *slog.Logger) *devStream {
	s := &devStream{log: log, closing: closing, buffer: devStreamBuffer, subs: make(map[*devStreamSub]struct{})}
	go func() {
		for {
			p, err := sim.Next(context.Background()) // ends with pushsim.ErrClosed on sim.Close
			if err != nil {
				return
			}
			s.publish(p)
		}
	}()
	return s
}

func (s *devStream) publish(p pushsim.Push) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sub := range s.subs {
		select {
		case sub.pushes <- p:
		default:
			delete(s.subs, sub)
			close(sub.behind)
			s.behind++
			s.log.Warn("dev: /dev/pushes/stream subscriber fell behind and was disconnected", "buffered", s.buffer, "disconnected_total", s.behind)
		}
	}
}

// ServeHTTP is GET /dev/pushes/stream: a 200 application/x-ndjson response whose first line is
// {"Subscribed":true} (from then on no push is missed), then one devStreamPush per line, flushed
// as they arrive, until the client goes away, falls behind (final line devStreamEnd "behind") or
// the server shuts down (final line devStreamEnd "shutdown").
func (s *devStream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sub := &devStreamSub{pushes: make(chan pushsim.Push, s.buffer), behind: make(chan struct{})}
	s.mu.Lock()
	s.subs[sub] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.subs, sub)
		s.mu.Unlock()
	}()
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	if enc.Encode(map[string]bool{"Subscribed": true}) != nil || rc.Flush() != nil {
		return
	}
	write := func(p pushsim.Push) bool {
		return enc.Encode(devStreamPush{newDevPush(p), p.Received.UnixNano()}) == nil
	}
	for {
		select {
		case p := <-sub.pushes:
			ok := write(p)
			for n := len(sub.pushes); ok && n > 0; n-- { // write what is queued, then flush once
				ok = write(<-sub.pushes)
			}
			if !ok || rc.Flush() != nil {
				return
			}
		case <-sub.behind:
			for n := len(sub.pushes); n > 0; n-- {
				if !write(<-sub.pushes) {
					return
				}
			}
			s.mu.Lock()
			behind := s.behind
			s.mu.Unlock()
			enc.Encode(devStreamEnd{End: "behind", Behind: behind})
			return
		case <-s.closing:
			enc.Encode(devStreamEnd{End: "shutdown"})
			return
		case <-r.Context().Done():
			return
		}
	}
}
