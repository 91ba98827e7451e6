package protocol

import (
	"bytes"
	"crypto/ecdh"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Attach is TERMINAL_ATTACH data: where and how to wake a terminal.
//
// Two wire forms are accepted:
//
//	legacy    UTF-8 "TOKEN_SERVICE_URL SP DEVICE_TOKEN" (platform fcm, no keys)
//	extended  a MessagePack map (first byte 0x80–0x8f, 0xde or 0xdf) with keys
//	          v (int, 1), url (str), token (str), platform ("fcm"|"apns"),
//	          p256dh (bin 65), auth (bin 16), sigkey (bin 65 or 32, optional),
//	          name (str, ≤ 64 printable runes, optional), topic (str, apns only)
//
// The MessagePack decoder here is a small bounded one: every length it reads is checked against
// the bytes present before anything is allocated, and unknown keys are skipped.
type Attach struct {
	Version  int
	URL      string
	Token    string
	Platform string // "fcm" or "apns"
	P256DH   []byte // 65-byte uncompressed P-256 public key, or nil
	Auth     []byte // 16 bytes, or nil
	SigKey   []byte // 65-byte P-256 or 32-byte Ed25519 public key, or nil
	Name     string
	Topic    string
	Legacy   bool
}

// Attach limits.
const (
	MaxAttachURL   = 2048
	MaxDeviceToken = 4096
	MaxTopic       = 255
	MaxDeviceName  = 64 // runes
)

// Platforms.
const (
	PlatformFCM  = "fcm"
	PlatformAPNs = "apns"
)

// DecodeAttach parses and validates TERMINAL_ATTACH data in either form. Errors wrap
// ErrMalformed and say which field is wrong. The URL is checked for shape only; whether the
// broker allows it is policy, decided by the broker.
func DecodeAttach(data []byte) (Attach, error) {
	if len(data) == 0 {
		return Attach{}, malformed("attach", "empty")
	}
	var a Attach
	var err error
	if b := data[0]; b&0xf0 == 0x80 || b == 0xde || b == 0xdf {
		a, err = decodeAttachMap(data)
	} else {
		a, err = decodeAttachLegacy(data)
	}
	if err != nil {
		return Attach{}, err
	}
	return a, a.Validate()
}

func decodeAttachLegacy(data []byte) (Attach, error) {
	if !utf8.Valid(data) {
		return Attach{}, malformed("attach", "legacy form is not UTF-8")
	}
	url, token, ok := strings.Cut(strings.TrimRight(string(data), "\x00\r\n"), " ")
	if !ok {
		return Attach{}, malformed("attach", "legacy form must be \"URL SP device-token\"")
	}
	return Attach{Version: 0, URL: url, Token: strings.TrimSpace(token), Platform: PlatformFCM, Legacy: true}, nil
}

// Validate checks every field's presence, size and shape.
func (a Attach) Validate() error {
	bad := func(format string, args ...any) error { return malformed("attach", format, args...) }
	switch {
	case !a.Legacy && a.Version != 1:
		return bad("v must be 1, got %d", a.Version)
	case a.URL == "":
		return bad("url missing")
	case len(a.URL) > MaxAttachURL:
		return bad("url longer than %d bytes", MaxAttachURL)
	case !visibleASCII(a.URL):
		return bad("url must be printable ASCII without spaces")
	case a.Token == "":
		return bad("token missing")
	case len(a.Token) > MaxDeviceToken:
		return bad("token longer than %d bytes", MaxDeviceToken)
	case !visibleASCII(a.Token):
		return bad("token must be printable ASCII without spaces")
	case !visibleASCII(a.Topic) && a.Topic != "":
		return bad("topic must be printable ASCII without spaces")
	case a.Platform != PlatformFCM && a.Platform != PlatformAPNs:
		return bad("platform must be \"fcm\" or \"apns\", got %q", a.Platform)
	case a.Platform == PlatformAPNs && a.Topic == "":
		return bad("topic missing (required for apns)")
	case len(a.Topic) > MaxTopic:
		return bad("topic longer than %d bytes", MaxTopic)
	case (a.P256DH == nil) != (a.Auth == nil):
		return bad("p256dh and auth go together")
	case a.SigKey != nil && len(a.SigKey) != 65 && len(a.SigKey) != 32:
		return bad("sigkey must be 65 bytes (P-256) or 32 bytes (Ed25519), got %d", len(a.SigKey))
	}
	if a.P256DH != nil {
		if err := (PushKeys{P256DH: a.P256DH, Auth: a.Auth}).Validate(); err != nil {
			return bad("push keys: %v", err)
		}
	}
	if len(a.SigKey) == 65 {
		if _, err := ecdh.P256().NewPublicKey(a.SigKey); err != nil || a.SigKey[0] != 4 {
			return bad("sigkey is not an uncompressed P-256 point")
		}
	}
	if utf8.RuneCountInString(a.Name) > MaxDeviceName || !utf8.ValidString(a.Name) {
		return bad("name must be valid UTF-8 of at most %d runes", MaxDeviceName)
	}
	for _, r := range a.Name {
		if !unicode.IsPrint(r) {
			return bad("name contains a non-printable character")
		}
	}
	return nil
}

// Encode returns the extended (MessagePack) form, or the legacy form when a.Legacy is set.
func (a Attach) Encode() ([]byte, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	if a.Legacy {
		return []byte(a.URL + " " + a.Token), nil
	}
	var b bytes.Buffer
	n := 4
	for _, present := range []bool{a.P256DH != nil, a.Auth != nil, a.SigKey != nil, a.Name != "", a.Topic != ""} {
		if present {
			n++
		}
	}
	b.WriteByte(0x80 | byte(n))
	mpStr(&b, "v")
	b.WriteByte(byte(a.Version)) // positive fixint
	for _, kv := range [][2]string{{"url", a.URL}, {"token", a.Token}, {"platform", a.Platform}, {"name", a.Name}, {"topic", a.Topic}} {
		if kv[1] != "" || kv[0] == "url" || kv[0] == "token" || kv[0] == "platform" {
			mpStr(&b, kv[0])
			mpStr(&b, kv[1])
		}
	}
	for _, kv := range []struct {
		k string
		v []byte
	}{{"p256dh", a.P256DH}, {"auth", a.Auth}, {"sigkey", a.SigKey}} {
		if kv.v != nil {
			mpStr(&b, kv.k)
			b.WriteByte(0xc4) // bin8: every key fits
			b.WriteByte(byte(len(kv.v)))
			b.Write(kv.v)
		}
	}
	return b.Bytes(), nil
}

func mpStr(b *bytes.Buffer, s string) {
	switch {
	case len(s) < 32:
		b.WriteByte(0xa0 | byte(len(s)))
	case len(s) < 256:
		b.WriteByte(0xd9)
		b.WriteByte(byte(len(s)))
	default:
		b.WriteByte(0xda)
		b.WriteByte(byte(len(s) >> 8))
		b.WriteByte(byte(len(s)))
	}
	b.WriteString(s)
}

// mpReader is a bounded MessagePack reader for the subset an attach map uses.
type mpReader struct {
	b []byte
	i int
}

func (r *mpReader) need(n int) ([]byte, error) {
	if n < 0 || n > len(r.b)-r.i {
		return nil, malformed("attach", "MessagePack value runs past the end")
	}
	out := r.b[r.i : r.i+n]
	r.i += n
	return out, nil
}

func (r *mpReader) byte() (byte, error) {
	b, err := r.need(1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

func (r *mpReader) uint(n int) (uint64, error) {
	b, err := r.need(n)
	if err != nil {
		return 0, err
	}
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v, nil
}

// value reads one value: kind is 's' (str), 'b' (bin), 'i' (int), 'n' (nil), 'o' (other, skipped).
func (r *mpReader) value(depth int) (kind byte, raw []byte, num int64, err error) {
	if depth > 4 {
		return 0, nil, 0, malformed("attach", "MessagePack nesting too deep")
	}
	c, err := r.byte()
	if err != nil {
		return 0, nil, 0, err
	}
	lenOf := func(n int) (int, error) { v, err := r.uint(n); return int(min(v, 1<<31)), err }
	var n int
	switch {
	case c <= 0x7f:
		return 'i', nil, int64(c), nil
	case c >= 0xe0:
		return 'i', nil, int64(int8(c)), nil
	case c&0xe0 == 0xa0:
		raw, err = r.need(int(c & 0x1f))
		return 's', raw, 0, err
	case c&0xf0 == 0x80, c&0xf0 == 0x90: // fixmap, fixarray
		count := int(c & 0x0f)
		if c&0xf0 == 0x80 {
			count *= 2
		}
		return 'o', nil, 0, r.skip(count, depth)
	}
	switch c {
	case 0xc0:
		return 'n', nil, 0, nil
	case 0xc2, 0xc3:
		return 'o', nil, 0, nil
	case 0xd9, 0xda, 0xdb, 0xc4, 0xc5, 0xc6:
		width := map[byte]int{0xd9: 1, 0xda: 2, 0xdb: 4, 0xc4: 1, 0xc5: 2, 0xc6: 4}[c]
		if n, err = lenOf(width); err != nil {
			return 0, nil, 0, err
		}
		raw, err = r.need(n)
		if c >= 0xd9 {
			return 's', raw, 0, err
		}
		return 'b', raw, 0, err
	case 0xcc, 0xcd, 0xce, 0xcf:
		v, err := r.uint(1 << (c - 0xcc))
		if v > 1<<31 {
			v = 1 << 31
		}
		return 'i', nil, int64(v), err
	case 0xd0, 0xd1, 0xd2, 0xd3:
		width := 1 << (c - 0xd0)
		v, err := r.uint(width)
		shift := 64 - 8*width
		return 'i', nil, int64(v<<shift) >> shift, err
	case 0xca, 0xcb:
		_, err = r.need(map[byte]int{0xca: 4, 0xcb: 8}[c])
		return 'o', nil, 0, err
	case 0xdc, 0xdd, 0xde, 0xdf:
		width := map[byte]int{0xdc: 2, 0xdd: 4, 0xde: 2, 0xdf: 4}[c]
		if n, err = lenOf(width); err != nil {
			return 0, nil, 0, err
		}
		if c >= 0xde {
			n *= 2
		}
		return 'o', nil, 0, r.skip(n, depth)
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8:
		_, err = r.need(1 + map[byte]int{0xd4: 1, 0xd5: 2, 0xd6: 4, 0xd7: 8, 0xd8: 16}[c])
		return 'o', nil, 0, err
	case 0xc7, 0xc8, 0xc9:
		if n, err = lenOf(map[byte]int{0xc7: 1, 0xc8: 2, 0xc9: 4}[c]); err != nil {
			return 0, nil, 0, err
		}
		_, err = r.need(1 + n)
		return 'o', nil, 0, err
	}
	return 0, nil, 0, malformed("attach", "MessagePack type 0x%02x not allowed", c)
}

func (r *mpReader) skip(count, depth int) error {
	if count > len(r.b)-r.i { // every value takes at least one byte
		return malformed("attach", "MessagePack container larger than the message")
	}
	for ; count > 0; count-- {
		if _, _, _, err := r.value(depth + 1); err != nil {
			return err
		}
	}
	return nil
}

func decodeAttachMap(data []byte) (Attach, error) {
	r := &mpReader{b: data}
	c, _ := r.byte()
	var n int
	switch {
	case c&0xf0 == 0x80:
		n = int(c & 0x0f)
	case c == 0xde:
		v, err := r.uint(2)
		if err != nil {
			return Attach{}, err
		}
		n = int(v)
	default:
		v, err := r.uint(4)
		if err != nil {
			return Attach{}, err
		}
		n = int(min(v, 1<<20))
	}
	if 2*n > len(data) {
		return Attach{}, malformed("attach", "map of %d entries in %d bytes", n, len(data))
	}
	var a Attach
	seen := map[string]bool{}
	for ; n > 0; n-- {
		kind, key, _, err := r.value(0)
		if err != nil {
			return Attach{}, err
		}
		if kind != 's' {
			return Attach{}, malformed("attach", "map key is not a string")
		}
		k := string(key)
		if seen[k] {
			return Attach{}, malformed("attach", "key %q twice", k)
		}
		seen[k] = true
		kind, raw, num, err := r.value(0)
		if err != nil {
			return Attach{}, err
		}
		want := func(w byte) error {
			if kind != w && !(w == 's' && kind == 'b') && !(w == 'b' && kind == 's') {
				return malformed("attach", "key %q has the wrong type", k)
			}
			return nil
		}
		switch k {
		case "v":
			if kind != 'i' {
				return Attach{}, malformed("attach", "key \"v\" must be an integer")
			}
			a.Version = int(num)
			continue
		case "url", "token", "platform", "name", "topic":
			if err := want('s'); err != nil {
				return Attach{}, err
			}
			if !utf8.Valid(raw) {
				return Attach{}, malformed("attach", "key %q is not UTF-8", k)
			}
			s := string(raw)
			switch k {
			case "url":
				a.URL = s
			case "token":
				a.Token = s
			case "platform":
				a.Platform = s
			case "name":
				a.Name = s
			case "topic":
				a.Topic = s
			}
		case "p256dh", "auth", "sigkey":
			if kind == 'n' {
				continue
			}
			if err := want('b'); err != nil {
				return Attach{}, err
			}
			v := bytes.Clone(raw)
			switch k {
			case "p256dh":
				a.P256DH = v
			case "auth":
				a.Auth = v
			case "sigkey":
				a.SigKey = v
			}
		}
	}
	if r.i != len(data) {
		return Attach{}, malformed("attach", "%d bytes after the map", len(data)-r.i)
	}
	return a, nil
}

func visibleASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}
