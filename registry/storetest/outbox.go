package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rewind-broker/rewind/registry"
)

// OutboxStore is an Outbox that can be closed; the suite closes and reopens
// it to check durability.
type OutboxStore interface {
	registry.Outbox
	Close() error
}

// OutboxOpener opens one storage location with the given clock, which the
// store must use for Stored, Expires and for what Pending and Depth treat as
// expired. Every call opens the same location, so a store opened after the
// previous one was closed sees everything that one wrote.
type OutboxOpener func(t *testing.T, now func() time.Time) OutboxStore

// RunOutbox runs the Outbox contract. fresh returns an OutboxOpener for a
// new, empty location; the suite closes every store it opens (a second
// Close must return nil). Closing must drain: a call after Close returns
// registry.ErrClosed, and any Append that succeeded is there after reopen.
func RunOutbox(t *testing.T, fresh func(t *testing.T) OutboxOpener) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, o *outboxFixture)
	}{
		{"AppendPending", testAppendPending},
		{"Validation", testOutboxValidation},
		{"Ack", testAck},
		{"DeleteAll", testDeleteAll},
		{"Depth", testDepth},
		{"Expiry", testExpiry},
		{"SubSecondTTL", testSubSecondTTL},
		{"NoReuseAfterRestart", testNoReuseAfterRestart},
		{"ConcurrentAppends", testConcurrentAppends},
		{"CloseDrains", testCloseDrains},
		{"ContextCancelled", testOutboxContextCancelled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := &outboxFixture{open: fresh(t), clock: &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 678901234, time.UTC)}}
			o.reopen(t)
			t.Cleanup(func() {
				if err := o.s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, o)
		})
	}
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type outboxFixture struct {
	open  OutboxOpener
	clock *clock
	s     OutboxStore
}

