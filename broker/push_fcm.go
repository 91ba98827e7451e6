package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/errorutils"
	"firebase.google.com/go/v4/messaging"
	"google.golang.org/api/option"
)

// FCM sender defaults, each with its reason.
const (
	// DefaultFCMEndpoint is FCM HTTP v1's base URL; the SDK appends
	// "/projects/{project}/messages:send".
	DefaultFCMEndpoint = "https://fcm.googleapis.com/v1"
	// DefaultFCMMaxProjects bounds the cached per-project clients. A broker serves a handful of
	// vendors; the bound only matters if token services hand out ever new project ids. Clients
	// are cheap (they share one transport), so the cache is simply emptied when it is full.
	DefaultFCMMaxProjects = 1024
	// fcmIdleConnTimeout keeps the HTTP/2 connection to FCM across quiet minutes without holding
	// it forever once a broker stops waking Android terminals.
	fcmIdleConnTimeout = 5 * time.Minute
	// fcmDialTimeout and fcmTLSHandshakeTimeout bound connection set-up below the send timeout,
	// so that a black-holed address fails as a network error.
	fcmDialTimeout         = 5 * time.Second
	fcmTLSHandshakeTimeout = 5 * time.Second
	// fcmPingTimeout: an HTTP/2 connection that has been silent this long is pinged, and closed
	// if the ping is not answered, so that a dead NAT mapping does not eat a send timeout.
	fcmPingTimeout = 30 * time.Second
)

// FCMConfig configures an FCMSender. The zero value of every field means its default.
type FCMConfig struct {
	// Endpoint is FCM HTTP v1's base URL, e.g. a pushsim server's URL()+"/v1". Empty means
	// DefaultFCMEndpoint.
	Endpoint string
	// Transport carries every request of every project: one HTTP/2 connection pool for all of
	// them. Nil means a transport of the sender's own, tuned for one long-lived HTTP/2 connection.
	// It is wrapped, not modified.
	Transport http.RoundTripper
	// Timeout bounds one Send, the SDK's internal retries included. Zero means
	// DefaultPushTimeout.
	Timeout time.Duration
	// MaxProjects: zero means DefaultFCMMaxProjects.
	MaxProjects int
	// Logger receives debug lines about client creation and failed sends (never a token). Nil
	// means slog.Default().
	Logger *slog.Logger
}

// FCMSender sends pushes through FCM HTTP v1 with firebase.google.com/go/v4's messaging client.
//
// It keeps one messaging.Client per Firebase project, created on first use, and all of them
// share one HTTP transport, hence one HTTP/2 connection to FCM. The OAuth 2.0 access token is
// not part of a client: each Send puts its Credential.Token in the request context and a
// RoundTripper wrapper sets the Authorization header from it (the SDK ignores WithTokenSource
// when given an HTTP client, and a client per token would mean a transport per token).
type FCMSender struct {
	// Static after construction.
	endpoint    string
	timeout     time.Duration
	maxProjects int
	logger      *slog.Logger
	transport   http.RoundTripper // the base transport
	httpClient  *http.Client      // bearerTransport over transport; shared by every client

	mu      sync.Mutex
	clients map[string]*messaging.Client // by project; guarded by mu

	auth  sync.Map     // access token → its Authorization header value ([]string)
	authN atomic.Int64 // entries stored in auth since it was last emptied
}

var _ Sender = (*FCMSender)(nil)

// NewFCMSender returns a sender configured by cfg.
func NewFCMSender(cfg FCMConfig) (*FCMSender, error) {
	if cfg.Endpoint == "" {
		cfg.Endpoint = DefaultFCMEndpoint
	}
	if !strings.HasPrefix(cfg.Endpoint, "https://") {
		return nil, fmt.Errorf("broker: FCM endpoint %q: not https", cfg.Endpoint)
	}
	if cfg.Timeout < 0 || cfg.MaxProjects < 0 {
		return nil, errors.New("broker: FCM config: negative timeout or project limit")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultPushTimeout
	}
	if cfg.MaxProjects == 0 {
		cfg.MaxProjects = DefaultFCMMaxProjects
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Transport == nil {
		cfg.Transport = newFCMTransport()
	}
	return &FCMSender{
		endpoint:    strings.TrimSuffix(cfg.Endpoint, "/"),
		timeout:     cfg.Timeout,
		maxProjects: cfg.MaxProjects,
		logger:      cfg.Logger.With("platform", string(PlatformFCM)),
		transport:   cfg.Transport,
		httpClient:  &http.Client{Transport: bearerTransport{base: cfg.Transport}},
		clients:     make(map[string]*messaging.Client),
	}, nil
}

// newFCMTransport is the default transport: HTTP/2 to FCM over one connection, with bounded
// connection set-up and pings on silent connections.
//
// MaxConnsPerHost is 1 because net/http cannot know before the TLS handshake that a connection
// will speak HTTP/2: a burst of sends on a cold transport otherwise dials one connection per send
// (200 concurrent sends to pushsim: about 240 TLS handshakes, all but one thrown away). With the
// limit the burst waits for the first connection and multiplexes on it; HTTP/2 still opens
// another connection when the server's concurrent-stream limit is reached.
//
// DisableCompression: FCM's answers are a few dozen bytes of JSON. Asking for gzip adds a request
// header to every push and, when a front end does compress, a gzip reader (tens of KB of
// decompressor state) per answer.
func newFCMTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: fcmDialTimeout, KeepAlive: 30 * time.Second}).DialContext
	t.ForceAttemptHTTP2 = true
	t.TLSHandshakeTimeout = fcmTLSHandshakeTimeout
	t.IdleConnTimeout = fcmIdleConnTimeout
	t.MaxConnsPerHost = 1
	t.DisableCompression = true
	t.HTTP2 = &http.HTTP2Config{SendPingTimeout: fcmPingTimeout, PingTimeout: 15 * time.Second}
	return t
}

