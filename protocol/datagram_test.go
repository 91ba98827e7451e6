package protocol

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestDatagramRoundTrip(t *testing.T) {
	for _, size := range []int{0, 1, 18, 8192, MaxDataSize} {
		d := Datagram{Type: TypeMessageText, Flags: FlagBuffering | FlagRealTime1, Number: 0xfffffffe, Data: bytes.Repeat([]byte{0xa5}, size)}
		b, err := d.Encode()
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if len(b) != HeaderSize+size {
			t.Fatalf("size %d: encoded %d bytes", size, len(b))
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("size %d: decode: %v", size, err)
		}
		if got.Type != d.Type || got.Flags != d.Flags || got.Number != d.Number || !bytes.Equal(got.Data, d.Data) {
			t.Fatalf("size %d: round trip changed the datagram: %v", size, got)
		}
	}
}

func TestDatagramWireLayout(t *testing.T) {
	b := Datagram{Type: TypeTerminalAttach, Flags: FlagBuffering, Number: 0x01020304, Data: []byte{9, 8}}.MustEncode()
	want := []byte("REWIND01\x02\x0a\x04\x00\x04\x03\x02\x01\x02\x00\x09\x08")
	if !bytes.Equal(b, want) {
		t.Fatalf("wire bytes\n got %x\nwant %x", b, want)
	}
}

func TestEncodeLimit(t *testing.T) {
	if _, err := (Datagram{Data: make([]byte, MaxDataSize)}).Encode(); err != nil {
		t.Fatalf("at the limit: %v", err)
	}
	if _, err := (Datagram{Data: make([]byte, MaxDataSize+1)}).Encode(); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("past the limit: got %v, want ErrTooLarge", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	good := Datagram{Type: TypeKeepAlive, Data: []byte{1, 2, 3}}.MustEncode()
	cases := map[string]struct {
		msg  []byte
		want error
	}{
		"empty":         {nil, ErrShort},
		"17 bytes":      {good[:17], ErrShort},
		"bad signature": {append([]byte("REWIND02"), good[8:]...), ErrSign},
		"length short":  {good[:len(good)-1], ErrLength},
		"length long":   {append(bytes.Clone(good), 0), ErrLength},
	}
	for name, c := range cases {
		_, err := Decode(c.msg)
		if !errors.Is(err, c.want) || !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want %v (and ErrMalformed)", name, err, c.want)
		}
	}
}

func TestHeaderDecodeAllocatesNothing(t *testing.T) {
	msg := Datagram{Type: TypeMessageText, Data: make([]byte, 200)}.MustEncode()
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := Decode(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := ParseHeader(msg); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Decode allocates %.1f times per call, want 0", allocs)
	}
}

func TestTypeString(t *testing.T) {
	if TypeMessageText.String() != "MESSAGE_TEXT" || TypeBrokerError.String() != "BROKER_ERROR" {
		t.Fatal("known names")
	}
	if s := Type(0x1234).String(); s != "0x1234" {
		t.Fatalf("unknown type string %q", s)
	}
	if Type(0x1234).Known() || !TypeKeepAlive.Known() {
		t.Fatal("Known")
	}
	if s := (Datagram{Type: TypeClose}).String(); !strings.HasPrefix(s, "CLOSE") {
		t.Fatalf("datagram string %q", s)
	}
}