// reopen closes the current store, if any, and opens the location again.
func (o *outboxFixture) reopen(t *testing.T) {
	t.Helper()
	if o.s != nil {
		if err := o.s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	o.s = o.open(t, o.clock.Now)
}

func (o *outboxFixture) append(t *testing.T, terminal uint32, datagram string, ttl time.Duration) registry.Entry {
	t.Helper()
	e, err := o.s.Append(context.Background(), terminal, []byte(datagram), ttl)
	if err != nil {
		t.Fatalf("Append(%d, %q): %v", terminal, datagram, err)
	}
	return e
}

func (o *outboxFixture) pending(t *testing.T, terminal uint32, after uint64, limit int) []registry.Entry {
	t.Helper()
	es, err := o.s.Pending(context.Background(), terminal, after, limit)
	if err != nil {
		t.Fatalf("Pending(%d, %d, %d): %v", terminal, after, limit, err)
	}
	return es
}

func (o *outboxFixture) ack(t *testing.T, terminal uint32, upTo uint64) int {
	t.Helper()
	n, err := o.s.Ack(context.Background(), terminal, upTo)
	if err != nil {
		t.Fatalf("Ack(%d, %d): %v", terminal, upTo, err)
	}
	return n
}

func (o *outboxFixture) depth(t *testing.T, terminal uint32) (int, time.Time) {
	t.Helper()
	n, oldest, err := o.s.Depth(context.Background(), terminal)
	if err != nil {
		t.Fatalf("Depth(%d): %v", terminal, err)
	}
	return n, oldest
}

func seqs(es []registry.Entry) []uint64 {
	out := make([]uint64, len(es))
	for i, e := range es {
		out[i] = e.Seq
	}
	return out
}

func wantSeqs(t *testing.T, what string, got []registry.Entry, want ...uint64) {
	t.Helper()
	if g := seqs(got); !slices.Equal(g, want) {
		t.Errorf("%s: seqs %v, want %v", what, g, want)
	}
}

func sameEntry(t *testing.T, what string, got, want registry.Entry) {
	t.Helper()
	if got.Terminal != want.Terminal || got.Seq != want.Seq || !bytes.Equal(got.Datagram, want.Datagram) ||
		!got.Stored.Equal(want.Stored) || !got.Expires.Equal(want.Expires) {
		t.Errorf("%s: entry %+v, want %+v", what, got, want)
	}
}

func testAppendPending(t *testing.T, o *outboxFixture) {
	ctx := context.Background()
	now := o.clock.Now()
	buf := []byte("first")
	e1, err := o.s.Append(ctx, 262000101, buf, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	copy(buf, "XXXXX") // the store must have copied it
	want1 := registry.Entry{Terminal: 262000101, Seq: 1, Datagram: []byte("first"), Stored: now, Expires: now.Add(time.Hour)}
	sameEntry(t, "Append result", e1, want1)
	e1.Datagram[0] = 'Z' // the returned entry is the caller's too
	o.clock.Advance(time.Second)
	e2 := o.append(t, 262000101, "second", time.Hour)
	e3 := o.append(t, 262000101, "third", time.Minute)
	f1 := o.append(t, 262000102, "other terminal", time.Hour)
	if e2.Seq != 2 || e3.Seq != 3 || f1.Seq != 1 {
		t.Errorf("seqs: %d %d, other terminal %d; want 2 3, 1", e2.Seq, e3.Seq, f1.Seq)
	}

	all := o.pending(t, 262000101, 0, 10)
	wantSeqs(t, "Pending(0, 10)", all, 1, 2, 3)
	for i, want := range []registry.Entry{want1, e2, e3} {
		if i < len(all) {
			sameEntry(t, fmt.Sprintf("Pending[%d]", i), all[i], want)
		}
	}
	if len(all) > 0 {
		all[0].Datagram[0] = 'Y' // a returned datagram is the caller's
	}
	sameEntry(t, "Pending after mutating a result", o.pending(t, 262000101, 0, 1)[0], want1)
	wantSeqs(t, "Pending(1, 10)", o.pending(t, 262000101, 1, 10), 2, 3)
	wantSeqs(t, "Pending(0, 2)", o.pending(t, 262000101, 0, 2), 1, 2)
	wantSeqs(t, "Pending(2, 2)", o.pending(t, 262000101, 2, 2), 3)
	wantSeqs(t, "Pending(3, 10)", o.pending(t, 262000101, 3, 10))
	wantSeqs(t, "Pending(max, 10)", o.pending(t, 262000101, ^uint64(0), 10))
	wantSeqs(t, "Pending(other terminal)", o.pending(t, 262000102, 0, 10), 1)
	wantSeqs(t, "Pending(unknown terminal)", o.pending(t, 262000103, 0, 10))

	big := bytes.Repeat([]byte{0xA5}, registry.MaxDatagramBytes)
	eb, err := o.s.Append(ctx, 262000101, big, time.Hour)
	if err != nil {
		t.Fatalf("Append(MaxDatagramBytes): %v", err)
	}
	if got := o.pending(t, 262000101, 3, 1); len(got) != 1 || !bytes.Equal(got[0].Datagram, big) || got[0].Seq != eb.Seq {
		t.Errorf("largest datagram not read back intact")
	}
}

func testOutboxValidation(t *testing.T, o *outboxFixture) {
	ctx := context.Background()
	for _, tc := range []struct {
		what     string
		terminal uint32
		datagram []byte
		ttl      time.Duration
	}{
		{"terminal 0", 0, []byte("x"), time.Hour},
		{"empty datagram", 1, nil, time.Hour},
		{"datagram one byte too long", 1, make([]byte, registry.MaxDatagramBytes+1), time.Hour},
		{"ttl 0", 1, []byte("x"), 0},
		{"negative ttl", 1, []byte("x"), -time.Second},
	} {
		if _, err := o.s.Append(ctx, tc.terminal, tc.datagram, tc.ttl); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("Append with %s: err = %v, want ErrInvalid", tc.what, err)
		}
	}
	for _, limit := range []int{0, -1, registry.MaxPageSize + 1} {
		if _, err := o.s.Pending(ctx, 1, 0, limit); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("Pending(limit %d): err = %v, want ErrInvalid", limit, err)
		}
	}
	if _, err := o.s.Pending(ctx, 1, 0, registry.MaxPageSize); err != nil {
		t.Errorf("Pending(limit MaxPageSize): %v", err)
	}
	if got := o.append(t, 1, "after refusals", time.Hour); got.Seq != 1 {
		t.Errorf("first accepted Append: seq %d, want 1 (refused appends use no number)", got.Seq)
	}
}

