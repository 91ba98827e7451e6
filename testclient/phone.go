package testclient

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/rewind-broker/rewind/protocol"
	"github.com/rewind-broker/rewind/testclient/pushsim"
)

// wakeTimeout bounds a push-triggered reconnect and its re-attach. A phone's push handler has
// about 30 s before the OS suspends the app again; a broker that needs more than this is broken.
const wakeTimeout = 10 * time.Second

// ErrBadPush marks a push whose payload violates PROTOCOL.md §7 (unknown type or enc, a body
// that is not base64url, does not open with the phone's keys or is not one Rewind datagram, a
// "wake" push that carries a message or a "data" push that does not).
var ErrBadPush = errors.New("testclient: push payload violates the protocol")

// PhoneConfig describes a simulated phone.
type PhoneConfig struct {
	// Client is the terminal's session configuration. The phone forces AutoAck and AutoStatus on,
	// and sets Wakeup for push-triggered reconnects itself.
	Client Config
	// Attach is sent after Start's Dial (and after every push-triggered reconnect with
	// Reattach). With URL and Token both empty the phone does not attach. Attach.Keys are also
	// the keys HandlePush opens sealed bodies with.
	Attach AttachOptions
	// Reattach, when set, sends Attach again after every push-triggered reconnect, as an app
	// that registers its push token at each start does.
	Reattach bool
	// OnDatagram, when set, is called with every datagram the phone receives — the messages its
	// pushes carry and whatever its sessions receive (stored or live) — once, in the order of
	// Received, one call at a time, before Received and WaitReceived see it. It must not block
	// for long nor call the phone's methods other than Received, Pushes and Client.
	OnDatagram func(protocol.Datagram)
}

// ReceivedPush is one push handed to HandlePush and what the phone made of it.
type ReceivedPush struct {
	Push pushsim.Push
	// Type and Enc are the payload's "type" ("data" or "wake") and "enc" ("aes128gcm",
	// "none", or "" when there is no body).
	Type, Enc string
	// Datagram is the body, opened and decoded: the message for a "data" push, a
	// TERMINAL_WAKEUP (data u32 pending) for a "wake" push. Nil without a body, or when Err is
	// set.
	Datagram *protocol.Datagram
	// Err is why the payload was refused (wraps ErrBadPush); the phone reconnects anyway.
	Err error
	// ReconnectErr is why the reconnect (or re-attach) that followed failed.
	ReconnectErr error
}

// Phone is a terminal that behaves like a phone app with push notifications: it attaches a
// push channel, goes idle when the app is suspended (possibly losing its socket), and when a
// push arrives (HandlePush, the handler to give pushsim's OnPush) it reads the message the push
// carries, reconnects with TERMINAL_WAKEUP first, and receives its stored deliveries, which
// it acknowledges. Everything it receives is kept (Received), stored deliveries once each.
//
// Its methods are safe for concurrent use.
type Phone struct {
	// Static after NewPhone.
	cfg    PhoneConfig
	log    *slog.Logger
	life   context.Context // cancelled by Close; bounds reconnects and the pumps
	cancel context.CancelFunc
	pumps  sync.WaitGroup // one pump per session, reading it into received

	// opMu serialises what changes the session: Start, GoIdle, a push's reconnect, Close.
	// client is written with both opMu and mu held, so that either is enough to read it.
	opMu   sync.Mutex
	client *Client // the current session, nil before Start
	idle   bool    // guarded by opMu: GoIdle happened, no reconnect since
	closed bool    // guarded by opMu and mu, like client

	// deliverMu serialises deliveries, so that OnDatagram calls and received share one order.
	deliverMu sync.Mutex

	// Guarded by mu.
	mu       sync.Mutex
	received []protocol.Datagram
	seen     map[uint32]bool // outbox sequences of the stored deliveries received
	pushes   []ReceivedPush
	changed  chan struct{} // closed and replaced when received grows or the phone closes
}

// NewPhone returns a phone that is not connected yet: call Start.
func NewPhone(cfg PhoneConfig) *Phone {
	cfg.Client.AutoAck, cfg.Client.AutoStatus = true, true
	cfg.Client.Wakeup = false
	log := cfg.Client.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Phone{cfg: cfg, log: log.With("terminal", cfg.Client.ID, "phone", true),
		seen: make(map[uint32]bool), changed: make(chan struct{})}
	p.life, p.cancel = context.WithCancel(context.Background())
	return p
}

