package testclient

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rewind-broker/rewind/protocol"
)

// A phone for `broker --dev`: it registers a device with the broker's fake push providers,
// attaches it, goes idle like a suspended app, and reads the pushes the fakes accepted for it
// from the broker's admin listener (GET /dev/pushes/next, a long poll) instead of from an OS.
//
// It does not use Phone: Phone records a stored delivery once, so the broker's replay of the
// datagram a push carried is invisible to it, and the dev phone must see that replay on the new
// session before it acknowledges and goes idle (an acknowledgement beyond what the session was
// given is clipped by the broker, which would then push the same text again).

// Defaults of DevPhoneConfig.
const (
	// DefaultDevPollWait is how long one GET /dev/pushes/next waits for a push.
	DefaultDevPollWait = 30 * time.Second
	// DefaultDevSettle bounds how long a woken phone waits for the stored deliveries its push
	// announced. The broker replays them at once; a broker that needs longer is broken.
	DefaultDevSettle = 10 * time.Second
)

// DevPhoneConfig describes the phone RunDevPhone runs.
type DevPhoneConfig struct {
	// Client is the terminal (URL, ID, Password, Description, Logger). AutoStatus and AutoAck
	// are forced on, Wakeup is set on push-triggered reconnects.
	Client Config
	// AdminURL is the admin listener of a broker started with --dev, e.g.
	// http://127.0.0.1:4001. The phone registers its device there (POST /dev/devices), uses
	// its token service (/dev/token/PLATFORM) as the attach URL and polls /dev/pushes/next.
	AdminURL string
	// Platform is PlatformFCM (the default when empty) or PlatformAPNs.
	Platform string
	// Once ends RunDevPhone after the first wake cycle (push, reconnect, deliveries
	// acknowledged, idle again).
	Once bool
	// PollWait is the wait of one long poll; zero means DefaultDevPollWait. The broker grants
	// at most 60 s.
	PollWait time.Duration
	// Settle bounds the wait for the stored deliveries after a reconnect; zero means
	// DefaultDevSettle.
	Settle time.Duration
	// HTTPClient makes the admin-listener calls; nil means http.DefaultClient.
	HTTPClient *http.Client
}

// devDevice is POST /dev/devices' answer.
type devDevice struct {
	Platform string `json:"platform"`
	Token    string `json:"token"`
	Topic    string `json:"topic"`
}

// devPush is one push of GET /dev/pushes/next.
type devPush struct {
	Platform    string
	Device      string
	Priority    string
	CollapseKey string
	Data        map[string]string
	Received    string
}

// devPhone is RunDevPhone's state.
type devPhone struct {
	cfg    DevPhoneConfig
	hc     *http.Client
	out    io.Writer
	keys   *PushKeyPair
	device devDevice
	admin  string // AdminURL without a trailing slash
}

// RunDevPhone is `testclient phone`: a phone app against a broker started with --dev, printing
// what happens to out. It generates push keys, registers a fake device (POST /dev/devices),
// connects, attaches (URL AdminURL+"/dev/token/PLATFORM", the device token, APNs topic, the
// keys, so push bodies are sealed for it), goes idle and drops its socket as a suspended app
// does, then, for every push the fake provider accepted for its device (GET /dev/pushes/next):
// prints it and the datagram it carries (opened with its keys), reconnects with TERMINAL_WAKEUP
// first, prints every datagram it receives (stored deliveries replayed by the broker, answered
// with MESSAGE_STATUS delivered for private texts), acknowledges them with DELIVERY_ACK and goes
// idle again.
//
// It returns nil when ctx ends (Ctrl-C) or, with Once, after the first wake cycle; an error when
// the broker or its admin listener fails it. Everything a session received is printed before
// the session is dropped, so nothing is acknowledged unseen.
func RunDevPhone(ctx context.Context, cfg DevPhoneConfig, out io.Writer) error {
	switch cfg.Platform {
	case "":
		cfg.Platform = PlatformFCM
	case PlatformFCM, PlatformAPNs:
	default:
		return fmt.Errorf("testclient: phone: platform %q: want fcm or apns", cfg.Platform)
	}
	if cfg.AdminURL == "" {
		return errors.New("testclient: phone: AdminURL is required")
	}
	if cfg.PollWait <= 0 {
		cfg.PollWait = DefaultDevPollWait
	}
	if cfg.Settle <= 0 {
		cfg.Settle = DefaultDevSettle
	}
	cfg.Client.AutoAck, cfg.Client.AutoStatus, cfg.Client.Wakeup = true, true, false
	ph := &devPhone{cfg: cfg, hc: cfg.HTTPClient, out: out, admin: strings.TrimRight(cfg.AdminURL, "/")}
	if ph.hc == nil {
		ph.hc = http.DefaultClient
	}
	err := ph.run(ctx)
	if ctx.Err() != nil {
		return nil // Ctrl-C
	}
	return err
}