func testAck(t *testing.T, o *outboxFixture) {
	for i := range 5 {
		o.append(t, 7, fmt.Sprint("m", i), time.Hour)
	}
	o.append(t, 8, "other", time.Hour)
	if n := o.ack(t, 7, 0); n != 0 {
		t.Errorf("Ack(0) deleted %d, want 0", n)
	}
	if n := o.ack(t, 7, 2); n != 2 {
		t.Errorf("Ack(2) deleted %d, want 2", n)
	}
	wantSeqs(t, "Pending after Ack(2)", o.pending(t, 7, 0, 10), 3, 4, 5)
	if n := o.ack(t, 7, 2); n != 0 {
		t.Errorf("repeated Ack(2) deleted %d, want 0", n)
	}
	if n := o.ack(t, 7, 4); n != 2 {
		t.Errorf("Ack(4) deleted %d, want 2", n)
	}
	if n := o.ack(t, 7, 1000); n != 1 {
		t.Errorf("Ack(1000) deleted %d, want 1", n)
	}
	wantSeqs(t, "Pending after Ack(1000)", o.pending(t, 7, 0, 10))
	wantSeqs(t, "other terminal after acks", o.pending(t, 8, 0, 10), 1)
	if e := o.append(t, 7, "after ack", time.Hour); e.Seq != 6 {
		t.Errorf("Append after acking all: seq %d, want 6", e.Seq)
	}
	if n := o.ack(t, 9, 10); n != 0 {
		t.Errorf("Ack on unknown terminal deleted %d", n)
	}

	// More than any implementation's internal chunk.
	const many = 1500
	for i := range many {
		o.append(t, 10, fmt.Sprint(i), time.Hour)
	}
	if n := o.ack(t, 10, many-1); n != many-1 {
		t.Errorf("Ack(%d) deleted %d", many-1, n)
	}
	wantSeqs(t, "Pending after large ack", o.pending(t, 10, 0, 10), many)
}

func testDeleteAll(t *testing.T, o *outboxFixture) {
	ctx := context.Background()
	for i := range 3 {
		o.append(t, 7, fmt.Sprint("m", i), time.Hour)
	}
	o.append(t, 8, "other", time.Hour)
	n, err := o.s.DeleteAll(ctx, 7)
	if err != nil || n != 3 {
		t.Errorf("DeleteAll = %d, %v; want 3", n, err)
	}
	wantSeqs(t, "Pending after DeleteAll", o.pending(t, 7, 0, 10))
	wantSeqs(t, "other terminal after DeleteAll", o.pending(t, 8, 0, 10), 1)
	if n, err := o.s.DeleteAll(ctx, 7); err != nil || n != 0 {
		t.Errorf("second DeleteAll = %d, %v; want 0", n, err)
	}
	if e := o.append(t, 7, "after delete", time.Hour); e.Seq != 4 {
		t.Errorf("Append after DeleteAll: seq %d, want 4", e.Seq)
	}
}

func testDepth(t *testing.T, o *outboxFixture) {
	if n, oldest := o.depth(t, 7); n != 0 || !oldest.IsZero() {
		t.Errorf("Depth of empty outbox = %d, %v; want 0, zero", n, oldest)
	}
	first := o.append(t, 7, "a", 10*time.Second)
	o.clock.Advance(5 * time.Second)
	second := o.append(t, 7, "b", time.Hour)
	o.append(t, 7, "c", time.Hour)
	o.append(t, 8, "other", time.Hour)
	if n, oldest := o.depth(t, 7); n != 3 || !oldest.Equal(first.Stored) {
		t.Errorf("Depth = %d, %v; want 3, %v", n, oldest, first.Stored)
	}
	o.clock.Advance(5 * time.Second) // first expires now
	if n, oldest := o.depth(t, 7); n != 2 || !oldest.Equal(second.Stored) {
		t.Errorf("Depth after first expired = %d, %v; want 2, %v", n, oldest, second.Stored)
	}
	o.ack(t, 7, 3)
	if n, _ := o.depth(t, 7); n != 0 {
		t.Errorf("Depth after ack = %d, want 0", n)
	}
}

