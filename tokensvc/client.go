package tokensvc

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	neturl "net/url"
	"strings"
	"sync"
	"time"
)

// ErrClientClosed is returned by Client.Get after Client.Close.
var ErrClientClosed = errors.New("token-service client closed")

// Client defaults, each with its reason.
const (
	// DefaultRefreshMargin is how long before a credential expires the client
	// starts refreshing it in the background, while still handing it out;
	// for short-lived credentials a tenth of the lifetime is used if smaller.
	// Five minutes covers a slow or briefly failing token service.
	DefaultRefreshMargin = 5 * time.Minute
	// DefaultFetchTimeout bounds one request to a token service, connection
	// included: a wake waits for it when there is no valid credential.
	DefaultFetchTimeout = 15 * time.Second
	// persistTimeout bounds one CredentialCache call.
	persistTimeout = 5 * time.Second
	// maxEntries bounds the per-URL state the client keeps. URLs come from
	// terminals; the policy limits hosts, not paths or queries. When full,
	// entries holding nothing useful are dropped first.
	maxEntries = 4096
)

// Clock tells the client the time; tests inject a fake one to move token
// expiry and backoff without waiting. The client arms no timers: refreshes
// start when a credential is used, and backoff is checked when a URL is.
type Clock interface {
	Now() time.Time
}

// systemClock is the real clock.
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// ClientConfig configures a Client. Every field is optional, but the zero
// Policy refuses every URL.
type ClientConfig struct {
	// Policy decides which token-service URLs may be called.
	Policy URLPolicy
	// HTTPClient sends the requests. Nil means a client of our own whose
	// dialer refuses addresses the Policy forbids (Policy.DialControl), with
	// timeouts, TLS 1.2 or later and no proxy from the environment. A
	// custom client should use DialControl too. Redirects are never
	// followed, whichever client is used.
	HTTPClient *http.Client
	// BearerKeys maps a host ("tokens.vendor.example", or
	// "tokens.vendor.example:8443" for one port only) to the key sent to it
	// as "Authorization: Bearer <key>". No other host ever sees the key.
	BearerKeys map[string]string
	// RefreshMargin is how long before expiry a credential in use is
	// refreshed in the background. Zero means the smaller of
	// DefaultRefreshMargin and a tenth of the credential's lifetime. It is
	// capped at half the lifetime so that short-lived credentials are not
	// refreshed on every use.
	RefreshMargin time.Duration
	// MinBackoff is the first retry delay after a 5xx or network error;
	// zero means DefaultMinBackoff (1 s).
	MinBackoff time.Duration
	// MaxBackoff caps every retry delay except a longer Retry-After; zero
	// means DefaultMaxBackoff (5 min).
	MaxBackoff time.Duration
	// ClientErrorBackoff is the first retry delay after a 4xx, a redirect
	// or an invalid response; zero means DefaultClientErrorBackoff (30 s).
	ClientErrorBackoff time.Duration
	// FetchTimeout bounds one request; zero means DefaultFetchTimeout.
	FetchTimeout time.Duration
	// Cache persists credentials across restarts; nil keeps them in this
	// Client only.
	Cache CredentialCache
	// Clock is the time source for expiry and backoff; nil means the system
	// clock.
	Clock Clock
	// Logger receives one line per fetch, failure and invalidation; nil
	// discards logs. URLs are logged redacted and tokens only as a short
	// SHA-256 fingerprint.
	Logger *slog.Logger
	// OnFetch, if set, is called after every HTTP request with its outcome
	// (OutcomeOK, OutcomeHTTP4xx, OutcomeHTTP5xx, OutcomeNetwork,
	// OutcomeInvalid) and duration, for metrics. It must not block.
	OnFetch func(outcome string, d time.Duration)
}

// Client fetches credentials from vendor token services (PROTOCOL.md §8) and
// caches them per URL: one request in flight per URL however many callers
// wait, refresh ahead of expiry while the old credential is still handed out,
// per-URL backoff after failures, and optional persistence. Create it with
// NewClient; it is safe for concurrent use.
type Client struct {
	// Static after construction.
	policy       URLPolicy
	http         *http.Client
	ownTransport *http.Transport // closed by Close; nil for a caller's client
	bearer       map[string]string
	margin       time.Duration // configured RefreshMargin; 0 means default
	minBackoff   time.Duration
	maxBackoff   time.Duration
	errBackoff   time.Duration
	fetchTimeout time.Duration
	cache        CredentialCache
	clock        Clock
	log          *slog.Logger
	onFetch      func(string, time.Duration)
	base         context.Context // parent of every fetch; cancelled by Close
	cancel       context.CancelFunc
	bg           sync.WaitGroup // fetch goroutines; waited for by Close

	// Test hooks, set before use.
	jitter   func(n int64) int64 // uniform in [0, n); rand.Int64N by default
	waitHook func()              // called when a Get starts waiting for a fetch

	mu      sync.Mutex
	closed  bool              // guarded by mu
	entries map[string]*entry // guarded by mu; by URL
}