// CloseIdleConnections closes the idle connections of the sender's transport (also when it was
// given in FCMConfig). Sends in flight are not interrupted and later sends open new connections.
func (s *FCMSender) CloseIdleConnections() {
	if c, ok := s.transport.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// Send sends req through FCM. It fails with a *PushError: ErrRejected for a request that is not
// an FCM push with a project and device token, ErrProviderAuth without a token,
// ErrPayloadTooLarge before any request when the data exceeds MaxPushPayload, and otherwise
// what FCM answered (see classifyFCM).
func (s *FCMSender) Send(ctx context.Context, req PushRequest) (PushResult, error) {
	if req.Platform != PlatformFCM {
		return PushResult{}, rejectf(PlatformFCM, "platform %q", req.Platform)
	}
	project := req.Credential.Project
	if !validFCMProject(project) {
		return PushResult{}, rejectf(PlatformFCM, "credential has no valid project")
	}
	if req.Credential.Token == "" {
		return PushResult{}, &PushError{Err: ErrProviderAuth, Platform: PlatformFCM, Reason: "credential has no token"}
	}
	d, perr := checkPush(PlatformFCM, req)
	if perr != nil {
		return PushResult{}, perr
	}
	if n := d.size(); n > MaxPushPayload {
		return PushResult{}, tooLarge(PlatformFCM, n)
	}
	client, err := s.client(ctx, project)
	if err != nil {
		return PushResult{}, &PushError{Err: ErrRejected, Platform: PlatformFCM, Reason: "client", Cause: err}
	}

	m := newFCMMessage(req, d)
	defer m.release()

	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	// One context value for the RoundTripper: the Authorization header (built once per access
	// token) and where to note the answer.
	ans := pushAnswer{authorization: s.authorization(req.Credential.Token)}
	ctx = context.WithValue(ctx, pushAnswerKey{}, &ans)
	name, err := client.Send(ctx, &m.msg)
	if err != nil {
		perr := classifyFCM(ctx, err, &ans, time.Now())
		s.logger.Debug("push failed", "project", project, "error", perr)
		return PushResult{}, perr
	}
	return PushResult{MessageID: name, Status: http.StatusOK}, nil
}

// fcmMessage is the SDK message of one Send with everything it points to, in one allocation
// reused through fcmMessagePool: the SDK only reads it while Send runs (it marshals the body for
// each attempt and keeps nothing afterwards).
type fcmMessage struct {
	msg     messaging.Message
	android messaging.AndroidConfig
	ttl     time.Duration
	data    map[string]string
}

var fcmMessagePool = sync.Pool{New: func() any { return &fcmMessage{data: make(map[string]string, 3)} }}

func newFCMMessage(req PushRequest, d pushData) *fcmMessage {
	m := fcmMessagePool.Get().(*fcmMessage)
	d.fillFCM(m.data)
	m.ttl = time.Duration(ttlSeconds(req.TTL)) * time.Second
	m.android = messaging.AndroidConfig{Priority: fcmPriority(req), TTL: &m.ttl, CollapseKey: req.CollapseID}
	m.msg = messaging.Message{Token: req.DeviceToken, Data: m.data, Android: &m.android}
	return m
}

// release returns m to the pool, holding no request data.
func (m *fcmMessage) release() {
	clear(m.data)
	m.msg, m.android = messaging.Message{}, messaging.AndroidConfig{}
	fcmMessagePool.Put(m)
}

// maxAuthorizations bounds the cached Authorization header values: a broker uses one access
// token per vendor at a time, so the cache is simply emptied when it is full.
const maxAuthorizations = 64

// authorization returns the Authorization header value for token, ["Bearer " + token], built
// once per token and shared read-only by every request that carries it.
func (s *FCMSender) authorization(token string) []string {
	if v, ok := s.auth.Load(token); ok {
		return v.([]string)
	}
	v := []string{"Bearer " + token}
	if s.authN.Add(1) > maxAuthorizations {
		s.auth.Clear()
		s.authN.Store(1)
	}
	s.auth.Store(token, v)
	return v
}

// client returns the messaging client of project, creating it on first use.
func (s *FCMSender) client(ctx context.Context, project string) (*messaging.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.clients[project]; c != nil {
		return c, nil
	}
	// The app only carries options; with WithHTTPClient the SDK neither looks for Google
	// credentials nor opens anything, so creating it under mu is cheap.
	app, err := firebase.NewApp(ctx, &firebase.Config{ProjectID: project},
		option.WithHTTPClient(s.httpClient), option.WithEndpoint(s.endpoint))
	if err != nil {
		return nil, err
	}
	c, err := app.Messaging(ctx)
	if err != nil {
		return nil, err
	}
	if len(s.clients) >= s.maxProjects {
		clear(s.clients)
	}
	s.clients[project] = c
	s.logger.Debug("FCM client created", "project", project)
	return c, nil
}

// validFCMProject accepts what can be a Firebase project id (letters, digits, '-', and the ':'
// and '.' of legacy domain-scoped ids) and nothing that could change the request path.
func validFCMProject(p string) bool {
	if p == "" || len(p) > 100 {
		return false
	}
	for _, c := range p {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == ':', c == '.':
		default:
			return false
		}
	}
	return p != "." && p != ".."
}

