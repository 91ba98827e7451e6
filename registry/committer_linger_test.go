package registry

import (
	"context"
	"testing"
	"time"
)

// TestLingerStateDecides checks when a batch waits for more jobs: only when
// jobs have been arriving at least lingerJobs (8) per MaxLinger and the batch
// holds at least two of them.
func TestLingerStateDecides(t *testing.T) {
	if lingerJobs != 8 {
		t.Fatalf("the cases below assume lingerJobs = 8, not %d", lingerJobs)
	}
	const max = 400 * time.Microsecond
	t0 := time.Unix(1000, 0)
	// steady feeds the state batches of n jobs every cycle, long enough for
	// the moving average to settle, and returns the last decision.
	steady := func(l *lingerState, cycle time.Duration, n int) time.Duration {
		now := t0
		var d time.Duration
		for range 100 {
			now = now.Add(cycle)
			d = l.wait(now, n)
			l.taken(now)
		}
		return d
	}
	for _, c := range []struct {
		name  string
		cycle time.Duration
		n     int
		want  time.Duration
	}{
		{"fast", 100 * time.Microsecond, 10, max},           // a job every 10 µs
		{"at the limit", max / 2, 4, max},                   // gap = max/8 exactly
		{"past the limit", max/2 + 4*time.Nanosecond, 4, 0}, // gap 1 ns above
		{"two per max", 2 * max, 4, 0},                      // too few to wait for
		{"slow", 10 * time.Millisecond, 4, 0},
		{"one at a time, fast", time.Microsecond, 1, 0}, // a lone sequential caller
	} {
		l := &lingerState{max: max}
		if got := steady(l, c.cycle, c.n); got != c.want {
			t.Errorf("%s (batches of %d every %v): wait %v, want %v (gap %v)", c.name, c.n, c.cycle, got, c.want, l.gap)
		}
	}
	// Batches alternating between 2 and 30 jobs every 300 µs: 32 jobs per
	// 600 µs, a gap of 18.75 µs, well within max/8 (the mean of the batches'
	// own gaps, 80 µs, would not be).
	l := &lingerState{max: max}
	now := t0
	var d time.Duration
	for i := range 100 {
		now = now.Add(300 * time.Microsecond)
		d = l.wait(now, 2+28*(i%2))
		l.taken(now)
	}
	if d != max || l.gap > 20*time.Microsecond {
		t.Errorf("alternating batches of 2 and 30: wait %v, gap %v; want %v, ≈ 18.75 µs", d, l.gap, max)
	}
	l = &lingerState{max: max}
	if d := l.wait(t0, 100); d != 0 {
		t.Errorf("first batch, no history: wait %v, want 0", d)
	}
	l = &lingerState{} // MaxLinger negative: never
	if d := steady(l, time.Microsecond, 100); d != 0 {
		t.Errorf("linger disabled: wait %v", d)
	}
	// After a fast phase the estimate follows a slowdown within a few batches.
	l = &lingerState{max: max}
	steady(l, 100*time.Microsecond, 10)
	now = t0.Add(time.Hour)
	for range 3 {
		now = now.Add(50 * time.Millisecond)
		l.wait(now, 2)
		l.taken(now)
	}
	if d := l.wait(now.Add(50*time.Millisecond), 2); d != 0 {
		t.Errorf("after a slowdown: wait %v, gap %v", d, l.gap)
	}
}

// lingerBadger is a Badger with a queue and a linger state and no
// committer: lingerFor is exercised alone.
func lingerBadger(gap time.Duration) *Badger {
	b := &Badger{queue: make(chan *job, 4*lingerTarget), lingerTimer: time.NewTimer(time.Hour)}
	b.lingerTimer.Stop()
	b.linger = lingerState{max: time.Hour, gap: gap}
	return b
}

func queueJobs(b *Badger, n int) {
	for range n {
		b.queue <- &job{done: make(chan error, 1)}
	}
}

func TestLingerForStopsAtTarget(t *testing.T) {
	b := lingerBadger(time.Hour)
	queueJobs(b, lingerTarget+5) // one batch's worth and more: no waiting at all
	start := time.Now()
	got := b.lingerFor([]*job{{}}, time.Hour)
	if len(got) != lingerTarget {
		t.Errorf("batch of %d, want lingerTarget (%d)", len(got), lingerTarget)
	}
	if left := len(b.queue); left != 6 {
		t.Errorf("%d jobs left queued, want 6", left)
	}
	if e := time.Since(start); e > time.Second {
		t.Errorf("took %v with enough jobs queued", e)
	}
	got = b.lingerFor(make([]*job, lingerTarget), time.Hour) // at the target already
	if len(got) != lingerTarget || len(b.queue) != 6 {
		t.Errorf("full batch: %d jobs, %d queued; want it unchanged", len(got), len(b.queue))
	}
}

// TestLingerForStopsWhenJobsStop checks that a batch waits no longer than
// twice the expected gap once jobs stop coming, however long MaxLinger is.
func TestLingerForStopsWhenJobsStop(t *testing.T) {
	b := lingerBadger(5 * time.Millisecond)
	queueJobs(b, 3)
	start := time.Now()
	got := b.lingerFor(nil, time.Hour)
	e := time.Since(start)
	if len(got) != 3 {
		t.Errorf("batch of %d, want the 3 queued", len(got))
	}
	if e < 10*time.Millisecond || e > 5*time.Second {
		t.Errorf("waited %v after the last job; want 2 × 5 ms (and far less than an hour)", e)
	}
}

