package registry

import (
	"context"
	"fmt"

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
func (b *Badger) submit(ctx context.Context, prepare func(txn *badger.Txn) ([]write, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return ErrClosed
	}
	j := &job{prepare: prepare, done: make(chan error, 1)}
	select {
	case b.queue <- j:
	case <-ctx.Done():
		return ctx.Err()
	}
	return <-j.done
}

// commitLoop is the committer goroutine. It returns when the queue is closed
// and drained.
func (b *Badger) commitLoop() {
	defer close(b.committerDone)
	batch := make([]*job, 0, b.maxBatch)
	for j := range b.queue {
		batch = append(batch[:0], j)
	fill:
		for len(batch) < b.maxBatch {
			select {
			case j, ok := <-b.queue:
				if !ok {
					break fill
				}
				batch = append(batch, j)
			default:
				break fill
			}
		}
		b.commitBatch(batch)
		clear(batch)
		clear(b.appendedInBatch)
	}
}

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
