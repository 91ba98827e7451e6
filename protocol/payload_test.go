package protocol

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestPayloadRoundTrips(t *testing.T) {
	t.Run("version", func(t *testing.T) {
		v := VersionData{Number: 262000101, Service: ServiceTerminal, Description: "Rewind test terminal 1.0"}
		b, err := v.Encode()
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeVersionData(b)
		if err != nil || got != v {
			t.Fatalf("got %+v, %v", got, err)
		}
		// A C terminal may send the description NUL-terminated.
		got, err = DecodeVersionData(append(b, 0))
		if err != nil || got != v {
			t.Fatalf("NUL-terminated: got %+v, %v", got, err)
		}
	})
	t.Run("text", func(t *testing.T) {
		for _, text := range []string{"", "hello", "Привет 73 de DL1ABC", "emoji 📻 and 𝄞", strings.Repeat("x", MaxTextBytes/2)} {
			m := TextMessage{Source: 262000101, Destination: 2620002, Option: OptionGroup, Text: text}
			b, err := m.Encode()
			if err != nil {
				t.Fatalf("%q: %v", text[:min(len(text), 20)], err)
			}
			got, err := DecodeTextMessage(b)
			if err != nil || got != m {
				t.Fatalf("got %+v, %v", got, err)
			}
			src, dst, opt, err := TextMessageHeader(b)
			if err != nil || src != m.Source || dst != m.Destination || opt != m.Option {
				t.Fatalf("header: %d %d %d %v", src, dst, opt, err)
			}
		}
	})
	t.Run("status", func(t *testing.T) {
		s := TextStatus{Source: 1, Destination: 2, Status: StatusRead}
		got, err := DecodeTextStatus(s.Encode())
		if err != nil || got != s {
			t.Fatalf("got %+v, %v", got, err)
		}
	})
	t.Run("location request", func(t *testing.T) {
		for _, r := range []LocationRequest{{Type: 1, Interval: 30}, {Type: 0, Interval: 0, Source: 5, Destination: 6}} {
			got, err := DecodeLocationRequest(r.Encode())
			if err != nil || got != r {
				t.Fatalf("got %+v, %v", got, err)
			}
		}
	})
	t.Run("location report", func(t *testing.T) {
		r := LocationReport{Format: LocationNMEA, Data: []byte("$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47"), Source: 7, Destination: 8}
		b, err := r.Encode()
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeLocationReport(b)
		if err != nil || !reflect.DeepEqual(got, r) {
			t.Fatalf("got %+v, %v", got, err)
		}
	})
	t.Run("subscription", func(t *testing.T) {
		s := Subscription{Type: SubscriptionGroup, Number: 91}
		got, err := DecodeSubscription(s.Encode())
		if err != nil || got != s {
			t.Fatalf("got %+v, %v", got, err)
		}
	})
	t.Run("redirection", func(t *testing.T) {
		r := Redirection{Family: AFInet, Port: 54005, Address: [16]byte{127, 0, 0, 1}}
		got, err := DecodeRedirection(r.Encode())
		if err != nil || got != r {
			t.Fatalf("got %+v, %v", got, err)
		}
	})
	t.Run("u32", func(t *testing.T) {
		got, err := DecodeU32("ack", EncodeU32(0xdeadbeef))
		if err != nil || got != 0xdeadbeef {
			t.Fatalf("got %x, %v", got, err)
		}
	})
	t.Run("broker error", func(t *testing.T) {
		e := BrokerError{Code: CodeNotFound, Offending: TypeMessageText, Reason: "no terminal 262000999"}
		got, err := DecodeBrokerError(e.Encode())
		if err != nil || got != e {
			t.Fatalf("got %+v, %v", got, err)
		}
		long := BrokerError{Code: 400, Reason: strings.Repeat("é", 400)}
		got, _ = DecodeBrokerError(long.Encode())
		if len(got.Reason) > 512 || !strings.HasPrefix(long.Reason, got.Reason) {
			t.Fatalf("long reason not cut cleanly: %d bytes", len(got.Reason))
		}
	})
}

func TestPayloadLimits(t *testing.T) {
	// Text: the largest text that fits, and one UTF-16 unit more.
	atLimit := TextMessage{Text: strings.Repeat("a", MaxTextBytes/2)}
	if _, err := atLimit.Encode(); err != nil {
		t.Fatalf("text at the limit: %v", err)
	}
	past := TextMessage{Text: strings.Repeat("a", MaxTextBytes/2+1)}
	if _, err := past.Encode(); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("text past the limit: %v", err)
	}
	// The whole datagram still fits at the limit.
	b, _ := atLimit.Encode()
	if _, err := (Datagram{Type: TypeMessageText, Data: b}).Encode(); err != nil {
		t.Fatalf("datagram with largest text: %v", err)
	}
	if _, err := (VersionData{Description: strings.Repeat("d", MaxDescription)}).Encode(); err != nil {
		t.Fatalf("description at the limit: %v", err)
	}
	if _, err := (VersionData{Description: strings.Repeat("d", MaxDescription+1)}).Encode(); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("description past the limit: %v", err)
	}
	if _, err := DecodeVersionData(make([]byte, 5+MaxDescription+1)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("decoding a description past the limit: %v", err)
	}
}

