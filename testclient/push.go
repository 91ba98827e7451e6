package testclient

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/rewind-broker/rewind/protocol"
)

// The push channel of PROTOCOL.md §4, terminal side: attach a push token, go idle, detach, and
// announce a push-triggered reconnect.

// Push platforms, the values of AttachOptions.Platform.
const (
	PlatformFCM  = "fcm"
	PlatformAPNs = "apns"
)

// attachVersion is the extended TERMINAL_ATTACH map's "v".
const attachVersion = 1

// AttachOptions is one TERMINAL_ATTACH.
type AttachOptions struct {
	// URL is the vendor's token service URL (PROTOCOL.md §8).
	URL string
	// Token is the device token the push provider gave the app.
	Token string
	// Platform is PlatformFCM or PlatformAPNs; empty means PlatformFCM.
	Platform string
	// Topic is the APNs topic (bundle id); set it for apns only. Empty is not sent.
	Topic string
	// Keys are the terminal's push keys: their public half is sent as p256dh and auth, so that
	// the broker can seal push bodies the terminal opens with Keys.Open. Nil sends no keys (the
	// broker then pushes wake-ups only).
	Keys *PushKeyPair
	// RawKeys, when set, is sent as p256dh and auth instead of Keys' public half, unchecked:
	// broker tests use it to offer keys of the wrong size.
	RawKeys *protocol.PushKeys
	// SigKey is the terminal's signature public key (65-byte P-256 point or 32-byte Ed25519
	// key). Empty is not sent.
	SigKey []byte
	// Name is the device name; empty is not sent.
	Name string
	// Legacy selects the legacy text form "URL SP token": platform FCM only, and nothing but
	// URL and Token can be expressed in it.
	Legacy bool
}

// attachMap is the extended TERMINAL_ATTACH: msgpack encodes it as a map with these keys, in
// this order, strings as str and byte slices as bin.
type attachMap struct {
	V        int    `msgpack:"v"`
	URL      string `msgpack:"url"`
	Token    string `msgpack:"token"`
	Platform string `msgpack:"platform"`
	P256DH   []byte `msgpack:"p256dh,omitempty"`
	Auth     []byte `msgpack:"auth,omitempty"`
	SigKey   []byte `msgpack:"sigkey,omitempty"`
	Name     string `msgpack:"name,omitempty"`
	Topic    string `msgpack:"topic,omitempty"`
}

// EncodeAttach returns the TERMINAL_ATTACH data for opt: the legacy UTF-8 "URL SP token", or
// the extended MessagePack map of PROTOCOL.md §4 ("v", "url", "token" and "platform" always;
// "p256dh" and "auth" when there are keys; "sigkey", "name" and "topic" when set).
//
// It does not validate values — the broker does, and its tests craft attaches it must refuse
// with this function. It fails only when the legacy form cannot express opt.
func EncodeAttach(opt AttachOptions) ([]byte, error) {
	platform := opt.Platform
	if platform == "" {
		platform = PlatformFCM
	}
	if opt.Legacy {
		switch {
		case platform != PlatformFCM:
			return nil, fmt.Errorf("testclient: legacy attach is for platform fcm, not %q", platform)
		case opt.Keys != nil || opt.RawKeys != nil || len(opt.SigKey) > 0 || opt.Name != "" || opt.Topic != "":
			return nil, errors.New("testclient: legacy attach carries only URL and token")
		case strings.Contains(opt.URL, " "):
			return nil, errors.New("testclient: legacy attach URL contains a space")
		}
		return []byte(opt.URL + " " + opt.Token), nil
	}
	m := attachMap{V: attachVersion, URL: opt.URL, Token: opt.Token, Platform: platform,
		SigKey: opt.SigKey, Name: opt.Name, Topic: opt.Topic}
	switch {
	case opt.RawKeys != nil:
		m.P256DH, m.Auth = opt.RawKeys.P256DH, opt.RawKeys.Auth
	case opt.Keys != nil:
		pub := opt.Keys.Public()
		m.P256DH, m.Auth = pub.P256DH, pub.Auth
	}
	b, err := msgpack.Marshal(&m)
	if err != nil {
		return nil, fmt.Errorf("testclient: encode attach: %w", err)
	}
	return b, nil
}

