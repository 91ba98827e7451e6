package registry

import (
	"bytes"
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// holdCommitter queues a job that blocks the committer until the returned
// function is called, and returns once the committer is inside that job (so
// everything queued from now on waits for the next batch).
func holdCommitter(t *testing.T, b *Badger) (release func()) {
	t.Helper()
	inside, gate := make(chan struct{}), make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- b.submit(context.Background(), func(*badger.Txn) ([]write, error) {
			close(inside)
			<-gate
			return nil, nil
		})
	}()
	<-inside
	return func() {
		close(gate)
		if err := <-errc; err != nil {
			t.Errorf("holding job: %v", err)
		}
	}
}

// waitQueued spins until n jobs are queued. No sleeping: the goroutines
// being waited for only need CPU time to reach the queue.
func waitQueued(t *testing.T, b *Badger, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(b.queue) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d jobs queued, want %d", len(b.queue), n)
		}
		runtime.Gosched()
	}
}

// appendConcurrently starts n appends of datagram(i) to terminal 7 and
// returns a function that waits for them and reports their entries.
func appendConcurrently(t *testing.T, b *Badger, n int, datagram func(i int) []byte) func() []Entry {
	entries := make([]Entry, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			e, err := b.Append(context.Background(), 7, datagram(i), time.Hour)
			if err != nil {
				t.Errorf("Append %d: %v", i, err)
			}
			entries[i] = e
		})
	}
	return func() []Entry { wg.Wait(); return entries }
}

// TestGroupCommit checks that appends queued together share one synced
// transaction.
func TestGroupCommit(t *testing.T) {
	b, err := OpenBadger(BadgerConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const n = 64
	release := holdCommitter(t, b)
	before := b.commits.Load()
	wait := appendConcurrently(t, b, n, func(i int) []byte { return []byte{byte(i)} })
	waitQueued(t, b, n)
	release()
	entries := wait()
	if got := b.commits.Load() - before; got != 2 {
		t.Errorf("%d appends queued together: %d commits, want 2 (the holding job's and one)", n, got)
	}
	seen := make(map[uint64]bool)
	for _, e := range entries {
		if e.Seq < 1 || e.Seq > n || seen[e.Seq] {
			t.Errorf("seq %d out of 1..%d or repeated", e.Seq, n)
		}
		seen[e.Seq] = true
	}
}

// TestGroupCommitSplitsLargeBatch queues more data than badger takes in one
// transaction: the committer must split the batch, keeping each append
// whole, and every append must succeed.
func TestGroupCommitSplitsLargeBatch(t *testing.T) {
	b, err := OpenBadger(BadgerConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const n = 24 // 24 × 64 KiB = 1.5 MiB; one transaction takes 600 KiB
	datagram := func(i int) []byte { return bytes.Repeat([]byte{byte(i + 1)}, MaxDatagramBytes) }
	release := holdCommitter(t, b)
	before := b.commits.Load()
	wait := appendConcurrently(t, b, n, datagram)
	waitQueued(t, b, n)
	release()
	entries := wait()
	commits := b.commits.Load() - before - 1
	if commits < 3 || commits > n/2 {
		t.Errorf("%d large appends took %d commits; want a few (3..%d)", n, commits, n/2)
	}
	got, err := b.Pending(context.Background(), 7, 0, MaxPageSize)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("%d entries stored, want %d", len(got), n)
	}
	bySeq := make(map[uint64]Entry)
	for _, e := range entries {
		bySeq[e.Seq] = e
	}
	for _, e := range got {
		if !bytes.Equal(e.Datagram, bySeq[e.Seq].Datagram) {
			t.Errorf("seq %d: stored datagram differs from appended one", e.Seq)
		}
	}
	t.Logf("%d appends of %d bytes: %d commits", n, MaxDatagramBytes, commits)
}