func TestPayloadDecodeErrors(t *testing.T) {
	text, _ := TextMessage{Source: 1, Destination: 2, Text: "hi"}.Encode()
	badLen := bytes.Clone(text)
	badLen[14] = 200
	report, _ := LocationReport{Data: []byte("abc")}.Encode()
	cases := map[string]func() error{
		"version short":      func() error { _, err := DecodeVersionData(make([]byte, 4)); return err },
		"text short":         func() error { _, err := DecodeTextMessage(make([]byte, 15)); return err },
		"text length":        func() error { _, err := DecodeTextMessage(badLen); return err },
		"text header length": func() error { _, _, _, err := TextMessageHeader(badLen); return err },
		"text odd":           func() error { _, err := DecodeTextMessage(append(text[:14:14], 1, 0, 'a')); return err },
		"status size":        func() error { _, err := DecodeTextStatus(make([]byte, 14)); return err },
		"locreq size":        func() error { _, err := DecodeLocationRequest(make([]byte, 13)); return err },
		"locrep short":       func() error { _, err := DecodeLocationReport(make([]byte, 17)); return err },
		"locrep length":      func() error { _, err := DecodeLocationReport(report[:len(report)-1]); return err },
		"subscription size":  func() error { _, err := DecodeSubscription(make([]byte, 7)); return err },
		"redirection size":   func() error { _, err := DecodeRedirection(make([]byte, 21)); return err },
		"u32 size":           func() error { _, err := DecodeU32("ack", make([]byte, 3)); return err },
		"broker error short": func() error { _, err := DecodeBrokerError(make([]byte, 3)); return err },
	}
	for name, f := range cases {
		if err := f(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
}

func TestUTF16(t *testing.T) {
	for _, s := range []string{"", "abc", "ü", "日本語", "📻", "a📻b𝄞"} {
		b, err := AppendUTF16LE(nil, s)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeUTF16LE(b)
		if err != nil || got != s {
			t.Fatalf("%q: got %q, %v", s, got, err)
		}
	}
	bad := map[string][]byte{
		"odd length":           {0x61, 0x00, 0x62},
		"lone high surrogate":  {0x3d, 0xd8},
		"high then letter":     {0x3d, 0xd8, 0x61, 0x00},
		"lone low surrogate":   {0xfb, 0xdc},
		"low before high":      {0xfb, 0xdc, 0x3d, 0xd8},
		"high then high":       {0x3d, 0xd8, 0x3d, 0xd8},
		"surrogate at the end": {0x61, 0x00, 0x3d, 0xd8},
	}
	for name, b := range bad {
		if _, err := DecodeUTF16LE(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
		if err := CheckUTF16LE(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("check %s: got %v, want ErrMalformed", name, err)
		}
	}
	if err := CheckUTF16LE([]byte{0x3d, 0xd8, 0xfb, 0xdc, 0x61, 0x00}); err != nil {
		t.Fatalf("valid pair: %v", err)
	}
	if n := testing.AllocsPerRun(100, func() { CheckUTF16LE([]byte{0x61, 0, 0x3d, 0xd8, 0xfb, 0xdc}) }); n != 0 {
		t.Fatalf("CheckUTF16LE allocates %.0f times", n)
	}
	if _, err := AppendUTF16LE(nil, "bad \xff utf8"); !errors.Is(err, ErrMalformed) {
		t.Fatalf("invalid UTF-8: %v", err)
	}
	// U+FFFD itself is valid and must round-trip.
	b, err := AppendUTF16LE(nil, "\uFFFD")
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := DecodeUTF16LE(b); s != "\uFFFD" {
		t.Fatalf("U+FFFD: %q", s)
	}
}

func TestAuthDigest(t *testing.T) {
	// SHA-256("abc" ‖ "") is the FIPS 180-2 "abc" vector.
	got := AuthDigest([]byte("abc"), "")
	want := "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	if x := bytesHex(got[:]); x != want {
		t.Fatalf("got %s", x)
	}
	a, b := AuthDigest([]byte("ab"), "c"), AuthDigest([]byte("abc"), "")
	if a != b {
		t.Fatal("digest must be over the concatenation")
	}
}

func bytesHex(b []byte) string {
	const hex = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, hex[c>>4], hex[c&0xf])
	}
	return string(out)
}