// Start connects the phone and attaches its push channel (see PhoneConfig.Attach): the app's
// first start.
func (p *Phone) Start(ctx context.Context) error {
	p.opMu.Lock()
	defer p.opMu.Unlock()
	switch {
	case p.closed:
		return ErrClosed
	case p.client != nil:
		return errors.New("testclient: phone already started")
	}
	c, err := p.connect(ctx, p.cfg.Client, true)
	if err != nil {
		return err
	}
	p.setClient(c)
	return nil
}

// connect dials cfg and attaches when attach is set and there is something to attach.
func (p *Phone) connect(ctx context.Context, cfg Config, attach bool) (*Client, error) {
	c, err := Dial(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if attach && (p.cfg.Attach.URL != "" || p.cfg.Attach.Token != "") {
		if err := c.Attach(ctx, p.cfg.Attach); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// setClient makes c the current session and starts reading it. Called with opMu held.
func (p *Phone) setClient(c *Client) {
	p.mu.Lock()
	p.client = c
	p.mu.Unlock()
	p.idle = false
	p.pumps.Add(1)
	go p.pump(c)
}

// pump hands everything c receives to deliver until c's session ends or the phone closes.
func (p *Phone) pump(c *Client) {
	defer p.pumps.Done()
	for {
		d, err := c.Recv(p.life)
		if err != nil {
			if p.life.Err() == nil && !errors.Is(err, ErrClosed) {
				p.log.Debug("phone session ended", "err", err)
			}
			return
		}
		p.deliver(d)
	}
}

// GoIdle is the app going to the background: it sends TERMINAL_IDLE and waits for the answer;
// with dropSocket the socket is then dropped without a close (the app was suspended and the
// OS reclaimed its connection), otherwise it stays open and silent.
func (p *Phone) GoIdle(ctx context.Context, dropSocket bool) error {
	p.opMu.Lock()
	defer p.opMu.Unlock()
	if p.closed {
		return ErrClosed
	}
	if p.client == nil {
		return errors.New("testclient: phone not started")
	}
	if err := p.client.Idle(ctx); err != nil {
		return err
	}
	p.idle = true
	if dropSocket {
		p.client.Abort()
	}
	return nil
}

// HandlePush is what the app's push handler does with p (it has the signature of pushsim's
// OnPush handlers): it decodes the payload ("type", "enc", "body" from the FCM data or the
// APNs "rewind" dictionary), opens a sealed body with the phone's keys and checks that it is
// one Rewind datagram, records the push (Pushes) and the message it carries (Received); then,
// unless the phone has a live, active session, it reconnects — a new session whose first
// datagram is TERMINAL_WAKEUP, re-attached with PhoneConfig.Reattach — and the stored
// deliveries the broker replays flow into Received. The old socket, if still open, is dropped
// once the new session is up.
//
// A payload it refuses is recorded with Err; the phone reconnects anyway, as a real app would.
func (p *Phone) HandlePush(push pushsim.Push) {
	rp := p.openPush(push)
	if rp.Err != nil {
		p.log.Warn("bad push", "err", rp.Err)
	}
	p.mu.Lock()
	i := len(p.pushes)
	p.pushes = append(p.pushes, rp)
	p.mu.Unlock()
	if rp.Datagram != nil && rp.Datagram.Type != protocol.TypeTerminalWakeup {
		p.deliver(*rp.Datagram)
	}
	if err := p.wake(); err != nil {
		p.log.Warn("reconnect after push failed", "err", err)
		p.mu.Lock()
		p.pushes[i].ReconnectErr = err
		p.mu.Unlock()
	}
}

// openPush decodes and checks push's payload (PROTOCOL.md §7).
func (p *Phone) openPush(push pushsim.Push) ReceivedPush {
	rp := ReceivedPush{Push: push, Type: push.Data["type"], Enc: push.Data["enc"]}
	bad := func(format string, args ...any) ReceivedPush {
		rp.Err = fmt.Errorf("%w: %s", ErrBadPush, fmt.Sprintf(format, args...))
		return rp
	}
	if rp.Type != "data" && rp.Type != "wake" {
		return bad("type %q", rp.Type)
	}
	body, ok := push.Data["body"]
	if !ok {
		if rp.Type == "data" {
			return bad("data push without a body")
		}
		return rp // a wake-up without a body: legacy terminals get these
	}
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return bad("body is not unpadded base64url: %v", err)
	}
	var plain []byte
	switch rp.Enc {
	case "aes128gcm":
		if p.cfg.Attach.Keys == nil {
			return bad("sealed body, but the phone registered no keys")
		}
		if plain, err = p.cfg.Attach.Keys.Open(raw); err != nil {
			return bad("body does not open: %v", err)
		}
	case "none":
		plain = raw
	default:
		return bad("enc %q", rp.Enc)
	}
	d, err := protocol.Decode(plain)
	if err != nil {
		return bad("body is not a Rewind datagram: %v", err)
	}
	switch {
	case rp.Type == "wake" && d.Type != protocol.TypeTerminalWakeup:
		return bad("wake push carries %s", d)
	case rp.Type == "data" && d.Type == protocol.TypeTerminalWakeup:
		return bad("data push carries %s", d)
	case d.Type == protocol.TypeTerminalWakeup:
		if _, err := protocol.DecodeU32("wakeup", d.Data); err != nil {
			return bad("%v", err)
		}
	}
	rp.Datagram = &d
	return rp
}

// wake reconnects unless the current session is live and active.
func (p *Phone) wake() error {
	p.opMu.Lock()
	defer p.opMu.Unlock()
	if p.closed {
		return ErrClosed
	}
	old := p.client
	if old != nil && !p.idle && old.Err() == nil {
		return nil // awake already: the broker delivers on this session
	}
	ctx, cancel := context.WithTimeout(p.life, wakeTimeout)
	defer cancel()
	cfg := p.cfg.Client
	cfg.Wakeup = true
	c, err := p.connect(ctx, cfg, p.cfg.Reattach)
	if err != nil {
		return err
	}
	if old != nil {
		old.Abort() // the broker replaced it already (close 4409) if it was still open
	}
	p.setClient(c)
	return nil
}

// deliver records d, once for a stored delivery, and hands it to OnDatagram.
func (p *Phone) deliver(d protocol.Datagram) {
	p.deliverMu.Lock()
	defer p.deliverMu.Unlock()
	if d.Flags&protocol.FlagBuffering != 0 {
		p.mu.Lock()
		dup := p.seen[d.Number]
		p.seen[d.Number] = true
		p.mu.Unlock()
		if dup {
			return
		}
	}
	if p.cfg.OnDatagram != nil {
		p.cfg.OnDatagram(d)
	}
	p.mu.Lock()
	p.received = append(p.received, d)
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

// Received returns every datagram received so far, in arrival order: the messages pushes
// carried and what the sessions received. A stored delivery (flag Buffering) appears once,
// however often it arrived: a push may carry a datagram that the broker then also replays.
func (p *Phone) Received() []protocol.Datagram {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]protocol.Datagram(nil), p.received...)
}

// Pushes returns every push HandlePush was given, in order.
func (p *Phone) Pushes() []ReceivedPush {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]ReceivedPush(nil), p.pushes...)
}

