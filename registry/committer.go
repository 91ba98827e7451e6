package registry

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// The committer is the only writer of the database. Every mutating call
// becomes a job on a bounded queue; one goroutine takes everything queued
// (up to maxBatch jobs), runs each job's prepare step against one
// transaction, commits that transaction once (with SyncWrites, one pair of
// msyncs for the whole batch) and then answers every job. With SyncWrites
// each commit costs about as much as a small O_DSYNC write, so concurrent
// callers sharing one commit is what makes durable appends fast, and having
// a single writer makes read-modify-write jobs safe without badger's
// conflict detection.

// write is one key mutation produced by a job's prepare step.
type write struct {
	key   []byte
	value []byte // nil with del
	del   bool
}

// job is one queued mutation.
type job struct {
	// prepare runs on the committer goroutine. It reads what it needs from
	// txn (which includes the writes of earlier jobs in the batch) and
	// returns the writes to apply; it must not write to txn itself. An error
	// fails this job alone. It runs exactly once.
	prepare func(txn *badger.Txn) ([]write, error)
	// done receives the outcome once the job's writes are durable, or the
	// job failed. Buffered (1) so that the committer never blocks.
	done chan error

	writes []write // owned by the committer
}

// submit queues prepare and waits for its outcome. ctx bounds the wait for
// room in the queue only: once queued, the job may be committed at any
// moment, so submit waits for the answer to report what really happened.
// ctx.Done is consulted only when the queue is full.
func (b *Badger) submit(ctx context.Context, prepare func(txn *badger.Txn) ([]write, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return ErrClosed
	}
	j := jobPool.Get().(*job)
	j.prepare = prepare
	select {
	case b.queue <- j:
	default:
		select {
		case b.queue <- j:
		case <-ctx.Done():
			putJob(j)
			return ctx.Err()
		}
	}
	err := <-j.done
	putJob(j)
	return err
}

// jobPool recycles jobs with their done channels. A job goes back once its
// answer was received: the committer does not touch a job after answering it.
var jobPool = sync.Pool{New: func() any { return &job{done: make(chan error, 1)} }}

func putJob(j *job) {
	j.prepare, j.writes = nil, nil
	jobPool.Put(j)
}

// commitLoop is the committer goroutine. It returns when the queue is closed
// and drained.
func (b *Badger) commitLoop() {
	defer close(b.committerDone)
	batch := make([]*job, 0, b.maxBatch)
	for j := range b.queue {
		batch = b.drain(append(batch[:0], j))
		if d := b.linger.wait(time.Now(), len(batch)); d > 0 && len(batch) < lingerTarget {
			batch = b.drain(b.lingerFor(batch, d))
			b.lingers.Add(1)
		}
		b.linger.taken(time.Now())
		b.commitBatch(batch)
		clear(batch)
		clear(b.appendedInBatch)
	}
}

// drain adds to batch whatever is queued, up to maxBatch jobs, without
// waiting.
func (b *Badger) drain(batch []*job) []*job {
	for len(batch) < b.maxBatch {
		select {
		case j, ok := <-b.queue:
			if !ok {
				return batch
			}
			batch = append(batch, j)
		default:
			return batch
		}
	}
	return batch
}

// lingerFor waits up to d for more jobs, while batch is below lingerTarget,
// and returns the batch with those that came. Each job is waited for at
// most twice the gap the linger state expects between two jobs: when the
// jobs stop coming, the batch goes at once. A closed queue ends the wait.
func (b *Badger) lingerFor(batch []*job, d time.Duration) []*job {
	deadline := time.Now().Add(d)
	step := min(2*b.linger.gap, d)
	t := b.lingerTimer
	for len(batch) < lingerTarget {
		t.Reset(min(step, time.Until(deadline)))
		select {
		case j, ok := <-b.queue:
			t.Stop()
			if !ok {
				return batch
			}
			batch = append(batch, j)
		case <-t.C:
			return batch
		}
	}
	return batch
}

// Lingering: each sync costs the same CPU (40–55 µs here) whether it makes
// one job or a thousand durable, and at moderate load the committer finds
// only a dozen jobs queued when it takes a batch. When jobs are arriving
// fast, the committer waits a little (at most MaxLinger) for more before it
// commits; when they are not, it commits at once, so a lone caller's latency
// is unchanged. "Fast" means at least lingerJobs per MaxLinger: then the
// process is busy enough for a sub-millisecond timer to fire on time (an idle
// Go runtime sleeps in epoll with millisecond resolution, which made a 500 µs
// linger cost 1.1 ms at 4 000 jobs/s).
const (
	// DefaultMaxLinger is the default BadgerConfig.MaxLinger.
	DefaultMaxLinger = 500 * time.Microsecond
	// lingerTarget is the batch size from which the committer does not wait
	// for more: the sync's cost is already shared widely.
	lingerTarget = 64
	// lingerJobs is how many jobs per MaxLinger the recent arrivals must
	// promise for a batch to wait.
	lingerJobs = 8
)

