package broker

import (
	"sync"
	"time"
)

// authLimiter counts failed authentications per terminal id and per remote address within a
// window. Reaching the limit for either locks it out until the window since its first failure
// has passed. Memory is bounded: entries expire with their window and the table is swept when
// it grows.
type authLimiter struct {
	clock  Clock
	limit  int
	window time.Duration

	mu      sync.Mutex
	byID    map[uint32]*failures
	byAddr  map[string]*failures
	maxKeys int
}

type failures struct {
	first time.Time
	count int
}

func newAuthLimiter(clock Clock, limit int, window time.Duration) *authLimiter {
	return &authLimiter{clock: clock, limit: limit, window: window,
		byID: make(map[uint32]*failures), byAddr: make(map[string]*failures), maxKeys: 100_000}
}

func (l *authLimiter) current(f *failures, now time.Time) int {
	if f == nil || now.Sub(f.first) >= l.window {
		return 0
	}
	return f.count
}

// locked reports whether the terminal id or the address is locked out now.
func (l *authLimiter) locked(id uint32, addr string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	return l.current(l.byID[id], now) >= l.limit || l.current(l.byAddr[addr], now) >= l.limit
}

// fail records a failure and reports whether it reached the limit.
func (l *authLimiter) fail(id uint32, addr string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	if len(l.byID)+len(l.byAddr) > l.maxKeys {
		l.sweepLocked(now)
	}
	bump := func(f *failures) *failures {
		if f == nil || now.Sub(f.first) >= l.window {
			return &failures{first: now, count: 1}
		}
		f.count++
		return f
	}
	fi := bump(l.byID[id])
	fa := bump(l.byAddr[addr])
	l.byID[id], l.byAddr[addr] = fi, fa
	return fi.count >= l.limit || fa.count >= l.limit
}

// succeed clears the terminal's failures (not the address's: one good password from an address
// must not reset a brute force against other ids from it).
func (l *authLimiter) succeed(id uint32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.byID, id)
}

func (l *authLimiter) sweepLocked(now time.Time) {
	for k, f := range l.byID {
		if now.Sub(f.first) >= l.window {
			delete(l.byID, k)
		}
	}
	for k, f := range l.byAddr {
		if now.Sub(f.first) >= l.window {
			delete(l.byAddr, k)
		}
	}
}