// Client returns the current session (nil before Start). After GoIdle with dropSocket, or once
// the broker ended it, it is a session that has ended (see Client.Err).
func (p *Phone) Client() *Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.client
}

// WaitReceived blocks until at least n datagrams have been received (see Received), ctx ends,
// or the phone closes.
func (p *Phone) WaitReceived(ctx context.Context, n int) error {
	for {
		p.mu.Lock()
		got, changed, closed := len(p.received), p.changed, p.closed
		p.mu.Unlock()
		switch {
		case got >= n:
			return nil
		case closed:
			return fmt.Errorf("testclient: phone: %d of %d datagrams received: %w", got, n, ErrClosed)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("testclient: phone: %d of %d datagrams received: %w", got, n, ctx.Err())
		}
	}
}

// Close ends the phone: a reconnect in progress is abandoned, the current session is closed
// politely (CLOSE, close 1000) and the phone's goroutines stop. It is idempotent; the error is
// the session's Close error. Do not call it from OnDatagram.
func (p *Phone) Close() error {
	p.cancel()
	p.opMu.Lock()
	defer p.opMu.Unlock()
	if p.closed {
		return nil
	}
	p.mu.Lock()
	p.closed = true
	close(p.changed)
	p.changed = make(chan struct{})
	c := p.client
	p.mu.Unlock()
	var err error
	if c != nil {
		err = c.Close()
	}
	p.pumps.Wait()
	return err
}