// TestLingerForDeadline checks that jobs arriving steadily are gathered
// until the deadline and no longer.
func TestLingerForDeadline(t *testing.T) {
	b := lingerBadger(time.Hour) // each step bounded by the deadline alone
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				select {
				case b.queue <- &job{}:
				default:
				}
			}
		}
	}()
	const d = 30 * time.Millisecond
	start := time.Now()
	got := b.lingerFor(nil, d)
	e := time.Since(start)
	if e < d || e > d+5*time.Second {
		t.Errorf("waited %v, want %v", e, d)
	}
	if len(got) < 2 || len(got) >= lingerTarget {
		t.Errorf("gathered %d jobs in %v at one per ms", len(got), e)
	}
}

func TestLingerForClosedQueue(t *testing.T) {
	b := lingerBadger(time.Hour)
	queueJobs(b, 2)
	close(b.queue)
	start := time.Now()
	if got := b.lingerFor(nil, time.Hour); len(got) != 2 {
		t.Errorf("batch of %d, want the 2 queued before close", len(got))
	}
	if e := time.Since(start); e > time.Second {
		t.Errorf("closed queue: waited %v", e)
	}
}

// TestSequentialAppendsDoNotLinger: a caller that waits for each append in
// turn must never be made to wait for jobs that cannot come, even with a
// very long MaxLinger.
func TestSequentialAppendsDoNotLinger(t *testing.T) {
	b, err := OpenBadger(BadgerConfig{Dir: t.TempDir(), MaxLinger: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	start := time.Now()
	for i := range 50 {
		if _, err := b.Append(context.Background(), 7, []byte{byte(i)}, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if n := b.lingers.Load(); n != 0 {
		t.Errorf("%d batches lingered", n)
	}
	if e := time.Since(start); e > 30*time.Second {
		t.Errorf("50 sequential appends took %v", e)
	}
}

// TestConcurrentAppendsLinger: many callers appending in a loop make the
// committer linger, and every append is stored once, in order, whatever the
// batching.
func TestConcurrentAppendsLinger(t *testing.T) {
	b, err := OpenBadger(BadgerConfig{Dir: t.TempDir(), MaxLinger: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const callers, each = 16, 40
	done := make(chan error, callers)
	for c := range callers {
		go func() {
			for i := range each {
				if _, err := b.Append(context.Background(), uint32(100+c), []byte{byte(i)}, time.Hour); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range callers {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	for c := range callers {
		es, err := b.Pending(context.Background(), uint32(100+c), 0, MaxPageSize)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) != each {
			t.Fatalf("terminal %d: %d entries, want %d", 100+c, len(es), each)
		}
		for i, e := range es {
			if e.Seq != uint64(i+1) || e.Datagram[0] != byte(i) {
				t.Errorf("terminal %d entry %d: seq %d datagram %d", 100+c, i, e.Seq, e.Datagram[0])
			}
		}
	}
	t.Logf("%d appends: %d commits, %d lingered", callers*each, b.commits.Load(), b.lingers.Load())
	if b.lingers.Load() == 0 {
		t.Errorf("16 concurrent callers: no batch lingered")
	}
}

// doneCounter is a context that counts the calls to Done.
type doneCounter struct {
	context.Context
	calls int
}

func (c *doneCounter) Done() <-chan struct{} { c.calls++; return c.Context.Done() }

// TestSubmitConsultsDoneOnlyWhenFull: a job that finds room in the queue
// never calls ctx.Done (callers may start timers lazily there); one that
// finds the queue full waits and gives up with ctx's error when ctx ends.
func TestSubmitConsultsDoneOnlyWhenFull(t *testing.T) {
	b, err := OpenBadger(BadgerConfig{Dir: t.TempDir(), QueueSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := &doneCounter{Context: context.Background()}
	if _, err := b.Append(ctx, 7, []byte{1}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if ctx.calls != 0 {
		t.Errorf("room in the queue: Done called %d times", ctx.calls)
	}
	release := holdCommitter(t, b)
	defer func() { release() }()
	queued := make(chan error, 1)
	go func() { _, err := b.Append(context.Background(), 7, []byte{2}, time.Hour); queued <- err }()
	waitQueued(t, b, 1) // the queue (capacity 1) is full now
	tctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	full := &doneCounter{Context: tctx}
	start := time.Now()
	if _, err := b.Append(full, 7, []byte{3}, time.Hour); err != context.DeadlineExceeded {
		t.Errorf("full queue: Append = %v, want context.DeadlineExceeded", err)
	}
	if e := time.Since(start); e < 20*time.Millisecond || e > 5*time.Second {
		t.Errorf("full queue: gave up after %v, want 20 ms", e)
	}
	if full.calls == 0 {
		t.Error("full queue: Done never consulted")
	}
	release()
	if err := <-queued; err != nil {
		t.Errorf("queued append: %v", err)
	}
	release = func() {}
	es, err := b.Pending(context.Background(), 7, 0, MaxPageSize)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[0].Datagram[0] != 1 || es[1].Datagram[0] != 2 {
		t.Errorf("stored %v, want datagrams 1 and 2 (not the refused 3)", es)
	}
}
