package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// FuzzOpen feeds arbitrary bodies to Open for the RFC 8291 example's receiver, and arbitrary
// plaintexts through Seal and back. Properties: Open never panics, fails only with one of the
// web push sentinels, returns no plaintext with an error, never a plaintext longer than the
// record allows; and a sealed plaintext always opens to itself.
//
// The seed corpus in testdata/fuzz/FuzzOpen holds the RFC body, a body sealed with fixed salt
// and key, truncated bodies and bodies with a bad header, padding or trailing data.
func FuzzOpen(f *testing.F) {
	ua, keys := rfcReceiver(f)
	rfcBody := b64(f, rfc8291.body)
	f.Add(rfcBody, []byte(rfc8291.plaintext))
	f.Add(rfcBody[:86], []byte{})
	f.Add(rfcBody[:102], []byte{0})
	f.Add(append(bytes.Clone(rfcBody), 0), []byte{2})
	f.Add([]byte{}, make([]byte, 4000))

	f.Fuzz(func(t *testing.T, body, plain []byte) {
		got, err := Open(ua, keys.Auth, body)
		if err != nil {
			if got != nil {
				t.Fatalf("Open returned %d bytes and %v", len(got), err)
			}
			n := 0
			for _, e := range pushErrors {
				if errors.Is(err, e) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("Open error %v wraps %d sentinels", err, n)
			}
		} else {
			if len(got) > len(body)-SealedSize(0) {
				t.Fatalf("Open returned %d bytes from a %d-byte body", len(got), len(body))
			}
			if rs := binary.BigEndian.Uint32(body[16:20]); uint64(len(body)-86) > uint64(rs) {
				t.Fatalf("Open accepted a record longer than rs %d", rs)
			}
		}

		if len(plain) > MaxPushPlaintext {
			return
		}
		sealed, err := Seal(keys, plain)
		if err != nil {
			t.Fatalf("Seal: %v", err)
		}
		if len(sealed) != SealedSize(len(plain)) {
			t.Fatalf("Seal gave %d bytes, SealedSize %d", len(sealed), SealedSize(len(plain)))
		}
		back, err := Open(ua, keys.Auth, sealed)
		if err != nil {
			t.Fatalf("Open(Seal(%d bytes)): %v", len(plain), err)
		}
		if !bytes.Equal(back, plain) {
			t.Fatalf("Open(Seal(p)) != p for %d bytes", len(plain))
		}
	})
}

// TestOpenFuzzCorpus checks that the checked-in seeds still mean what their names say, so the
// fuzzer keeps starting from bodies that get past the header and the tag: "rfc8291_body" and
// "valid_*" open to their second value (or, for an empty one, at least open), every other
// seed fails with the sentinel its name points to.
func TestOpenFuzzCorpus(t *testing.T) {
	ua, keys := rfcReceiver(t)
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzOpen", "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no seed corpus: %v", err)
	}
	want := map[string]error{
		"truncated": ErrPushTruncated, "empty": ErrPushTruncated,
		"rs_17": ErrPushBadHeader, "idlen": ErrPushBadHeader,
		"rs_too_small": ErrPushTrailingData, "trailing": ErrPushTrailingData,
		"keyid": ErrPushBadKey, "tag": ErrPushDecrypt, "cut": ErrPushDecrypt,
		"padding": ErrPushPadding,
	}
	for _, file := range files {
		name := filepath.Base(file)
		body, plain := readFuzzSeed(t, file)
		got, err := Open(ua, keys.Auth, body)
		if name == "rfc8291_body" || strings.HasPrefix(name, "valid_") {
			if err != nil {
				t.Errorf("%s: %v", name, err)
			} else if len(plain) > 0 && !bytes.Equal(got, plain) {
				t.Errorf("%s: opens to %q, want %q", name, got, plain)
			}
			continue
		}
		var sentinel error
		for prefix, e := range want {
			if strings.HasPrefix(name, prefix) {
				sentinel = e
			}
		}
		if sentinel == nil {
			t.Errorf("%s: no expectation for this seed name", name)
		} else if !errors.Is(err, sentinel) {
			t.Errorf("%s: err = %v, want %v", name, err, sentinel)
		}
	}
}

// readFuzzSeed reads a "go test fuzz v1" file of two []byte values.
func readFuzzSeed(t *testing.T, file string) (body, plain []byte) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 3 || lines[0] != "go test fuzz v1" {
		t.Fatalf("%s: not a two-value go test fuzz v1 file", file)
	}
	var vals [2][]byte
	for i, line := range lines[1:] {
		quoted, ok := strings.CutPrefix(line, "[]byte(")
		quoted, ok2 := strings.CutSuffix(quoted, ")")
		s, err := strconv.Unquote(quoted)
		if !ok || !ok2 || err != nil {
			t.Fatalf("%s: line %d: %q", file, i+2, line)
		}
		vals[i] = []byte(s)
	}
	return vals[0], vals[1]
}
