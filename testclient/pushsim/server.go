package pushsim

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"
)

// endpoint is what FCM and APNs share: the HTTPS server, the fake vendor's bearer tokens, the
// device registry, the fault queue and the request counter.
type endpoint struct {
	// Static after construction.
	platform    Platform
	srv         *httptest.Server
	journal     *journal
	ownsJournal bool          // Close closes journal (false when a Providers owns it)
	done        chan struct{} // closed by Close: ends delays
	closeOnce   sync.Once

	// Guarded by mu.
	mu       sync.Mutex
	bearers  map[string]bearer // by token
	devices  map[string]*device
	faults   []Fault // answered to the next len(faults) requests, in order
	delay    time.Duration
	requests int
	admitted func() // test hook: called (under mu) when a request is counted
}

type bearer struct {
	owner   string // FCM project or APNs team
	revoked bool
}

type device struct {
	target       string    // FCM project or APNs topic
	unregistered time.Time // zero while registered
}

// bearerState is what an endpoint knows about a presented bearer token.
type bearerState int

const (
	bearerUnknown bearerState = iota // never issued (or missing)
	bearerRevoked
	bearerValid
)

func (e *endpoint) start(h http.Handler, configure func(*httptest.Server)) {
	e.done = make(chan struct{})
	e.bearers = make(map[string]bearer)
	e.devices = make(map[string]*device)
	e.srv = httptest.NewUnstartedServer(h)
	e.srv.EnableHTTP2 = true
	if configure != nil {
		configure(e.srv)
	}
	e.srv.StartTLS()
}

// URL is the base URL of the server, "https://127.0.0.1:port".
func (e *endpoint) URL() string { return e.srv.URL }

// Client is an HTTP client that trusts the server's certificate and speaks HTTP/2 to it. It is
// the same client on every call; Close closes its idle connections.
func (e *endpoint) Client() *http.Client { return e.srv.Client() }

// CertPool holds the server's self-signed certificate, for clients that build their own
// transport (apns2's, for example).
func (e *endpoint) CertPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(e.srv.Certificate())
	return p
}

// Close stops the server and waits for its requests to finish; when the provider owns its
// journal, it also stops push handlers and waits for running ones. Close is idempotent.
func (e *endpoint) Close() {
	e.closeOnce.Do(func() {
		close(e.done)
		e.srv.Close()
		if e.ownsJournal {
			e.journal.close()
		}
	})
}

// Revoke makes token, issued by Issue, invalid from now on: requests carrying it are answered as
// carrying an expired credential.
func (e *endpoint) Revoke(token string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if b, ok := e.bearers[token]; ok {
		b.revoked = true
		e.bearers[token] = b
	}
}

func (e *endpoint) issue(owner, token string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.bearers[token] = bearer{owner: owner}
	return token
}

func (e *endpoint) checkBearer(token string) (owner string, state bearerState) {
	e.mu.Lock()
	defer e.mu.Unlock()
	b, ok := e.bearers[token]
	switch {
	case !ok || token == "":
		return "", bearerUnknown
	case b.revoked:
		return b.owner, bearerRevoked
	default:
		return b.owner, bearerValid
	}
}

func (e *endpoint) register(target, token string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.devices[token] = &device{target: target}
	return token
}

// Unregister makes a device token registered with RegisterDevice answer as an app that was
// uninstalled: FCM 404 UNREGISTERED, APNs 410 Unregistered with the time of this call. It
// reports whether token was registered here.
func (e *endpoint) Unregister(token string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	d, ok := e.devices[token]
	if ok && d.unregistered.IsZero() {
		d.unregistered = time.Now()
	}
	return ok
}

// lookupDevice returns a copy of the device registered under token.
func (e *endpoint) lookupDevice(token string) (device, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	d, ok := e.devices[token]
	if !ok {
		return device{}, false
	}
	return *d, true
}

// FailNext makes the next n requests answer f instead of being handled. Calls queue up:
// FailNext(2, a) then FailNext(1, b) answers a, a, b.
func (e *endpoint) FailNext(n int, f Fault) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for range n {
		e.faults = append(e.faults, f)
	}
}

// Delay makes every following request wait d before it is answered (0: no delay). A request
// whose client gives up, or a Close, ends the wait.
func (e *endpoint) Delay(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.delay = d
}

// Requests is the number of requests received so far, whatever they were answered.
func (e *endpoint) Requests() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.requests
}

// Pushes returns every push accepted so far, in order. A push is recorded before its 200 is
// sent, so a sender that has its answer finds its push here (and in Next).
func (e *endpoint) Pushes() []Push { return e.journal.all() }

// KeepPushes says whether accepted pushes are recorded for Pushes and Next (the default) or only
// handed to OnPush handlers, so that a long load run or benchmark does not grow the journal. The
// setting belongs to the journal: on a Providers it applies to both providers.
func (e *endpoint) KeepPushes(keep bool) { e.journal.keep(keep) }

// OnPush sets the handler for pushes accepted for deviceToken (nil removes it). The handler runs
// in a goroutine of its own and does not hold up the provider's answer; for one device it is
// called for one push at a time, in order. Pushes accepted before OnPush are not handed to it.
func (e *endpoint) OnPush(deviceToken string, handler func(Push)) {
	e.journal.onPush(deviceToken, handler)
}

// Next returns the oldest accepted push that Next has not returned yet, waiting for one if
// needed. It fails with ctx's error, or ErrClosed after Close.
func (e *endpoint) Next(ctx context.Context) (Push, error) { return e.journal.nextPush(ctx) }

// admit counts a request, applies the delay and reports the fault to answer, if any. ok is false
// when the request must be abandoned (client gone, or Close).
func (e *endpoint) admit(r *http.Request) (fault *Fault, ok bool) {
	e.mu.Lock()
	e.requests++
	if e.admitted != nil {
		e.admitted()
	}
	delay := e.delay
	e.mu.Unlock()

	if delay > 0 {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return nil, false
		case <-e.done:
			return nil, false
		}
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.faults) == 0 {
		return nil, true
	}
	f := e.faults[0]
	e.faults = e.faults[1:]
	return &f, true
}

// randomBytes returns n random bytes; crypto/rand never fails.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}
