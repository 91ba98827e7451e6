package registry

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// Benchmarks of durable appends (SyncWrites on, AES-256 at rest, 200-byte
// datagrams, data directory under the test's temporary directory, so on
// the same disk as TMPDIR). Run with:
//
//	go test -run '^$' -bench OutboxAppend -benchtime 5s ./registry/

func openBench(b *testing.B) *Badger {
	b.Helper()
	s, err := OpenBadger(BadgerConfig{Dir: b.TempDir(), EncryptionKey: make([]byte, 32)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := s.Close(); err != nil {
			b.Error(err)
		}
	})
	return s
}

func reportAppends(b *testing.B, s *Badger, start time.Time, commitsBefore uint64) {
	b.StopTimer()
	elapsed := time.Since(start)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "appends/s")
	if c := s.commits.Load() - commitsBefore; c > 0 {
		b.ReportMetric(float64(b.N)/float64(c), "appends/commit")
	}
}

// BenchmarkOutboxAppendParallel appends from 64×GOMAXPROCS goroutines
// spread over 64 terminals: group commit shares each sync among all
// appends queued meanwhile.
func BenchmarkOutboxAppendParallel(b *testing.B) {
	s := openBench(b)
	ctx := context.Background()
	datagram := make([]byte, 200)
	var next atomic.Uint32
	b.SetParallelism(64)
	commits := s.commits.Load()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		terminal := 262000100 + next.Add(1)%64
		for pb.Next() {
			if _, err := s.Append(ctx, terminal, datagram, time.Hour); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportAppends(b, s, start, commits)
}

// BenchmarkOutboxAppendSequential is the baseline: one goroutine, so every
// append is a synced transaction of its own.
func BenchmarkOutboxAppendSequential(b *testing.B) {
	s := openBench(b)
	ctx := context.Background()
	datagram := make([]byte, 200)
	commits := s.commits.Load()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if _, err := s.Append(ctx, 262000101, datagram, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	reportAppends(b, s, start, commits)
}