func testExpiry(t *testing.T, o *outboxFixture) {
	ctx := context.Background()
	start := o.clock.Now()
	a := o.append(t, 7, "a 30s", 30*time.Second)
	b := o.append(t, 7, "b 10s", 10*time.Second)
	c := o.append(t, 8, "c 20s", 20*time.Second)
	d := o.append(t, 7, "d 1h", time.Hour)

	expire := func(at time.Time) []registry.Entry {
		t.Helper()
		es, err := o.s.Expire(ctx, at)
		if err != nil {
			t.Fatalf("Expire(%v): %v", at, err)
		}
		return es
	}
	if got := expire(start.Add(10*time.Second - 1)); len(got) != 0 {
		t.Errorf("Expire 1ns before the first expiry removed %d entries", len(got))
	}

	o.clock.Advance(25 * time.Second)
	// Pending and Depth hide expired entries even before Expire runs.
	wantSeqs(t, "Pending(7) at +25s", o.pending(t, 7, 0, 10), a.Seq, d.Seq)
	wantSeqs(t, "Pending(8) at +25s", o.pending(t, 8, 0, 10))

	got := expire(start.Add(20 * time.Second)) // exactly c's Expires: expired
	if len(got) != 2 {
		t.Fatalf("Expire(+20s) returned %d entries, want 2", len(got))
	}
	sameEntry(t, "first expired", got[0], b)
	sameEntry(t, "second expired", got[1], c)
	if again := expire(start.Add(20 * time.Second)); len(again) != 0 {
		t.Errorf("second Expire returned %d entries, want 0", len(again))
	}
	got = expire(o.clock.Now().Add(10 * time.Minute))
	if len(got) != 1 {
		t.Fatalf("Expire(+35m) returned %d entries, want 1", len(got))
	}
	sameEntry(t, "third expired", got[0], a)

	// An acknowledged entry is not reported as expired later.
	o.ack(t, 7, d.Seq)
	if got := expire(start.Add(2 * time.Hour)); len(got) != 0 {
		t.Errorf("Expire after ack returned %v", seqs(got))
	}
	// After restart, expiry still works and numbering continues.
	e := o.append(t, 7, "e", time.Minute)
	o.reopen(t)
	if got := expire(e.Expires); len(got) != 1 || got[0].Seq != e.Seq {
		t.Errorf("Expire after reopen = %v, want [%d]", seqs(got), e.Seq)
	}
	if next := o.append(t, 7, "f", time.Minute); next.Seq != e.Seq+1 {
		t.Errorf("seq after expiry and reopen = %d, want %d", next.Seq, e.Seq+1)
	}
}

// testSubSecondTTL checks that expiry is exact to the nanosecond, not
// rounded to whole seconds.
func testSubSecondTTL(t *testing.T, o *outboxFixture) {
	e := o.append(t, 7, "short", 300*time.Millisecond)
	o.clock.Advance(300*time.Millisecond - time.Nanosecond)
	wantSeqs(t, "Pending 1ns before expiry", o.pending(t, 7, 0, 10), e.Seq)
	if n, _ := o.depth(t, 7); n != 1 {
		t.Errorf("Depth 1ns before expiry = %d, want 1", n)
	}
	o.clock.Advance(time.Nanosecond)
	wantSeqs(t, "Pending at expiry", o.pending(t, 7, 0, 10))
}

func testNoReuseAfterRestart(t *testing.T, o *outboxFixture) {
	ctx := context.Background()
	var kept registry.Entry
	for i := range 3 {
		kept = o.append(t, 7, fmt.Sprint("m", i), time.Hour)
	}
	for i := range 2 {
		o.append(t, 8, fmt.Sprint("m", i), time.Hour)
	}
	o.ack(t, 7, 2)
	if _, err := o.s.DeleteAll(ctx, 8); err != nil {
		t.Fatal(err)
	}
	o.reopen(t)
	got := o.pending(t, 7, 0, 10)
	wantSeqs(t, "Pending(7) after reopen", got, 3)
	if len(got) == 1 {
		sameEntry(t, "entry after reopen", got[0], kept)
	}
	if e := o.append(t, 7, "next", time.Hour); e.Seq != 4 {
		t.Errorf("Append(7) after reopen: seq %d, want 4", e.Seq)
	}
	if e := o.append(t, 8, "next", time.Hour); e.Seq != 3 {
		t.Errorf("Append(8) after DeleteAll and reopen: seq %d, want 3", e.Seq)
	}
	if e := o.append(t, 9, "new", time.Hour); e.Seq != 1 {
		t.Errorf("Append(new terminal) after reopen: seq %d, want 1", e.Seq)
	}
	o.reopen(t)
	if e := o.append(t, 7, "again", time.Hour); e.Seq != 5 {
		t.Errorf("Append(7) after second reopen: seq %d, want 5", e.Seq)
	}
}

