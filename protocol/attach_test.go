package protocol

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func testKeys(t testing.TB) ([]byte, []byte) {
	priv, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	auth := make([]byte, 16)
	rand.Read(auth)
	return priv.PublicKey().Bytes(), auth
}

func TestAttachLegacy(t *testing.T) {
	a, err := DecodeAttach([]byte("https://vendor.example/token/?code=123456 jhsdfjasdfsdfeTERTcxvvxerSR"))
	if err != nil {
		t.Fatal(err)
	}
	want := Attach{URL: "https://vendor.example/token/?code=123456", Token: "jhsdfjasdfsdfeTERTcxvvxerSR", Platform: PlatformFCM, Legacy: true}
	if !reflect.DeepEqual(a, want) {
		t.Fatalf("got %+v", a)
	}
	for _, bad := range []string{"no-space-here", " token-only", "url ", "url\xff token"} {
		if _, err := DecodeAttach([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestAttachExtendedRoundTrip(t *testing.T) {
	p256, auth := testKeys(t)
	sigPub, _, _ := ed25519.GenerateKey(rand.Reader)
	a := Attach{Version: 1, URL: "https://vendor.example/token?app=x", Token: strings.Repeat("t", 152), Platform: PlatformAPNs,
		Topic: "com.example.dmr", P256DH: p256, Auth: auth, SigKey: sigPub, Name: "Alice's iPhone 📻"}
	b, err := a.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeAttach(b)
	if err != nil || !reflect.DeepEqual(got, a) {
		t.Fatalf("got %+v, %v", got, err)
	}
}

// A terminal encoding its map with a general MessagePack library (here msgpack/v5, with
// int64 and string-or-bin choices of its own) must be understood.
func TestAttachFromMsgpackLibrary(t *testing.T) {
	p256, auth := testKeys(t)
	m := map[string]any{"v": int64(1), "url": "https://vendor.example/t", "token": "tok", "platform": "fcm",
		"p256dh": p256, "auth": auth, "name": "Pixel", "future-key": []any{1, "x", map[string]any{"y": 2.5}}}
	b, err := msgpack.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	a, err := DecodeAttach(b)
	if err != nil {
		t.Fatal(err)
	}
	if a.Version != 1 || a.URL != "https://vendor.example/t" || a.Token != "tok" || !bytes.Equal(a.P256DH, p256) || a.Name != "Pixel" {
		t.Fatalf("got %+v", a)
	}
}

func TestAttachValidation(t *testing.T) {
	p256, auth := testKeys(t)
	good := Attach{Version: 1, URL: "https://v.example/t", Token: "tok", Platform: PlatformFCM, P256DH: p256, Auth: auth}
	if _, err := good.Encode(); err != nil {
		t.Fatal(err)
	}
	compressed := append([]byte{2}, p256[1:33]...)
	cases := map[string]func(*Attach){
		"version 2":          func(a *Attach) { a.Version = 2 },
		"no url":             func(a *Attach) { a.URL = "" },
		"url too long":       func(a *Attach) { a.URL = "https://v.example/" + strings.Repeat("x", MaxAttachURL) },
		"no token":           func(a *Attach) { a.Token = "" },
		"token too long":     func(a *Attach) { a.Token = strings.Repeat("x", MaxDeviceToken+1) },
		"platform":           func(a *Attach) { a.Platform = "mqtt" },
		"apns without topic": func(a *Attach) { a.Platform = PlatformAPNs },
		"auth without key":   func(a *Attach) { a.P256DH = nil },
		"auth 15 bytes":      func(a *Attach) { a.Auth = auth[:15] },
		"p256dh compressed":  func(a *Attach) { a.P256DH = compressed },
		"p256dh off curve":   func(a *Attach) { k := bytes.Clone(p256); k[64] ^= 1; a.P256DH = k },
		"sigkey 33 bytes":    func(a *Attach) { a.SigKey = make([]byte, 33) },
		"sigkey off curve":   func(a *Attach) { k := bytes.Clone(p256); k[64] ^= 1; a.SigKey = k },
		"name 65 runes":      func(a *Attach) { a.Name = strings.Repeat("ä", 65) },
		"name control char":  func(a *Attach) { a.Name = "bad\x1b[31m" },
	}
	for name, mutate := range cases {
		a := good
		mutate(&a)
		if err := a.Validate(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// At the limits.
	a := good
	a.Name = strings.Repeat("ä", MaxDeviceName)
	a.Token = strings.Repeat("x", MaxDeviceToken)
	a.URL = "https://v.example/" + strings.Repeat("x", MaxAttachURL-len("https://v.example/"))
	if b, err := a.Encode(); err != nil {
		t.Fatalf("at the limits: %v", err)
	} else if got, err := DecodeAttach(b); err != nil || got.Name != a.Name {
		t.Fatalf("at the limits: %v", err)
	}
}

func TestAttachHostileMsgpack(t *testing.T) {
	cases := map[string][]byte{
		"huge str32 claim":  {0x81, 0xa3, 'u', 'r', 'l', 0xdb, 0xff, 0xff, 0xff, 0xff},
		"huge bin32 claim":  {0x81, 0xa6, 'p', '2', '5', '6', 'd', 'h', 0xc6, 0x7f, 0xff, 0xff, 0xff},
		"huge map32":        {0xdf, 0xff, 0xff, 0xff, 0xff},
		"huge nested array": {0x81, 0xa1, 'x', 0xdd, 0xff, 0xff, 0xff, 0xff},
		"truncated":         {0x82, 0xa1, 'v'},
		"int key":           {0x81, 0x01, 0x01},
		"duplicate key":     {0x82, 0xa1, 'v', 0x01, 0xa1, 'v', 0x01},
		"trailing bytes":    append(mustAttach(t), 0),
		"deep nesting":      {0x81, 0xa1, 'x', 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x01},
		"url is int":        {0x81, 0xa3, 'u', 'r', 'l', 0x05},
		"forbidden type c1": {0x81, 0xa1, 'x', 0xc1},
	}
	for name, b := range cases {
		if _, err := DecodeAttach(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func mustAttach(t testing.TB) []byte {
	b, err := Attach{Version: 1, URL: "https://v.example/t", Token: "tok", Platform: PlatformFCM}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func FuzzDecodeAttach(f *testing.F) {
	p256, auth := testKeys(f)
	full, _ := Attach{Version: 1, URL: "https://v.example/t?c=1", Token: "tok", Platform: PlatformAPNs, Topic: "com.x", P256DH: p256, Auth: auth, SigKey: p256, Name: "n"}.Encode()
	lib, _ := msgpack.Marshal(map[string]any{"v": 1, "url": "https://a/b", "token": "t", "platform": "fcm", "x": []any{1.5, nil, true}})
	f.Add(full)
	f.Add(lib)
	f.Add(mustAttach(f))
	f.Add([]byte("https://vendor.example/token?code=1 devtoken"))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := DecodeAttach(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		b, err := a.Encode()
		if err != nil {
			t.Fatalf("decoded attach does not encode: %v", err)
		}
		a2, err := DecodeAttach(b)
		if err != nil || !reflect.DeepEqual(a, a2) {
			t.Fatalf("round trip: %+v vs %+v (%v)", a, a2, err)
		}
	})
}
