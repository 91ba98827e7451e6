package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rewind-broker/rewind/registry"
)

// BlobStore is a Blobs that can be closed; the suite closes and reopens it
// to check durability.
type BlobStore interface {
	registry.Blobs
	Close() error
}

// BlobOpener opens one storage location with the given clock, which the
// store must use to decide what GetBlob treats as expired. Every call opens
// the same location, so a store opened after the previous one was closed
// sees everything that one wrote.
type BlobOpener func(t *testing.T, now func() time.Time) BlobStore

// RunBlobs runs the Blobs contract. fresh returns a BlobOpener for a new,
// empty location; the suite closes every store it opens (a second Close
// must return nil).
func RunBlobs(t *testing.T, fresh func(t *testing.T) BlobOpener) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, f *blobFixture)
	}{
		{"PutGet", testBlobPutGet},
		{"Validation", testBlobValidation},
		{"Keys", testBlobKeys},
		{"Expiry", testBlobExpiry},
		{"Replace", testBlobReplace},
		{"Delete", testBlobDelete},
		{"ExpireMany", testExpireManyBlobs},
		{"Persistent", testBlobPersistent},
		{"ContextCancelled", testBlobContextCancelled},
		{"Closed", testBlobClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &blobFixture{open: fresh(t), clock: &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 678901234, time.UTC)}}
			f.reopen(t)
			t.Cleanup(func() {
				if err := f.s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, f)
		})
	}
}

type blobFixture struct {
	open  BlobOpener
	clock *clock
	s     BlobStore
}

func (f *blobFixture) reopen(t *testing.T) {
	t.Helper()
	if f.s != nil {
		if err := f.s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	f.s = f.open(t, f.clock.Now)
}

func (f *blobFixture) put(t *testing.T, key string, value []byte, expires time.Time) {
	t.Helper()
	if err := f.s.PutBlob(context.Background(), key, value, expires); err != nil {
		t.Fatalf("PutBlob(%q): %v", key, err)
	}
}

// want checks that key holds value with expires.
func (f *blobFixture) want(t *testing.T, what, key string, value []byte, expires time.Time) {
	t.Helper()
	got, exp, err := f.s.GetBlob(context.Background(), key)
	if err != nil {
		t.Errorf("%s: GetBlob(%q): %v", what, key, err)
		return
	}
	if !bytes.Equal(got, value) || got == nil || !exp.Equal(expires) {
		t.Errorf("%s: GetBlob(%q) = %d bytes (nil: %v), expires %v; want %d bytes, expires %v",
			what, key, len(got), got == nil, exp, len(value), expires)
	}
}

func (f *blobFixture) absent(t *testing.T, what, key string) {
	t.Helper()
	if v, _, err := f.s.GetBlob(context.Background(), key); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("%s: GetBlob(%q) = %q, %v; want ErrNotFound", what, key, v, err)
	}
}

func (f *blobFixture) expire(t *testing.T, now time.Time) int {
	t.Helper()
	n, err := f.s.ExpireBlobs(context.Background(), now)
	if err != nil {
		t.Fatalf("ExpireBlobs(%v): %v", now, err)
	}
	return n
}

func testBlobPutGet(t *testing.T, f *blobFixture) {
	exp := f.clock.Now().Add(time.Hour)
	in := []byte("credential")
	f.put(t, "tokensvc/abc", in, exp)
	copy(in, "XXXX") // the store must have copied it
	f.want(t, "after put", "tokensvc/abc", []byte("credential"), exp)
	got, _, err := f.s.GetBlob(context.Background(), "tokensvc/abc")
	if err != nil {
		t.Fatal(err)
	}
	got[0] = 'Y' // a returned value is the caller's
	f.want(t, "after mutating a result", "tokensvc/abc", []byte("credential"), exp)

	f.put(t, "empty", nil, time.Time{})
	f.want(t, "nil value", "empty", []byte{}, time.Time{})
	f.put(t, "empty2", []byte{}, exp)
	f.want(t, "empty value", "empty2", []byte{}, exp)
	f.absent(t, "unknown key", "nope")

	big := bytes.Repeat([]byte{0xA5}, registry.MaxBlobBytes)
	f.put(t, "big", big, exp)
	f.want(t, "largest value", "big", big, exp)
}