// classifyFCM maps an error of messaging.Client.Send to a *PushError, with the SDK's predicates
// and the answer's status; ctx is the send's context, ans what bearerTransport saw.
func classifyFCM(ctx context.Context, err error, ans *pushAnswer, now time.Time) *PushError {
	e := &PushError{Platform: PlatformFCM, Cause: err}
	if resp := errorutils.HTTPResponse(err); resp != nil {
		e.Status = resp.StatusCode
		e.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), now)
	}
	switch {
	case messaging.IsUnregistered(err):
		e.Err, e.Reason = ErrUnregistered, "UNREGISTERED"
	case messaging.IsSenderIDMismatch(err):
		e.Err, e.Reason = ErrUnregistered, "SENDER_ID_MISMATCH"
	case messaging.IsThirdPartyAuthError(err):
		// The vendor's APNs credentials at Firebase are wrong: a new access token won't help.
		e.Err, e.Reason = ErrRejected, "THIRD_PARTY_AUTH_ERROR"
	case errorutils.IsUnauthenticated(err) || e.Status == http.StatusUnauthorized:
		e.Err, e.Reason = ErrProviderAuth, "UNAUTHENTICATED"
	case messaging.IsQuotaExceeded(err):
		e.Err, e.Reason = ErrThrottled, "QUOTA_EXCEEDED"
	case errorutils.IsResourceExhausted(err) || e.Status == http.StatusTooManyRequests:
		e.Err, e.Reason = ErrThrottled, "RESOURCE_EXHAUSTED"
	case messaging.IsUnavailable(err) || errorutils.IsUnavailable(err):
		e.Err, e.Reason = ErrUnavailable, "UNAVAILABLE"
	case messaging.IsInternal(err) || errorutils.IsInternal(err):
		e.Err, e.Reason = ErrUnavailable, "INTERNAL"
	case e.Status >= 500:
		e.Err = ErrUnavailable
	case e.Status == 0 && (ctx.Err() != nil || errorutils.IsDeadlineExceeded(err) || errorutils.IsUnknown(err)):
		// No answer: a network error (the SDK's transport errors have no response), the send
		// timeout, or the caller's cancellation — the context error is kept as the cause.
		e.Err = ErrUnavailable
		if ctxErr := ctx.Err(); ctxErr != nil {
			e.Reason = "timeout"
			if ctxErr == context.Canceled {
				e.Reason = "canceled"
			}
			if !errors.Is(err, ctxErr) {
				e.Cause = errors.Join(ctxErr, err)
			}
		}
	case messaging.IsInvalidArgument(err) || errorutils.IsInvalidArgument(err):
		e.Err, e.Reason = ErrRejected, "INVALID_ARGUMENT"
	case errorutils.IsPermissionDenied(err):
		// The access token is valid but not for this project: the token service's credential
		// does not match the project it names, which a refetch does not change.
		e.Err, e.Reason = ErrRejected, "PERMISSION_DENIED"
	case e.Status == 0 && ans.status != 0:
		// Not the SDK's error for an answer: it could not read one (a 200 whose body is not
		// JSON, say, from a proxy). Whether the push went out is unknown.
		e.Err, e.Status, e.Reason = ErrUnavailable, ans.status, "unreadable answer"
	default:
		e.Err = ErrRejected
	}
	return e
}

// bearerTransport sets the Authorization header of the request context's pushAnswer on every
// request, retries included, and leaves requests without one as they are. It also notes each
// answer's status in that pushAnswer.
type bearerTransport struct {
	base http.RoundTripper
}

func (t bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	out := r
	ans, _ := r.Context().Value(pushAnswerKey{}).(*pushAnswer)
	if ans != nil && ans.authorization != nil {
		// A RoundTripper must not modify its request: a shallow copy with a new header map.
		// The value slices are shared with r, read-only, as the transport only reads them.
		r2 := *r
		r2.Header = maps.Clone(r.Header)
		r2.Header["Authorization"] = ans.authorization
		out = &r2
	}
	resp, err := t.base.RoundTrip(out)
	if ans != nil && err == nil {
		ans.record(resp)
	}
	return resp, err
}
