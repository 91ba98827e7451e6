package registry

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzDecodeBlob checks that stored blob bytes either decode into a value
// that survives a round trip or give ErrCorrupt; a claimed value length is
// checked before anything is allocated.
func FuzzDecodeBlob(f *testing.F) {
	for _, exp := range []int64{0, 1700000000000000001} {
		b, err := encodeBlob([]byte("value"), exp)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("\x83\xa1v\x01\xa1d\xc6\xff\xff\xff\xff\xa1e\x02")) // bin32 of 4 GiB claimed
	f.Fuzz(func(t *testing.T, b []byte) {
		v, exp, err := decodeBlob("k", b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
			return
		}
		if v == nil || len(v) > MaxBlobBytes {
			t.Fatalf("decoded value of %d bytes (nil: %v)", len(v), v == nil)
		}
		again, err := encodeBlob(v, exp)
		if err != nil {
			t.Fatal(err)
		}
		back, backExp, err := decodeBlob("k", again)
		if err != nil || !bytes.Equal(back, v) || backExp != exp {
			t.Fatalf("round trip: %v", err)
		}
	})
}