func testBlobValidation(t *testing.T, f *blobFixture) {
	ctx := context.Background()
	exp := f.clock.Now().Add(time.Hour)
	key256 := strings.Repeat("k", registry.MaxBlobKeyBytes)
	f.put(t, key256, []byte("v"), exp)
	f.want(t, "key at limit", key256, []byte("v"), exp)
	f.put(t, "k", []byte("old"), exp)
	for _, tc := range []struct {
		what  string
		key   string
		value []byte
	}{
		{"empty key", "", []byte("v")},
		{"key past limit", key256 + "k", []byte("v")},
		{"value past limit", "k", make([]byte, registry.MaxBlobBytes+1)},
	} {
		if err := f.s.PutBlob(ctx, tc.key, tc.value, exp); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("PutBlob with %s: err = %v, want ErrInvalid", tc.what, err)
		}
	}
	f.want(t, "after refused put", "k", []byte("old"), exp)
	if _, _, err := f.s.GetBlob(ctx, ""); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("GetBlob(empty key): err = %v, want ErrInvalid", err)
	}
	if err := f.s.DeleteBlob(ctx, key256+"k"); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("DeleteBlob(key past limit): err = %v, want ErrInvalid", err)
	}
}

// testBlobKeys checks that keys are arbitrary bytes and independent, even
// when one is a prefix of another.
func testBlobKeys(t *testing.T, f *blobFixture) {
	keys := []string{"a", "ab", "a\x00", "\x00", "\xff\xfe", "a/b", "日本"}
	for i, k := range keys {
		f.put(t, k, fmt.Appendf(nil, "v%d", i), time.Time{})
	}
	if err := f.s.DeleteBlob(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	f.absent(t, "deleted", "a")
	for i, k := range keys[1:] {
		f.want(t, "after deleting a prefix", k, fmt.Appendf(nil, "v%d", i+1), time.Time{})
	}
}

func testBlobExpiry(t *testing.T, f *blobFixture) {
	start := f.clock.Now()
	f.put(t, "short", []byte("s"), start.Add(300*time.Millisecond))
	f.put(t, "long", []byte("l"), start.Add(time.Hour))
	f.put(t, "never", []byte("n"), time.Time{})
	f.put(t, "past", []byte("p"), start.Add(-time.Second))
	f.absent(t, "put already expired", "past")

	f.clock.Advance(300*time.Millisecond - time.Nanosecond)
	f.want(t, "1ns before expiry", "short", []byte("s"), start.Add(300*time.Millisecond))
	f.clock.Advance(time.Nanosecond)
	f.absent(t, "at expiry, before ExpireBlobs", "short")

	if n := f.expire(t, start.Add(300*time.Millisecond-time.Nanosecond)); n != 1 {
		t.Errorf("ExpireBlobs 1ns before short's expiry removed %d, want 1 (past)", n)
	}
	if n := f.expire(t, start.Add(300*time.Millisecond)); n != 1 {
		t.Errorf("ExpireBlobs at short's expiry removed %d, want 1", n)
	}
	if n := f.expire(t, start.Add(300*time.Millisecond)); n != 0 {
		t.Errorf("second ExpireBlobs removed %d, want 0", n)
	}
	// ExpireBlobs takes its own now, not the store's clock: the clock is
	// at +300ms, long expires at +1h.
	if n := f.expire(t, start.Add(100*365*24*time.Hour)); n != 1 {
		t.Errorf("ExpireBlobs in 100 years removed %d, want 1 (long; never stays)", n)
	}
	f.absent(t, "expired and removed", "long")
	f.want(t, "zero expiry", "never", []byte("n"), time.Time{})
}

// testBlobReplace checks that a put replaces the expiry too, in both
// directions, and that ExpireBlobs goes by the current one.
func testBlobReplace(t *testing.T, f *blobFixture) {
	start := f.clock.Now()
	f.put(t, "shortened", []byte("1"), start.Add(time.Hour))
	f.put(t, "shortened", []byte("2"), start.Add(10*time.Second))
	f.put(t, "extended", []byte("1"), start.Add(10*time.Second))
	f.put(t, "extended", []byte("2"), start.Add(time.Hour))
	f.put(t, "unexpiring", []byte("1"), start.Add(10*time.Second))
	f.put(t, "unexpiring", []byte("2"), time.Time{})
	f.want(t, "shortened", "shortened", []byte("2"), start.Add(10*time.Second))

	f.clock.Advance(20 * time.Second)
	f.absent(t, "shortened, past its new expiry", "shortened")
	f.want(t, "extended, past its old expiry", "extended", []byte("2"), start.Add(time.Hour))
	if n := f.expire(t, f.clock.Now()); n != 1 {
		t.Errorf("ExpireBlobs at +20s removed %d, want 1 (shortened)", n)
	}
	f.want(t, "extended after ExpireBlobs", "extended", []byte("2"), start.Add(time.Hour))
	f.want(t, "unexpiring after ExpireBlobs", "unexpiring", []byte("2"), time.Time{})
	if n := f.expire(t, start.Add(2*time.Hour)); n != 1 {
		t.Errorf("ExpireBlobs at +2h removed %d, want 1 (extended; its old expiry must not count)", n)
	}
	f.want(t, "unexpiring at +2h", "unexpiring", []byte("2"), time.Time{})
}

func testBlobDelete(t *testing.T, f *blobFixture) {
	ctx := context.Background()
	exp := f.clock.Now().Add(time.Minute)
	if err := f.s.DeleteBlob(ctx, "absent"); err != nil {
		t.Errorf("DeleteBlob(absent): %v, want nil", err)
	}
	f.put(t, "k", []byte("v"), exp)
	f.put(t, "other", []byte("o"), exp)
	if err := f.s.DeleteBlob(ctx, "k"); err != nil {
		t.Fatalf("DeleteBlob: %v", err)
	}
	f.absent(t, "after delete", "k")
	if err := f.s.DeleteBlob(ctx, "k"); err != nil {
		t.Errorf("second DeleteBlob: %v, want nil", err)
	}
	if n := f.expire(t, exp); n != 1 {
		t.Errorf("ExpireBlobs after delete removed %d, want 1 (the deleted blob is not counted)", n)
	}
	f.put(t, "k", []byte("again"), time.Time{})
	f.want(t, "put after delete", "k", []byte("again"), time.Time{})
}

// testExpireManyBlobs removes more blobs than any implementation's internal
// chunk.
func testExpireManyBlobs(t *testing.T, f *blobFixture) {
	start := f.clock.Now()
	const many = 1100
	for i := range many {
		f.put(t, fmt.Sprintf("k%04d", i), []byte("v"), start.Add(time.Duration(i%7+1)*time.Second))
	}
	f.put(t, "later", []byte("v"), start.Add(time.Hour))
	if n := f.expire(t, start.Add(time.Minute)); n != many {
		t.Errorf("ExpireBlobs removed %d, want %d", n, many)
	}
	f.absent(t, "after ExpireBlobs", "k0000")
	f.want(t, "unexpired after ExpireBlobs", "later", []byte("v"), start.Add(time.Hour))
}

func testBlobPersistent(t *testing.T, f *blobFixture) {
	ctx := context.Background()
	exp := f.clock.Now().Add(time.Minute)
	f.put(t, "kept", []byte("value"), exp)
	f.put(t, "never", []byte("n"), time.Time{})
	f.put(t, "deleted", []byte("d"), exp)
	if err := f.s.DeleteBlob(ctx, "deleted"); err != nil {
		t.Fatal(err)
	}
	f.reopen(t)
	f.want(t, "after reopen", "kept", []byte("value"), exp)
	f.want(t, "after reopen", "never", []byte("n"), time.Time{})
	f.absent(t, "deleted, after reopen", "deleted")
	if n := f.expire(t, exp); n != 1 {
		t.Errorf("ExpireBlobs after reopen removed %d, want 1", n)
	}
	f.reopen(t)
	f.absent(t, "expired, after second reopen", "kept")
}

func testBlobContextCancelled(t *testing.T, f *blobFixture) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.s.PutBlob(ctx, "k", []byte("v"), time.Time{}); !errors.Is(err, context.Canceled) {
		t.Errorf("PutBlob(cancelled ctx): err = %v, want context.Canceled", err)
	}
	if _, _, err := f.s.GetBlob(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Errorf("GetBlob(cancelled ctx): err = %v, want context.Canceled", err)
	}
	f.absent(t, "put with a cancelled ctx", "k")
}

func testBlobClosed(t *testing.T, f *blobFixture) {
	ctx := context.Background()
	f.put(t, "k", []byte("v"), time.Time{})
	if err := f.s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, _, err := f.s.GetBlob(ctx, "k"); !errors.Is(err, registry.ErrClosed) {
		t.Errorf("GetBlob after Close: err = %v, want ErrClosed", err)
	}
	if err := f.s.PutBlob(ctx, "k", []byte("v"), time.Time{}); !errors.Is(err, registry.ErrClosed) {
		t.Errorf("PutBlob after Close: err = %v, want ErrClosed", err)
	}
	if err := f.s.DeleteBlob(ctx, "k"); !errors.Is(err, registry.ErrClosed) {
		t.Errorf("DeleteBlob after Close: err = %v, want ErrClosed", err)
	}
	if _, err := f.s.ExpireBlobs(ctx, time.Now()); !errors.Is(err, registry.ErrClosed) {
		t.Errorf("ExpireBlobs after Close: err = %v, want ErrClosed", err)
	}
}