func (ph *devPhone) printf(format string, args ...any) {
	fmt.Fprintf(ph.out, format+"\n", args...)
}

func (ph *devPhone) run(ctx context.Context) error {
	var err error
	if ph.keys, err = GenerateKeys(); err != nil {
		return err
	}
	if err := ph.register(ctx); err != nil {
		return err
	}
	provider := map[string]string{PlatformFCM: "FCM", PlatformAPNs: "APNs"}[ph.device.Platform]
	ph.printf("device registered with the broker's fake %s: token %s", provider, shortToken(ph.device.Token))

	c, err := Dial(ctx, ph.cfg.Client)
	if err != nil {
		return err
	}
	attach := AttachOptions{
		URL:      ph.admin + "/dev/token/" + ph.device.Platform,
		Token:    ph.device.Token,
		Platform: ph.device.Platform,
		Topic:    ph.device.Topic,
		Keys:     ph.keys,
		Name:     "testclient phone",
	}
	if err := c.Attach(ctx, attach); err != nil {
		c.Close()
		return err
	}
	ph.printf("connected as terminal %d; push channel attached (%s, token service %s, keys: push bodies are sealed for this phone)",
		ph.cfg.Client.ID, ph.device.Platform, attach.URL)
	// Stored deliveries from before the start are replayed now; whatever has not arrived and
	// been acknowledged by the time the phone is idle makes the broker push at once.
	if err := ph.finishSession(ctx, c, 0); err != nil {
		return err
	}

	for {
		p, err := ph.nextPush(ctx)
		if err != nil {
			return err
		}
		if err := ph.wakeCycle(ctx, p); err != nil {
			return err
		}
		if ph.cfg.Once {
			return nil
		}
	}
}