// lingerState estimates the time between two queued jobs from the batches the
// committer took, and decides whether the next batch should wait for more.
// Owned by the committer goroutine.
type lingerState struct {
	max       time.Duration // 0: never linger
	lastTaken time.Time     // when the previous batch stopped gathering jobs
	jobs      float64       // jobs taken, decayed by 3/4 per batch
	span      float64       // nanoseconds over which they came, decayed alike
	gap       time.Duration // span / jobs: the recent time between two jobs
}

// wait returns how long a batch of n jobs, found queued at now, should wait
// for more: max when the jobs seen lately came at least lingerJobs per max (and
// this batch holds at least two: a caller that waits for each of its jobs in
// turn never makes a batch of more than one), zero otherwise. It also folds
// this batch (its jobs and the time since the previous one was taken) into
// the estimate.
func (l *lingerState) wait(now time.Time, n int) time.Duration {
	if l.max <= 0 {
		return 0
	}
	if l.lastTaken.IsZero() {
		return 0 // no history
	}
	// Decaying sums of jobs and time, and their ratio: the mean of each
	// batch's own gap would weigh a batch of 2 like one of 30, and after
	// each commit the batches alternate between the two.
	l.jobs = l.jobs*3/4 + float64(n)
	l.span = l.span*3/4 + float64(now.Sub(l.lastTaken))
	l.gap = time.Duration(l.span / l.jobs)
	if n < 2 || lingerJobs*l.gap > l.max {
		return 0
	}
	return l.max
}

// taken records when a batch stopped gathering jobs.
func (l *lingerState) taken(now time.Time) { l.lastTaken = now }

// commitBatch runs the jobs of one batch in as few transactions as possible:
// one, unless their writes exceed what badger takes in one transaction
// (ErrTxnTooBig), in which case the jobs that fit are committed first and the
// rest continue in a new transaction. A job's writes never span two
// transactions.
func (b *Badger) commitBatch(batch []*job) {
	txn := b.db.NewTransaction(true)
	var inTxn []*job
	for _, j := range batch {
		ws, err := j.prepare(txn)
		if err != nil {
			j.done <- err
			continue
		}
		j.writes = ws
		if err := applyWrites(txn, ws); err == nil {
			inTxn = append(inTxn, j)
			continue
		}
		// txn now holds part of j's writes: drop it, commit the jobs before
		// j in a transaction of their own, then give j a fresh one. Their
		// prepare steps read the same state they would read now, because
		// nothing but this goroutine writes.
		txn.Discard()
		if len(inTxn) > 0 {
			txn = b.db.NewTransaction(true)
			if err := applyAll(txn, inTxn); err != nil {
				txn.Discard()
				b.failed(inTxn, err)
			} else {
				b.finish(inTxn, b.commitTxn(txn))
			}
			inTxn = inTxn[:0]
		}
		txn = b.db.NewTransaction(true)
		if err := applyWrites(txn, ws); err != nil {
			txn.Discard()
			b.failed([]*job{j}, fmt.Errorf("registry: one mutation too large for a transaction: %w", err))
			txn = b.db.NewTransaction(true)
			continue
		}
		inTxn = append(inTxn, j)
	}
	if len(inTxn) == 0 {
		txn.Discard()
		return
	}
	b.finish(inTxn, b.commitTxn(txn))
}

// finish answers jobs with the outcome of their commit.
func (b *Badger) finish(jobs []*job, err error) {
	if err != nil {
		b.failed(jobs, err)
		return
	}
	answer(jobs, nil)
}

// failed answers jobs whose prepared writes were not stored. The outbox tails
// may describe those writes, so they are all forgotten.
func (b *Badger) failed(jobs []*job, err error) {
	clear(b.tails)
	answer(jobs, err)
}

func (b *Badger) commitTxn(txn *badger.Txn) error {
	b.commits.Add(1)
	if err := txn.Commit(); err != nil {
		return fmt.Errorf("registry: commit: %w", err)
	}
	return nil
}

func applyAll(txn *badger.Txn, jobs []*job) error {
	for _, j := range jobs {
		if err := applyWrites(txn, j.writes); err != nil {
			return err
		}
	}
	return nil
}

func applyWrites(txn *badger.Txn, ws []write) error {
	for _, w := range ws {
		var err error
		if w.del {
			err = txn.Delete(w.key)
		} else {
			err = txn.Set(w.key, w.value)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func answer(jobs []*job, err error) {
	for _, j := range jobs {
		j.writes = nil
		j.done <- err
	}
}