// Attach sends TERMINAL_ATTACH for opt and waits for the broker's answer: an empty
// TERMINAL_ATTACH (nil), or a BROKER_ERROR about it, returned as an *UnexpectedError from which
// errors.As extracts the protocol.BrokerError (400 bad field, 403 URL not allowed, ...).
// Datagrams that arrive meanwhile stay queued for Recv.
func (c *Client) Attach(ctx context.Context, opt AttachOptions) error {
	data, err := EncodeAttach(opt)
	if err != nil {
		return err
	}
	return c.request(ctx, protocol.Datagram{Type: protocol.TypeTerminalAttach, Data: data})
}

// Idle sends TERMINAL_IDLE and waits for the broker's empty TERMINAL_IDLE: from then on the
// broker stores what it would have sent and pushes instead. The keep-alive loop pauses (an idle
// terminal is silent) until KeepAliveNow. Errors are reported as by Attach.
func (c *Client) Idle(ctx context.Context) error {
	return c.request(ctx, protocol.Datagram{Type: protocol.TypeTerminalIdle})
}

// Detach sends TERMINAL_DETACH and waits for the broker's empty TERMINAL_DETACH: the push
// channel is removed. Errors are reported as by Attach.
func (c *Client) Detach(ctx context.Context) error {
	return c.request(ctx, protocol.Datagram{Type: protocol.TypeTerminalDetach})
}

// Wakeup sends an empty TERMINAL_WAKEUP, which a terminal sends as its first datagram after a
// push-triggered reconnect (the broker measures wake latency with it). There is no answer.
// To be sure nothing precedes it — not even an automatic DELIVERY_ACK for a replayed delivery —
// dial with Config.Wakeup instead.
func (c *Client) Wakeup(ctx context.Context) error {
	return c.Send(ctx, protocol.Datagram{Type: protocol.TypeTerminalWakeup})
}

// request sends d and waits for the broker's answer to it: an empty datagram of d's type, or a
// BROKER_ERROR whose offending type is d's.
func (c *Client) request(ctx context.Context, d protocol.Datagram) error {
	typ := d.Type
	w := c.addWaiter(func(r protocol.Datagram) bool {
		switch r.Type {
		case typ:
			return true
		case protocol.TypeBrokerError:
			be, err := protocol.DecodeBrokerError(r.Data)
			return err == nil && be.Offending == typ
		}
		return false
	})
	if err := c.Send(ctx, d); err != nil {
		c.removeWaiter(w)
		return err
	}
	r, err := c.wait(ctx, w)
	switch {
	case err != nil:
		return err
	case r.Type != typ:
		return fmt.Errorf("testclient: terminal %d: %s: %w", c.cfg.ID, typ, &UnexpectedError{Want: typ, Got: r})
	case len(r.Data) != 0:
		return fmt.Errorf("%w: %s answer carries %d bytes, want none", ErrBrokerProtocol, typ, len(r.Data))
	}
	return nil
}

// RecvStored returns the next datagram, which must be a stored delivery (flag Buffering; its
// Number is the outbox sequence). Any other datagram is consumed and returned with an
// *UnexpectedError (WantStored set; errors.As finds the protocol.BrokerError when it is one).
func (c *Client) RecvStored(ctx context.Context) (protocol.Datagram, error) {
	d, err := c.Recv(ctx)
	if err != nil {
		return d, err
	}
	if d.Flags&protocol.FlagBuffering == 0 {
		return d, &UnexpectedError{WantStored: true, Got: d}
	}
	return d, nil
}
