package registry

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// tailOf returns a copy of terminal's tail, read on the committer; nil when unknown.
func tailOf(t *testing.T, b *Badger, terminal uint32) *outboxTail {
	t.Helper()
	var out *outboxTail
	err := b.submit(context.Background(), func(*badger.Txn) ([]write, error) {
		if tail := b.tails[terminal]; tail != nil {
			out = &outboxTail{first: tail.first, expires: append([]int64(nil), tail.expires...)}
		}
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// storedSeqs lists, from the store itself, terminal's entry sequence numbers and those of its
// expiry index keys; both must always be the same set.
func storedSeqs(t *testing.T, b *Badger, terminal uint32) (entries, index []uint64) {
	t.Helper()
	err := b.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if tm, seq, ok := parseEntryKey(k); ok && tm == terminal {
				entries = append(entries, seq)
			}
			if _, tm, seq, ok := parseExpiryKey(k); ok && tm == terminal {
				index = append(index, seq)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return entries, index
}

// wantStored checks that exactly the entries first..last (none when last < first) and their
// index keys are stored.
func wantStored(t *testing.T, b *Badger, terminal uint32, first, last uint64) {
	t.Helper()
	entries, index := storedSeqs(t, b, terminal)
	var want []uint64
	for s := first; s <= last; s++ {
		want = append(want, s)
	}
	if fmt.Sprint(entries) != fmt.Sprint(want) || fmt.Sprint(index) != fmt.Sprint(want) {
		t.Fatalf("stored entries %v, index keys %v; want %v for both", entries, index, want)
	}
}

func appendN(t *testing.T, b *Badger, terminal uint32, n int, ttl time.Duration) {
	t.Helper()
	for i := range n {
		if _, err := b.Append(context.Background(), terminal, []byte{byte(i + 1)}, ttl); err != nil {
			t.Fatal(err)
		}
	}
}

func ack(t *testing.T, b *Badger, terminal uint32, upTo uint64, want int) {
	t.Helper()
	n, err := b.Ack(context.Background(), terminal, upTo)
	if err != nil {
		t.Fatal(err)
	}
	if n != want {
		t.Fatalf("Ack(%d, %d) deleted %d, want %d", terminal, upTo, n, want)
	}
}

// A new terminal's outbox is known from its first append: acks delete exactly the
// acknowledged entries and their index keys, from memory.
func TestTailAckFromMemory(t *testing.T) {
	b := openTails(t, "")
	const term = 262000001
	appendN(t, b, term, 10, time.Hour)
	if tail := tailOf(t, b, term); tail == nil || tail.first != 1 || len(tail.expires) != 10 {
		t.Fatalf("tail after 10 appends: %+v, want first 1 and 10 expiries", tail)
	}
	ack(t, b, term, 4, 4)
	wantStored(t, b, term, 5, 10)
	ack(t, b, term, 4, 0) // repeated
	ack(t, b, term, 3, 0) // behind
	ack(t, b, term, 10, 6)
	wantStored(t, b, term, 1, 0)
	ack(t, b, term, 100, 0) // beyond the last sequence number
	appendN(t, b, term, 2, time.Hour)
	ack(t, b, term, 11, 1)
	wantStored(t, b, term, 12, 12)
	if tail := tailOf(t, b, term); tail == nil || tail.first != 12 || len(tail.expires) != 1 {
		t.Fatalf("tail: %+v, want first 12 and one expiry", tail)
	}
}

// A terminal more than maxTailEntries behind is served by scans; once an ack leaves few
// entries, the scan learns the tail again. At the limit the tail is still kept.
func TestTailLimit(t *testing.T) {
	b := openTails(t, "")
	const term = 262000002
	appendN(t, b, term, maxTailEntries, time.Hour)
	if tail := tailOf(t, b, term); tail == nil || len(tail.expires) != maxTailEntries {
		t.Fatalf("tail at the limit: %+v, want %d expiries", tail, maxTailEntries)
	}
	appendN(t, b, term, 10, time.Hour) // past the limit
	if tail := tailOf(t, b, term); tail != nil {
		t.Fatalf("tail past the limit: first %d, %d expiries; want none", tail.first, len(tail.expires))
	}
	last := uint64(maxTailEntries + 10)
	ack(t, b, term, 5, 5) // scan; too many left to learn
	if tail := tailOf(t, b, term); tail != nil {
		t.Fatalf("tail with %d entries left: want none", last-5)
	}
	wantStored(t, b, term, 6, last)
	ack(t, b, term, last-3, int(last-3-5)) // scan; learns the 3 left
	if tail := tailOf(t, b, term); tail == nil || tail.first != last-2 || len(tail.expires) != 3 {
		t.Fatalf("tail after the scan: %+v, want first %d and 3 expiries", tail, last-2)
	}
	wantStored(t, b, term, last-2, last)
	ack(t, b, term, last, 3) // from memory
	wantStored(t, b, term, 1, 0)
}

// After a restart nothing is known: the first ack scans and learns, the next ones use memory.
// Pending still returns what was stored.
func TestTailAfterRestart(t *testing.T) {
	dir := t.TempDir()
	const term = 262000003
	b := openTails(t, dir)
	appendN(t, b, term, 5, time.Hour)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = openTails(t, dir)
	appendN(t, b, term, 3, time.Hour)
	if tail := tailOf(t, b, term); tail != nil {
		t.Fatal("tail known after a restart before any ack")
	}
	ack(t, b, term, 6, 6)
	if tail := tailOf(t, b, term); tail == nil || tail.first != 7 || len(tail.expires) != 2 {
		t.Fatalf("tail after the first ack: %+v, want first 7 and 2 expiries", tail)
	}
	appendN(t, b, term, 1, time.Hour)
	ack(t, b, term, 8, 2)
	wantStored(t, b, term, 9, 9)
	ack(t, b, term, 9, 1)
	wantStored(t, b, term, 1, 0)
}

// Expire and DeleteAll forget the tails they touch; acks afterwards still delete exactly
// what remains.
func TestTailExpireAndDeleteAll(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	b, err := OpenBadger(BadgerConfig{InMemory: true, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	const term = 262000004
	appendN(t, b, term, 3, time.Minute)
	appendN(t, b, term, 3, time.Hour)
	expired, err := b.Expire(context.Background(), now.Add(2*time.Minute))
	if err != nil || len(expired) != 3 {
		t.Fatalf("Expire: %d entries, %v; want 3", len(expired), err)
	}
	if tail := tailOf(t, b, term); tail != nil {
		t.Fatal("tail kept after Expire removed entries")
	}
	wantStored(t, b, term, 4, 6)
	ack(t, b, term, 4, 1) // scan, learns 5..6
	ack(t, b, term, 5, 1) // memory
	wantStored(t, b, term, 6, 6)
	appendN(t, b, term, 2, time.Hour)
	if n, err := b.DeleteAll(context.Background(), term); err != nil || n != 3 {
		t.Fatalf("DeleteAll: %d, %v; want 3", n, err)
	}
	if tail := tailOf(t, b, term); tail != nil {
		t.Fatal("tail kept after DeleteAll")
	}
	appendN(t, b, term, 1, time.Hour)
	ack(t, b, term, 9, 1)
	wantStored(t, b, term, 1, 0)
}

// An ack that scans must not learn a tail from a snapshot that misses an append committed in
// the same batch: that entry would never be deleted.
func TestTailNotLearntAcrossOwnBatch(t *testing.T) {
	dir := t.TempDir()
	const term = 262000005
	b := openTails(t, dir)
	appendN(t, b, term, 2, time.Hour)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = openTails(t, dir) // nothing known
	release := holdCommitter(t, b)
	appended := make(chan error, 1)
	go func() {
		_, err := b.Append(context.Background(), term, []byte{9}, time.Hour)
		appended <- err
	}()
	waitQueued(t, b, 1)
	acked := make(chan error, 1)
	go func() {
		_, err := b.Ack(context.Background(), term, 2)
		acked <- err
	}()
	waitQueued(t, b, 2)
	release()
	if err := <-appended; err != nil {
		t.Fatal(err)
	}
	if err := <-acked; err != nil {
		t.Fatal(err)
	}
	if tail := tailOf(t, b, term); tail != nil {
		t.Fatalf("tail learnt in the batch of an append: first %d, %d expiries", tail.first, len(tail.expires))
	}
	wantStored(t, b, term, 3, 3)
	ack(t, b, term, 3, 1)
	wantStored(t, b, term, 1, 0)
}

func openTails(t *testing.T, dir string) *Badger {
	t.Helper()
	b, err := OpenBadger(BadgerConfig{Dir: dir, InMemory: dir == ""})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}