// register is POST /dev/devices.
func (ph *devPhone) register(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ph.admin+"/dev/devices?platform="+ph.cfg.Platform, nil)
	if err != nil {
		return err
	}
	resp, err := ph.hc.Do(req)
	if err != nil {
		return fmt.Errorf("testclient: phone: register a device: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxAdminBody))
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("testclient: phone: %s answered %d to POST /dev/devices: is the broker running with --dev?", ph.admin, resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		return &AdminError{Status: resp.StatusCode, Body: strings.TrimSpace(string(body))}
	}
	if err := json.Unmarshal(body, &ph.device); err != nil || ph.device.Token == "" {
		return fmt.Errorf("testclient: phone: POST /dev/devices answered %q", body)
	}
	return nil
}

// nextPush long-polls GET /dev/pushes/next until a push for the phone's device arrives.
func (ph *devPhone) nextPush(ctx context.Context) (devPush, error) {
	u := fmt.Sprintf("%s/dev/pushes/next?device=%s&wait=%s", ph.admin, url.QueryEscape(ph.device.Token), ph.cfg.PollWait)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return devPush{}, err
		}
		resp, err := ph.hc.Do(req)
		if err != nil {
			return devPush{}, fmt.Errorf("testclient: phone: poll pushes: %w", err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil {
			return devPush{}, fmt.Errorf("testclient: phone: poll pushes: %w", err)
		}
		switch resp.StatusCode {
		case http.StatusNoContent:
			continue
		case http.StatusOK:
			var p devPush
			if err := json.Unmarshal(body, &p); err != nil {
				return devPush{}, fmt.Errorf("testclient: phone: poll pushes: %w", err)
			}
			return p, nil
		case http.StatusNotFound:
			return devPush{}, errors.New("testclient: phone: the broker no longer knows this device (restarted?); start the phone again")
		case http.StatusServiceUnavailable:
			return devPush{}, errors.New("testclient: phone: the broker is shutting down")
		default:
			return devPush{}, &AdminError{Status: resp.StatusCode, Body: strings.TrimSpace(string(body))}
		}
	}
}

// wakeCycle is what the app does with push p: open it, reconnect, receive, acknowledge, idle.
func (ph *devPhone) wakeCycle(ctx context.Context, p devPush) error {
	typ, enc, raw, d, perr := openDevPush(p.Data, ph.keys)
	size := "no body"
	if raw != nil {
		size = fmt.Sprintf("%d bytes", len(raw))
	}
	ph.printf("push received: type %s enc %s (%s) priority %s at %s", orNone(typ), orNone(enc), size, orNone(p.Priority), p.Received)

	// What the reconnect must bring: the stored delivery the push carries (and those before it),
	// or as many as a TERMINAL_WAKEUP announces.
	var wantSeq uint32
	wantCount := 0
	switch {
	case perr != nil:
		ph.printf("  bad push (reconnecting anyway): %v", perr)
	case d == nil:
		ph.printf("  no body: a wake-up without content")
	case d.Type == protocol.TypeTerminalWakeup:
		n, _ := protocol.DecodeU32("wakeup", d.Data)
		wantCount = int(n)
		ph.printf("  opened: TERMINAL_WAKEUP, %d stored deliveries pending (the text did not fit in a push)", n)
	default:
		ph.printf("  opened: %s", FormatDatagram(*d))
		if d.Flags&protocol.FlagBuffering != 0 {
			wantSeq = d.Number
		}
	}

	cfg := ph.cfg.Client
	cfg.Wakeup = true
	c, err := Dial(ctx, cfg)
	if err != nil {
		return err
	}
	ph.printf("reconnected, TERMINAL_WAKEUP first; the broker replays what is stored:")
	high, err := ph.awaitStored(ctx, c, wantSeq, wantCount)
	if err != nil {
		c.Abort()
		return err
	}
	return ph.finishSession(ctx, c, high)
}

// awaitStored prints what c receives until it has a stored delivery numbered wantSeq or later
// and wantCount stored deliveries, or the settle time passes. It returns the highest stored
// delivery received.
func (ph *devPhone) awaitStored(ctx context.Context, c *Client, wantSeq uint32, wantCount int) (high uint32, err error) {
	sctx, cancel := context.WithTimeout(ctx, ph.cfg.Settle)
	defer cancel()
	count := 0
	for (wantSeq != 0 && high < wantSeq) || count < wantCount {
		d, err := c.Recv(sctx)
		switch {
		case err != nil && ctx.Err() == nil && sctx.Err() != nil:
			ph.printf("  nothing more replayed within %v", ph.cfg.Settle)
			return high, nil
		case err != nil:
			return high, err
		}
		ph.printf("  received: %s", FormatDatagram(d))
		if d.Flags&protocol.FlagBuffering != 0 {
			high = max(high, d.Number)
			count++
		}
	}
	return high, nil
}

// finishSession ends the session the way a suspended app does: it waits for what the broker
// already sent (a keep-alive round trip), prints it, acknowledges every stored delivery
// received (high: the highest one received before), sends TERMINAL_IDLE, drops the socket and
// prints whatever still arrived.
func (ph *devPhone) finishSession(ctx context.Context, c *Client, high uint32) error {
	defer c.Abort()
	if err := c.KeepAliveNow(ctx); err != nil {
		return err
	}
	drain := func() {
		for d, ok := c.TryRecv(); ok; d, ok = c.TryRecv() {
			ph.printf("  received: %s", FormatDatagram(d))
			if d.Flags&protocol.FlagBuffering != 0 {
				high = max(high, d.Number)
			}
		}
	}
	drain()
	if high > 0 {
		// AutoAck acknowledges too, but on its own goroutine: this one is on the wire before
		// TERMINAL_IDLE, so the broker has deleted the deliveries when it answers the idle.
		if err := c.Ack(ctx, high); err != nil {
			return err
		}
		ph.printf("acknowledged stored deliveries up to seq %d (DELIVERY_ACK): the broker deletes them", high)
	}
	if err := c.Idle(ctx); err != nil {
		return err
	}
	c.Abort()
	drain() // arrived after the acknowledgement: replayed on the next wake
	ph.printf("idle: TERMINAL_IDLE answered, socket dropped (the app is suspended); waiting for a push...")
	return nil
}

// openDevPush decodes a push's Rewind payload (PROTOCOL.md §7): type, enc, the raw body and the
// datagram it holds, opened with keys when sealed.
func openDevPush(data map[string]string, keys *PushKeyPair) (typ, enc string, raw []byte, d *protocol.Datagram, err error) {
	typ, enc = data["type"], data["enc"]
	if typ != "data" && typ != "wake" {
		return typ, enc, nil, nil, fmt.Errorf("%w: type %q", ErrBadPush, typ)
	}
	body, ok := data["body"]
	if !ok {
		return typ, enc, nil, nil, nil
	}
	if raw, err = base64.RawURLEncoding.DecodeString(body); err != nil {
		return typ, enc, nil, nil, fmt.Errorf("%w: body is not unpadded base64url: %v", ErrBadPush, err)
	}
	plain := raw
	switch enc {
	case "aes128gcm":
		if plain, err = keys.Open(raw); err != nil {
			return typ, enc, raw, nil, fmt.Errorf("%w: body does not open: %v", ErrBadPush, err)
		}
	case "none":
	default:
		return typ, enc, raw, nil, fmt.Errorf("%w: enc %q", ErrBadPush, enc)
	}
	dg, err := protocol.Decode(plain)
	if err != nil {
		return typ, enc, raw, nil, fmt.Errorf("%w: body is not a Rewind datagram: %v", ErrBadPush, err)
	}
	if (typ == "wake") != (dg.Type == protocol.TypeTerminalWakeup) {
		return typ, enc, raw, nil, fmt.Errorf("%w: %s push carries %s", ErrBadPush, typ, dg.Type)
	}
	return typ, enc, raw, &dg, nil
}

func shortToken(t string) string {
	if len(t) <= 12 {
		return t
	}
	return t[:8] + "…"
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
