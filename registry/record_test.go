package registry

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

func TestTerminalRecordRoundTrip(t *testing.T) {
	in := Terminal{
		ID:       262000101,
		Password: "pw\x00with nul",
		Name:     strings.Repeat("日", MaxNameRunes),
		Created:  time.Date(2020, 1, 2, 3, 4, 5, 6, time.UTC),
		Updated:  time.Date(2021, 1, 2, 3, 4, 5, 6, time.UTC),
	}
	b, err := encodeTerminal(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := decodeTerminal(in.ID, b)
	if err != nil {
		t.Fatal(err)
	}
	if out.ID != in.ID || out.Password != in.Password || out.Name != in.Name ||
		!out.Created.Equal(in.Created) || !out.Updated.Equal(in.Updated) || !out.LastSeen.IsZero() {
		t.Errorf("round trip: got %+v, want %+v", out, in)
	}
}

func TestDecodeTerminalRefuses(t *testing.T) {
	valid, _ := encodeTerminal(Terminal{ID: 1, Password: "pw"})
	mp := func(v any) []byte {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for name, b := range map[string][]byte{
		"empty":          nil,
		"nil":            {0xc0},
		"trailing byte":  append(append([]byte{}, valid...), 0),
		"truncated":      valid[:len(valid)-1],
		"version 2":      mp(map[string]any{"v": 2, "p": "pw"}),
		"no password":    mp(map[string]any{"v": 1}),
		"long password":  mp(map[string]any{"v": 1, "p": strings.Repeat("x", MaxPasswordBytes+1)}),
		"bad name":       mp(map[string]any{"v": 1, "p": "pw", "n": "a\x00b"}),
		"wrong type":     mp(map[string]any{"v": 1, "p": 5}),
		"array":          mp([]any{1, "pw"}),
		"huge str claim": {0x81, 0xa1, 'p', 0xdb, 0xff, 0xff, 0xff, 0xff},
	} {
		if _, err := decodeTerminal(1, b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
}

// FuzzDecodeTerminal checks that any stored bytes either decode into a
// valid terminal that survives an encode/decode round trip, or give
// ErrCorrupt; never a panic or an over-sized allocation.
func FuzzDecodeTerminal(f *testing.F) {
	for _, term := range []Terminal{
		{ID: 1, Password: "p"},
		{ID: 262000101, Password: "secret", Name: "Pixel 8", Created: time.Unix(1700000000, 1), Updated: time.Unix(1700000001, 2), LastSeen: time.Unix(1700000002, 3)},
	} {
		b, err := encodeTerminal(term)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		term, err := decodeTerminal(262000101, b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
			return
		}
		if err := validateTerminal(term); err != nil {
			t.Fatalf("decoded an invalid terminal: %v", err)
		}
		again, err := encodeTerminal(term)
		if err != nil {
			t.Fatal(err)
		}
		back, err := decodeTerminal(262000101, again)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if back.Password != term.Password || back.Name != term.Name || !back.Created.Equal(term.Created) ||
			!back.Updated.Equal(term.Updated) || !back.LastSeen.Equal(term.LastSeen) {
			t.Fatalf("round trip changed %+v into %+v", term, back)
		}
	})
}

// FuzzDecodeEntry checks that stored outbox bytes either decode into an
// entry that survives a round trip or give ErrCorrupt; in particular a
// claimed datagram length is checked before anything is allocated.
func FuzzDecodeEntry(f *testing.F) {
	b, err := encodeEntry(Entry{Datagram: []byte("datagram"), Stored: time.Unix(1700000000, 1), Expires: time.Unix(1700003600, 1)})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte("\x84\xa1v\x01\xa1d\xc6\xff\xff\xff\xff\xa1s\x01\xa1e\x02")) // bin32 of 4 GiB claimed
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEntry(7, 1, b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
			return
		}
		again, err := encodeEntry(e)
		if err != nil {
			t.Fatal(err)
		}
		back, err := decodeEntry(7, 1, again)
		if err != nil || string(back.Datagram) != string(e.Datagram) || !back.Stored.Equal(e.Stored) || !back.Expires.Equal(e.Expires) {
			t.Fatalf("round trip changed %+v into %+v (%v)", e, back, err)
		}
	})
}

// TestEntryRecordEncoding checks the hand-written encoding of outbox entries against
// msgpack.Marshal of the record, at each bin length boundary (bin8, bin16, bin32) and the
// datagram limit, and that it decodes back; past the limit it refuses.
func TestEntryRecordEncoding(t *testing.T) {
	times := []time.Time{time.Unix(0, 1), time.Unix(1700000000, 123456789), time.Unix(-1, 0), time.Unix(1<<32, 999)}
	for _, n := range []int{1, 200, 255, 256, 65535, MaxDatagramBytes} {
		for i, stored := range times {
			e := Entry{Datagram: bytes.Repeat([]byte{byte(n)}, n), Stored: stored, Expires: times[(i+1)%len(times)]}
			got, err := encodeEntry(e)
			if err != nil {
				t.Fatal(err)
			}
			want, err := msgpack.Marshal(&entryRecord{Version: recordVersion, Datagram: e.Datagram, Stored: nanos(e.Stored), Expires: nanos(e.Expires)})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%d bytes, stored %v: encoded\n%x\nmsgpack gives\n%x", n, stored, got[:min(len(got), 40)], want[:min(len(want), 40)])
			}
			if d := encodedDatagram(got, n); !bytes.Equal(d, e.Datagram) || cap(d) != n {
				t.Fatalf("%d bytes: encodedDatagram gives %d bytes (cap %d), not the datagram", n, len(d), cap(d))
			}
			back, err := decodeEntry(7, 1, got)
			if err != nil || !bytes.Equal(back.Datagram, e.Datagram) || !back.Stored.Equal(e.Stored) || !back.Expires.Equal(e.Expires) {
				t.Fatalf("%d bytes: round trip gave %v, %v", n, back.Stored, err)
			}
		}
	}
	if _, err := encodeEntry(Entry{Datagram: make([]byte, MaxDatagramBytes+1), Stored: times[0], Expires: times[1]}); err == nil {
		t.Error("a datagram past the limit was encoded")
	}
}