// testConcurrentAppends has 64 goroutines append 200 datagrams each, four
// goroutines per terminal, then checks that every append is stored once,
// sequence numbers are distinct per terminal and follow each goroutine's
// own order, and that all of it is there after reopen.
func testConcurrentAppends(t *testing.T, o *outboxFixture) {
	const (
		goroutines = 64
		perG       = 200
		terminals  = 16
	)
	results := make([][]registry.Entry, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			terminal := uint32(262000100 + g%terminals)
			for i := range perG {
				e, err := o.s.Append(context.Background(), terminal, fmt.Appendf(nil, "g%d-%d", g, i), time.Hour)
				if err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				results[g] = append(results[g], e)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	want := make(map[uint32]map[uint64]string) // terminal → seq → datagram
	for g, es := range results {
		terminal := uint32(262000100 + g%terminals)
		if want[terminal] == nil {
			want[terminal] = make(map[uint64]string)
		}
		for i, e := range es {
			if i > 0 && e.Seq <= es[i-1].Seq {
				t.Fatalf("goroutine %d: append %d got seq %d after %d", g, i, e.Seq, es[i-1].Seq)
			}
			if e.Terminal != terminal || e.Seq == 0 {
				t.Fatalf("goroutine %d: entry %+v", g, e)
			}
			if prev, dup := want[terminal][e.Seq]; dup {
				t.Fatalf("terminal %d: seq %d given to %q and %q", terminal, e.Seq, prev, e.Datagram)
			}
			want[terminal][e.Seq] = string(e.Datagram)
		}
	}
	check := func(when string) {
		t.Helper()
		for terminal, bySeq := range want {
			var got []registry.Entry
			var after uint64
			for {
				page := o.pending(t, terminal, after, registry.MaxPageSize)
				got = append(got, page...)
				if len(page) < registry.MaxPageSize {
					break
				}
				after = page[len(page)-1].Seq
			}
			if len(got) != len(bySeq) {
				t.Fatalf("%s: terminal %d has %d entries, want %d", when, terminal, len(got), len(bySeq))
			}
			for i, e := range got {
				if i > 0 && e.Seq <= got[i-1].Seq {
					t.Fatalf("%s: terminal %d: Pending out of order at %d", when, terminal, i)
				}
				if bySeq[e.Seq] != string(e.Datagram) {
					t.Fatalf("%s: terminal %d seq %d = %q, want %q", when, terminal, e.Seq, e.Datagram, bySeq[e.Seq])
				}
			}
		}
	}
	check("before reopen")
	o.reopen(t)
	check("after reopen")
}

// testCloseDrains closes the store while appends are in flight: each
// Append either succeeds, and its entry is there after reopen, or fails
// with ErrClosed.
func testCloseDrains(t *testing.T, o *outboxFixture) {
	const goroutines = 16
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		stored  []registry.Entry
		started = make(chan struct{}, goroutines)
	)
	for g := range goroutines {
		wg.Go(func() {
			for i := 0; ; i++ {
				e, err := o.s.Append(context.Background(), uint32(1+g), fmt.Appendf(nil, "%d", i), time.Hour)
				if errors.Is(err, registry.ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				mu.Lock()
				stored = append(stored, e)
				mu.Unlock()
				if i == 0 {
					started <- struct{}{}
				}
			}
		})
	}
	for range goroutines {
		<-started
	}
	if err := o.s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	if _, err := o.s.Append(context.Background(), 1, []byte("late"), time.Hour); !errors.Is(err, registry.ErrClosed) {
		t.Errorf("Append after Close: err = %v, want ErrClosed", err)
	}
	if _, err := o.s.Pending(context.Background(), 1, 0, 1); !errors.Is(err, registry.ErrClosed) {
		t.Errorf("Pending after Close: err = %v, want ErrClosed", err)
	}
	o.s = o.open(t, o.clock.Now)
	last := make(map[uint32]uint64)
	for _, e := range stored {
		last[e.Terminal] = max(last[e.Terminal], e.Seq)
	}
	for terminal, seq := range last {
		n, _ := o.depth(t, terminal)
		if uint64(n) != seq {
			t.Errorf("terminal %d: %d entries after reopen, want %d", terminal, n, seq)
		}
	}
}

func testOutboxContextCancelled(t *testing.T, o *outboxFixture) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := o.s.Append(ctx, 7, []byte("x"), time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("Append(cancelled ctx): err = %v, want context.Canceled", err)
	}
	if n, _ := o.depth(t, 7); n != 0 {
		t.Errorf("Append with a cancelled ctx stored an entry")
	}
	if e := o.append(t, 7, "x", time.Hour); e.Seq != 1 {
		t.Errorf("first stored append: seq %d, want 1", e.Seq)
	}
}
