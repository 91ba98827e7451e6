package registry

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
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

// BenchmarkOutboxAppendPaced offers appends at a fixed rate (open loop, in
// bursts every 250 µs or one at a time when slower, from 256 goroutines over 1 024 terminals), with
// the committer's linger off and at its default, and reports appends per
// commit, the process's CPU per append (getrusage: store and benchmark
// together) and the p50/p99 of one append. Group commit alone batches
// whatever queued during the previous sync; lingering waits for more when
// appends are arriving fast.
func BenchmarkOutboxAppendPaced(b *testing.B) {
	for _, rate := range []int{2_000, 20_000} {
		for _, linger := range []time.Duration{-1, 250 * time.Microsecond, 0} {
			name := fmt.Sprintf("rate=%d/linger=%v", rate, linger)
			if linger == 0 {
				name = fmt.Sprintf("rate=%d/linger=default", rate)
			}
			b.Run(name, func(b *testing.B) { benchPaced(b, rate, linger) })
		}
	}
}

func benchPaced(b *testing.B, rate int, linger time.Duration) {
	s, err := OpenBadger(BadgerConfig{Dir: b.TempDir(), EncryptionKey: make([]byte, 32), MaxLinger: linger})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	datagram := make([]byte, 200)
	type token struct {
		due time.Time
		n   int
	}
	tokens := make(chan token, b.N)
	lat := make([]time.Duration, b.N)
	var wg sync.WaitGroup
	for range 256 {
		wg.Go(func() {
			for t := range tokens {
				if _, err := s.Append(context.Background(), 262000000+uint32(t.n%1024), datagram, time.Hour); err != nil {
					b.Error(err)
				}
				lat[t.n] = time.Since(t.due)
			}
		})
	}
	commits := s.commits.Load()
	cpu0 := cpuTime()
	b.ResetTimer()
	start := time.Now()
	tick := max(250*time.Microsecond, time.Second/time.Duration(rate))
	perTick := max(int(int64(rate)*int64(tick)/int64(time.Second)), 1)
	for n := 0; n < b.N; {
		due := start.Add(time.Duration(n/perTick) * tick)
		time.Sleep(time.Until(due))
		for i := 0; i < perTick && n < b.N; i++ {
			tokens <- token{due: due, n: n}
			n++
		}
	}
	close(tokens)
	wg.Wait()
	b.StopTimer()
	elapsed := time.Since(start)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "appends/s")
	if c := s.commits.Load() - commits; c > 0 {
		b.ReportMetric(float64(b.N)/float64(c), "appends/commit")
	}
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/append")
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// cpuTime is the process's user + system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