// entry is the state of one token-service URL. Guarded by Client.mu.
type entry struct {
	key    string     // CredentialCache key
	cred   Credential // as fetched; Expires is the lifetime
	expiry time.Time
	margin time.Duration
	have   bool // cred is set (it may have expired since)
	loaded bool // the CredentialCache has been consulted

	flight *flight // the fetch in progress, if any

	failures int       // consecutive failed fetches
	retryAt  time.Time // no fetch before this
	lastErr  error     // the failure that set retryAt
}

// flight is one fetch that any number of Gets wait for.
type flight struct {
	done   chan struct{} // closed when the fields below are set
	cred   Credential
	expiry time.Time
	err    error
}

// NewClient checks cfg and returns a ready Client. Call Close when done.
func NewClient(cfg ClientConfig) (*Client, error) {
	c := &Client{
		policy:       cfg.Policy,
		http:         cfg.HTTPClient,
		margin:       cfg.RefreshMargin,
		minBackoff:   orDefault(cfg.MinBackoff, DefaultMinBackoff),
		maxBackoff:   orDefault(cfg.MaxBackoff, DefaultMaxBackoff),
		errBackoff:   orDefault(cfg.ClientErrorBackoff, DefaultClientErrorBackoff),
		fetchTimeout: orDefault(cfg.FetchTimeout, DefaultFetchTimeout),
		cache:        cfg.Cache,
		clock:        cfg.Clock,
		log:          cfg.Logger,
		onFetch:      cfg.OnFetch,
		jitter:       rand.Int64N,
		entries:      make(map[string]*entry),
	}
	for name, d := range map[string]time.Duration{
		"RefreshMargin": cfg.RefreshMargin, "MinBackoff": cfg.MinBackoff, "MaxBackoff": cfg.MaxBackoff,
		"ClientErrorBackoff": cfg.ClientErrorBackoff, "FetchTimeout": cfg.FetchTimeout,
	} {
		if d < 0 {
			return nil, fmt.Errorf("tokensvc: client config: %s is negative (%v)", name, d)
		}
	}
	if c.minBackoff > c.maxBackoff {
		return nil, fmt.Errorf("tokensvc: client config: MinBackoff %v exceeds MaxBackoff %v", c.minBackoff, c.maxBackoff)
	}
	if len(cfg.BearerKeys) > 0 {
		c.bearer = make(map[string]string, len(cfg.BearerKeys))
		for host, key := range cfg.BearerKeys {
			h := normalizeHost(host)
			if h == "" || strings.ContainsAny(h, "/*?#@") {
				return nil, fmt.Errorf("tokensvc: client config: BearerKeys: %q is not a host name", host)
			}
			if key == "" || strings.ContainsAny(key, " \t\r\n") {
				return nil, fmt.Errorf("tokensvc: client config: BearerKeys: the key for %q is empty or holds whitespace", host)
			}
			c.bearer[h] = key
		}
	}
	if c.clock == nil {
		c.clock = systemClock{}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.http == nil {
		c.ownTransport = newTransport(cfg.Policy)
		c.http = &http.Client{Transport: c.ownTransport}
	} else {
		hc := *cfg.HTTPClient // a copy: the caller's client is not ours to change
		c.http = &hc
	}
	c.http.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.base, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

// orDefault returns d, or def when d is zero.
func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// newTransport is the default transport: it dials only addresses p allows.
func newTransport(p URLPolicy) *http.Transport {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Control: p.DialControl}
	return &http.Transport{
		// No Proxy: a proxy would dial for us, out of DialControl's reach.
		DialContext:            dialer.DialContext,
		ForceAttemptHTTP2:      true,
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    10 * time.Second,
		ResponseHeaderTimeout:  10 * time.Second,
		IdleConnTimeout:        90 * time.Second,
		MaxIdleConnsPerHost:    2,
		MaxResponseHeaderBytes: 16 << 10,
	}
}

// Get returns a credential for the token service at url. The returned
// Credential's Expires is the number of whole seconds it remains valid.
//
// A cached credential is returned while it is valid; within its refresh
// margin a background refresh is started (one per URL) and the cached one
// is still returned. With no valid credential, Get fetches one, and
// concurrent Gets for the same URL share that one request; a caller whose
// ctx ends stops waiting, but the fetch goes on for the others.
//
// Errors: the URL's policy refusal (ErrURLPolicy); a *BackoffError
// (errors.Is ErrBackoff) when the fetch failed or the URL is in backoff
// after a failure, whose Err wraps ErrTokenService; ctx's error; or
// ErrClientClosed.
func (c *Client) Get(ctx context.Context, url string) (Credential, error) {
	u, err := c.policy.Check(url)
	if err != nil {
		return Credential{}, fmt.Errorf("tokensvc: %w", err)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return Credential{}, ErrClientClosed
	}
	e := c.entryLocked(url)
	now := c.clock.Now()
	if e.have && now.Before(e.expiry) {
		cred, expiry := e.cred, e.expiry
		if !now.Before(expiry.Add(-e.margin)) && e.flight == nil && !now.Before(e.retryAt) {
			c.startFlightLocked(url, u, e, "refresh")
		}
		c.mu.Unlock()
		return withRemaining(cred, expiry, now), nil
	}
	f := e.flight
	if f == nil {
		if now.Before(e.retryAt) {
			err := &BackoffError{URL: shortRedact(url), Until: e.retryAt, Err: e.lastErr}
			c.mu.Unlock()
			return Credential{}, err
		}
		f = c.startFlightLocked(url, u, e, "fetch")
	}
	c.mu.Unlock()

	if c.waitHook != nil {
		c.waitHook()
	}
	select {
	case <-f.done:
	case <-ctx.Done():
		return Credential{}, fmt.Errorf("tokensvc: waiting for token service %s: %w", shortRedact(url), ctx.Err())
	}
	if f.err != nil {
		return Credential{}, f.err
	}
	return withRemaining(f.cred, f.expiry, c.clock.Now()), nil
}

// withRemaining returns cred with Expires set to the whole seconds left
// until expiry (at least 1: cred is valid at now).
func withRemaining(cred Credential, expiry, now time.Time) Credential {
	cred.Expires = max(int64(expiry.Sub(now)/time.Second), 1)
	return cred
}

// entryLocked returns url's entry, creating it. Called with mu held.
func (c *Client) entryLocked(url string) *entry {
	if e, ok := c.entries[url]; ok {
		return e
	}
	if len(c.entries) >= maxEntries {
		c.pruneLocked()
	}
	e := &entry{key: cacheKey(url)}
	c.entries[url] = e
	return e
}

// pruneLocked drops entries that hold nothing useful (no valid credential,
// no fetch, no backoff); if that is not enough, any idle entry. Called with
// mu held.
func (c *Client) pruneLocked() {
	now := c.clock.Now()
	for url, e := range c.entries {
		if e.flight == nil && (!e.have || !now.Before(e.expiry)) && !now.Before(e.retryAt) {
			delete(c.entries, url)
		}
	}
	for url, e := range c.entries {
		if len(c.entries) < maxEntries*3/4 {
			break
		}
		if e.flight == nil {
			delete(c.entries, url)
		}
	}
}

// startFlightLocked starts fetching url in the background. Called with mu
// held.
func (c *Client) startFlightLocked(url string, u *neturl.URL, e *entry, why string) *flight {
	f := &flight{done: make(chan struct{})}
	e.flight = f
	load := !e.loaded && c.cache != nil
	e.loaded = true
	c.bg.Add(1)
	go c.runFlight(url, u, e, f, load, why)
	return f
}

// runFlight performs one flight: the persistent cache first (once per URL),
// then the token service.
func (c *Client) runFlight(url string, u *neturl.URL, e *entry, f *flight, load bool, why string) {
	defer c.bg.Done()
	ctx, cancel := context.WithTimeout(c.base, c.fetchTimeout)
	defer cancel()
	redacted := shortRedact(url)
	log := c.log.With("url", redacted)

	if load {
		if cred, expiry, ok := c.loadPersisted(ctx, log, e.key); ok {
			c.finish(e, f, cred, expiry)
			log.Debug("token-service credential loaded from cache", "type", cred.Type,
				"expires_in", expiry.Sub(c.clock.Now()).Round(time.Second), "token_fp", tokenFingerprint(cred.Token))
			return
		}
	}

	start := c.clock.Now()
	r := c.fetch(ctx, u)
	d := c.clock.Now().Sub(start)
	if c.onFetch != nil && r.outcome != outcomeCanceled {
		c.onFetch(r.outcome, d)
	}
	if r.err != nil {
		c.fail(log, redacted, e, f, r)
		return
	}
	expiry := start.Add(r.lifetime)
	if c.cache != nil {
		pctx, pcancel := context.WithTimeout(c.base, persistTimeout)
		if err := c.cache.StoreCredential(pctx, e.key, r.cred, expiry); err != nil {
			log.Warn("cannot persist token-service credential", "err", err)
		}
		pcancel()
	}
	c.finish(e, f, r.cred, expiry)
	log.Info("token-service credential fetched", "reason", why, "type", r.cred.Type,
		"expires_in", r.lifetime, "duration", d, "token_fp", tokenFingerprint(r.cred.Token))
}

// loadPersisted consults the CredentialCache; ok is false when it holds no
// credential still valid now.
func (c *Client) loadPersisted(ctx context.Context, log *slog.Logger, key string) (Credential, time.Time, bool) {
	cred, expiry, ok, err := c.cache.LoadCredential(ctx, key)
	if err != nil {
		log.Warn("cannot load token-service credential from cache", "err", err)
		return Credential{}, time.Time{}, false
	}
	if !ok || !c.clock.Now().Before(expiry) {
		return Credential{}, time.Time{}, false
	}
	if reason := validateCredential(&cred); reason != "" {
		log.Warn("ignoring invalid cached token-service credential", "reason", reason)
		return Credential{}, time.Time{}, false
	}
	return cred, expiry, true
}

// finish installs a credential and releases the flight's waiters.
func (c *Client) finish(e *entry, f *flight, cred Credential, expiry time.Time) {
	c.mu.Lock()
	e.cred, e.expiry, e.have = cred, expiry, true
	e.margin = c.refreshMargin(time.Duration(cred.Expires) * time.Second)
	e.failures, e.retryAt, e.lastErr = 0, time.Time{}, nil
	e.flight = nil
	f.cred, f.expiry = cred, expiry
	c.mu.Unlock()
	close(f.done)
}

// fail records a failed fetch, sets the URL's backoff and releases the
// flight's waiters. A credential still valid stays in use until it expires.
func (c *Client) fail(log *slog.Logger, redacted string, e *entry, f *flight, r fetchResult) {
	now := c.clock.Now()
	floor := c.minBackoff
	if r.class == persistentFailure {
		floor = c.errBackoff
	}
	c.mu.Lock()
	e.failures++
	delay := max(backoffDelay(floor, c.maxBackoff, e.failures, c.jitter), r.wait)
	e.retryAt, e.lastErr = now.Add(delay), r.err
	e.flight = nil
	f.err = &BackoffError{URL: redacted, Until: e.retryAt, Err: r.err}
	failures := e.failures
	c.mu.Unlock()
	// Log before releasing the waiters: a caller that sees the failure finds its log line.
	if r.outcome != outcomeCanceled {
		log.Warn("token-service fetch failed", "outcome", r.outcome, "err", r.err,
			"failures", failures, "retry_in", delay)
	}
	close(f.done)
}

// Invalidate drops the cached credential for url if its token is still
// token: call it when FCM answered 401 or APNs 403 for that token, then
// retry the push once with a fresh Get. If a refresh has already replaced
// the token, Invalidate does nothing, so concurrent pushes that all failed
// with the old token cause one refetch, not one each.
func (c *Client) Invalidate(url string, token string) {
	if token == "" {
		return
	}
	c.mu.Lock()
	e, ok := c.entries[url]
	if !ok || !e.have || e.cred.Token != token {
		c.mu.Unlock()
		return
	}
	e.have = false
	key := e.key
	c.mu.Unlock()

	c.log.Info("token-service credential invalidated", "url", shortRedact(url), "token_fp", tokenFingerprint(token))
	if c.cache != nil {
		// A refetch racing with this delete may lose its persisted copy; the
		// cost is one request after a restart, never a stale token.
		ctx, cancel := context.WithTimeout(c.base, persistTimeout)
		defer cancel()
		if err := c.cache.DeleteCredential(ctx, key); err != nil {
			c.log.Warn("cannot delete token-service credential from cache", "url", shortRedact(url), "err", err)
		}
	}
}

// Close stops the client: fetches in flight are cancelled (their waiters get
// an error), background refreshes end, and Close waits for them. Later Gets
// return ErrClientClosed. Close is idempotent.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.bg.Wait()
	if c.ownTransport != nil {
		c.ownTransport.CloseIdleConnections()
	}
	return nil
}

// refreshMargin is the refresh margin of a credential with the given
// lifetime.
func (c *Client) refreshMargin(lifetime time.Duration) time.Duration {
	m := c.margin
	if m == 0 {
		m = min(DefaultRefreshMargin, lifetime/10)
	}
	return min(m, lifetime/2)
}

// tokenFingerprint identifies a token in logs without revealing it: the
// first 8 hex digits of its SHA-256.
func tokenFingerprint(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:4])
}

// waitBackground waits for the fetches in flight (tests only: no Get may
// start one meanwhile).
func (c *Client) waitBackground() { c.bg.Wait() }
