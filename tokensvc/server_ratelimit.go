package tokensvc

import (
	"math"
	"net/netip"
	"sync"
	"time"
)

// maxLimiterEntries bounds the memory of the per-address limiter: about
// 100 bytes each, so at most a few MB however many addresses call.
const maxLimiterEntries = 1 << 16

// bucketSpec is one token bucket's rate and size; rate <= 0 turns it off.
type bucketSpec struct {
	perSecond float64
	burst     float64
}

func (s bucketSpec) enabled() bool { return s.perSecond > 0 && s.burst > 0 }

// bucket is a token bucket's state; tokens is its level at time last.
type bucket struct {
	tokens float64
	last   time.Time
}

// level returns the bucket's level at now.
func (b *bucket) level(s bucketSpec, now time.Time) float64 {
	dt := now.Sub(b.last).Seconds()
	if dt < 0 {
		dt = 0
	}
	return math.Min(s.burst, b.tokens+dt*s.perSecond)
}

// full reports whether the bucket is back at its size (always for a
// disabled bucket).
func (b *bucket) full(s bucketSpec, now time.Time) bool {
	return !s.enabled() || b.level(s, now) >= s.burst
}

// take removes one token at now (the caller has checked there is one, or
// accepts a debt for refusals, which are counted even when already limited).
func (b *bucket) take(s bucketSpec, now time.Time) {
	b.tokens = math.Max(b.level(s, now)-1, -s.burst)
	b.last = now
}

// wait is how long until the bucket holds one whole token.
func (b *bucket) wait(s bucketSpec, now time.Time) time.Duration {
	missing := 1 - b.level(s, now)
	if missing <= 0 {
		return 0
	}
	return time.Duration(missing / s.perSecond * float64(time.Second))
}

// callerBuckets is the state of one caller address.
type callerBuckets struct {
	requests bucket
	failures bucket
}

// limiter rate-limits callers by address with two buckets each: every
// request takes from the request bucket, every refusal from the failure
// bucket, and a caller whose either bucket is empty is answered 429. Safe
// for concurrent use.
type limiter struct {
	requests bucketSpec
	failures bucketSpec
	now      func() time.Time

	mu      sync.Mutex
	callers map[netip.Addr]*callerBuckets // guarded by mu
}

func newLimiter(c RateLimitConfig, now func() time.Time) *limiter {
	l := &limiter{now: now, callers: make(map[netip.Addr]*callerBuckets)}
	l.requests = bucketSpec{perSecond: DefaultRequestsPerSecond, burst: DefaultRequestBurst}
	if c.RequestsPerSecond != 0 {
		l.requests.perSecond = c.RequestsPerSecond
	}
	if c.RequestBurst != 0 {
		l.requests.burst = float64(c.RequestBurst)
	}
	l.failures = bucketSpec{perSecond: DefaultFailuresPerMinute / 60, burst: DefaultFailureBurst}
	if c.FailuresPerMinute != 0 {
		l.failures.perSecond = c.FailuresPerMinute / 60
	}
	if c.FailureBurst != 0 {
		l.failures.burst = float64(c.FailureBurst)
	}
	return l
}

// limitKey groups IPv6 callers by /64, the smallest block a host usually
// gets, so that one host cannot walk through its addresses.
func limitKey(a netip.Addr) netip.Addr {
	if a.Is6() && !a.Is4In6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// allow takes a request token for addr. When the caller is limited it
// returns false and how long to wait.
func (l *limiter) allow(addr netip.Addr) (bool, time.Duration) {
	if !l.requests.enabled() && !l.failures.enabled() {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.get(limitKey(addr), now)
	var wait time.Duration
	if l.failures.enabled() {
		wait = c.failures.wait(l.failures, now)
	}
	if l.requests.enabled() {
		wait = max(wait, c.requests.wait(l.requests, now))
	}
	if wait > 0 {
		return false, wait
	}
	if l.requests.enabled() {
		c.requests.take(l.requests, now)
	}
	return true, 0
}

// fail records a refusal for addr.
func (l *limiter) fail(addr netip.Addr) {
	if !l.failures.enabled() {
		return
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.get(limitKey(addr), now).failures.take(l.failures, now)
}

// get returns addr's buckets, creating full ones. Called with mu held.
func (l *limiter) get(addr netip.Addr, now time.Time) *callerBuckets {
	if c, ok := l.callers[addr]; ok {
		return c
	}
	if len(l.callers) >= maxLimiterEntries {
		l.prune(now)
	}
	c := &callerBuckets{
		requests: bucket{tokens: l.requests.burst, last: now},
		failures: bucket{tokens: l.failures.burst, last: now},
	}
	l.callers[addr] = c
	return c
}

// prune forgets callers whose buckets have refilled (forgetting them changes
// nothing). If that frees too little, it forgets arbitrary callers: under a
// flood from that many addresses memory matters more than exactness.
func (l *limiter) prune(now time.Time) {
	for a, c := range l.callers {
		if c.requests.full(l.requests, now) && c.failures.full(l.failures, now) {
			delete(l.callers, a)
		}
	}
	for a := range l.callers {
		if len(l.callers) < maxLimiterEntries*3/4 {
			break
		}
		delete(l.callers, a)
	}
}
