package tokensvc

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ErrBackoff reports that a token-service URL is in backoff after a failed
// fetch: no request is made until the time in the *BackoffError that wraps
// it. The push path keeps its messages stored and retries then.
var ErrBackoff = errors.New("token service in backoff")

// BackoffError is the error Client.Get returns when a fetch failed or while
// the URL is in backoff after one. errors.Is(err, ErrBackoff) is true, and
// the fetch failure (wrapping ErrTokenService) is reachable through
// errors.Is/As as well.
type BackoffError struct {
	// URL is the redacted token-service URL.
	URL string
	// Until is when the client will try the URL again; Get calls before
	// then return this error without a request.
	Until time.Time
	// Err is the failure that started the backoff.
	Err error
}

// Error implements error.
func (e *BackoffError) Error() string {
	return fmt.Sprintf("token service %s in backoff until %s: %v", e.URL, e.Until.UTC().Format(time.RFC3339), e.Err)
}

// Unwrap returns the failure that started the backoff.
func (e *BackoffError) Unwrap() error { return e.Err }

// Is reports whether target is ErrBackoff.
func (e *BackoffError) Is(target error) bool { return target == ErrBackoff }

// Backoff defaults, each with its reason.
const (
	// DefaultMinBackoff is the first retry delay after a 5xx or network
	// error: short, because such failures are usually transient and a wake
	// is waiting.
	DefaultMinBackoff = time.Second
	// DefaultMaxBackoff caps the retry delay: a vendor's service that comes
	// back is used again within five minutes.
	DefaultMaxBackoff = 5 * time.Minute
	// DefaultClientErrorBackoff is the first retry delay after a 4xx, a
	// redirect or an invalid response: these are configuration problems
	// (wrong code, unknown app, broken deployment) that a quick retry will
	// not fix, and hammering a service that refuses us gets us rate-limited.
	DefaultClientErrorBackoff = 30 * time.Second
	// maxRetryAfter caps a server's Retry-After, so that a broken or hostile
	// service cannot switch a vendor off for days.
	maxRetryAfter = time.Hour
)

// failureClass selects the backoff floor of a failed fetch.
type failureClass int

const (
	transientFailure  failureClass = iota // 5xx, network
	persistentFailure                     // 4xx, redirect, invalid response
)

// backoffDelay is the delay after the n-th consecutive failure (n ≥ 1):
// exponential with full jitter above a floor, uniform in
// [floor, min(max, floor·2ⁿ)]. The floor keeps retries at least floor apart
// even when the jitter draws zero; jitter(n) returns a uniform value in
// [0, n).
func backoffDelay(floor, maxDelay time.Duration, n int, jitter func(int64) int64) time.Duration {
	floor = min(floor, maxDelay)
	ceiling := maxDelay
	if n < 62 {
		if c := floor << n; c > 0 && c < maxDelay {
			ceiling = c
		}
	}
	span := int64(ceiling - floor)
	if span <= 0 {
		return floor
	}
	return floor + time.Duration(jitter(span+1))
}

// retryAfter parses a Retry-After header (seconds or an HTTP date) relative
// to now, capped at maxRetryAfter. It returns 0 when absent or malformed.
func retryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(h, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(h); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}
