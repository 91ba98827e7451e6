package testclient

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// histogram records durations in log-linear buckets: 32 sub-buckets per power of two of
// microseconds, so every quantile is within ~3% of the truth, in a fixed 64×32 array whatever
// the number of samples. It is safe for concurrent use without locks.
type histogram struct {
	counts [64 * histSub]atomic.Uint64
	n      atomic.Uint64
	max    atomic.Int64 // exact, in nanoseconds
}

const (
	histSubBits = 5
	histSub     = 1 << histSubBits
)

func histBucket(us uint64) int {
	if us < histSub {
		return int(us) // exact below 32 µs
	}
	exp := bits.Len64(us) - 1 - histSubBits // how far to shift to keep histSubBits+1 bits
	return (exp+1)*histSub + int(us>>exp) - histSub
}

// histLow is the smallest value in bucket b (in µs), used as the reported quantile: biased low
// by at most one sub-bucket.
func histLow(b int) uint64 {
	if b < histSub {
		return uint64(b)
	}
	exp := b/histSub - 1
	return uint64(b%histSub+histSub) << exp
}

func (h *histogram) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[histBucket(uint64(d/time.Microsecond))].Add(1)
	h.n.Add(1)
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

// quantile returns the q-quantile (0 < q ≤ 1), 0 without samples.
func (h *histogram) quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.5)
	rank = max(rank, 1)
	var seen uint64
	for b := range h.counts {
		seen += h.counts[b].Load()
		if seen >= rank {
			return min(time.Duration(histLow(b))*time.Microsecond, h.maxDuration())
		}
	}
	return h.maxDuration()
}

func (h *histogram) maxDuration() time.Duration { return time.Duration(h.max.Load()) }
