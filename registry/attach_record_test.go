package registry

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// FuzzDecodeAttach checks that stored attach bytes either decode into a
// valid attach that survives a round trip or give ErrCorrupt; a claimed key
// length is checked before anything is allocated.
func FuzzDecodeAttach(f *testing.F) {
	for _, a := range []Attach{
		{Terminal: 7, Platform: PlatformFCM, URL: "https://t.example/x", Token: "tok", Legacy: true},
		{Terminal: 7, Platform: PlatformAPNs, URL: "https://t.example/x?k=1", Token: "abcd", Topic: "com.example",
			P256DH: make([]byte, 65), Auth: make([]byte, 16), SigKey: make([]byte, 32), Name: "n",
			Attached: time.Unix(1700000000, 1), TokenUpdated: time.Unix(1700000001, 2),
			Invalid: true, InvalidReason: "Unregistered", InvalidAt: time.Unix(1700000002, 3)},
	} {
		b, err := encodeAttach(a)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("\x83\xa1v\x01\xa1k\xc6\xff\xff\xff\xff\xa1p\xa3fcm")) // bin32 of 4 GiB claimed
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := decodeAttach(7, b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
			return
		}
		again, err := encodeAttach(a)
		if err != nil {
			t.Fatal(err)
		}
		back, err := decodeAttach(7, again)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if back.URL != a.URL || back.Token != a.Token || !bytes.Equal(back.P256DH, a.P256DH) ||
			!bytes.Equal(back.SigKey, a.SigKey) || back.Invalid != a.Invalid || !back.InvalidAt.Equal(a.InvalidAt) ||
			!back.Attached.Equal(a.Attached) || !back.TokenUpdated.Equal(a.TokenUpdated) {
			t.Fatalf("round trip changed the attach")
		}
	})
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"https://tokens.example.com/v1/fcm?key=s3cr3t": "https://tokens.example.com/…",
		"https://tokens.example.com":                   "https://tokens.example.com",
		"https://tokens.example.com/":                  "https://tokens.example.com",
		"https://user:pw@tokens.example.com":           "https://tokens.example.com/…",
		"not a url s3cr3t":                             "[16-byte URL]",
		"":                                             "[0-byte URL]",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
	token := strings.Repeat("f0", 32)
	if got := RedactToken(token); got != "f0f0f0…[64 bytes]" {
		t.Errorf("RedactToken(64 hex) = %q", got)
	}
	if got := RedactToken("short-token"); got != "[11 bytes]" {
		t.Errorf("RedactToken(short) = %q", got)
	}
}

func TestAttachLogValueRedacts(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	a := Attach{Terminal: 262000101, Platform: PlatformFCM, URL: "https://t.example/v1?key=s3cr3t",
		Token: strings.Repeat("Z", 160), P256DH: make([]byte, 65), Auth: make([]byte, 16)}
	log.Info("attached", "attach", a)
	out := buf.String()
	if strings.Contains(out, "s3cr3t") || strings.Contains(out, strings.Repeat("Z", 7)) {
		t.Errorf("log line reveals a secret: %s", out)
	}
	if !strings.Contains(out, "attach.terminal=262000101") || !strings.Contains(out, "attach.url=https://t.example/…") {
		t.Errorf("log line lacks the redacted fields: %s", out)
	}
}
