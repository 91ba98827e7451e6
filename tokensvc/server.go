// Package tokensvc holds both ends of the vendor token service (PROTOCOL.md
// §8): the reference server a terminal vendor runs to mint short-lived push
// credentials from its own keys (server*.go), and the broker-side client that
// fetches and caches them (client*.go).
//
// # Server
//
// A vendor never gives its Google or Apple private key to a broker. Server is
// an http.Handler that holds those keys and answers
//
//	GET <prefix>/<app>      (or GET <prefix>?app=<app>)
//
// with a Credential: an OAuth 2.0 access token for FCM HTTP v1, minted from
// the app's service-account key and shared by every broker until shortly
// before it expires, or an APNs provider JWT (ES256) signed with the app's
// .p8 key and reused within Apple's 20–60 minute rules. Callers are verified
// by any combination of a verification code in the URL (see
// VerificationCode), a per-broker bearer key and an address allow-list;
// refusals are rate-limited per caller address. The same handler serves
// /healthz and Prometheus /metrics.
package tokensvc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Credential types: the "type" field of a Credential.
const (
	TypeFCM  = "FCM HTTP v1"
	TypeAPNs = "APNs"
)

// APNs environments: the "environment" field of an APNs Credential.
const (
	EnvironmentProduction  = "production"
	EnvironmentDevelopment = "development"
)

// DefaultPathPrefix is where the server answers credential requests when
// ServerOptions.PathPrefix is empty.
const DefaultPathPrefix = "/token"

// Credential is the token service's answer (PROTOCOL.md §8), the JSON body
// of a 200 response:
//
//	{"type":"FCM HTTP v1","project":"mydmrapp-jaso42","token":"ya29.…","expires":3299}
//	{"type":"APNs","topic":"com.example.app","token":"eyJ…","expires":2400,"environment":"production"}
type Credential struct {
	// Type is TypeFCM or TypeAPNs.
	Type string `json:"type"`
	// Project is the Firebase project id (FCM only).
	Project string `json:"project,omitempty"`
	// Topic is the APNs topic, the app's bundle id (APNs only).
	Topic string `json:"topic,omitempty"`
	// Token is the OAuth 2.0 access token (FCM) or provider JWT (APNs), sent
	// by the broker as "Authorization: Bearer <Token>".
	Token string `json:"token"`
	// Expires is how many seconds from the response the caller may use
	// Token; it is relative, not a timestamp. The service hands out the same
	// token until then and a new one after; the token itself stays valid at
	// Google or Apple for a few minutes longer.
	Expires int64 `json:"expires"`
	// Environment is EnvironmentProduction or EnvironmentDevelopment (APNs
	// only): which APNs host the broker must send to.
	Environment string `json:"environment,omitempty"`
}

// ErrorResponse is the JSON body of every non-200 answer.
type ErrorResponse struct {
	// Error is a short machine-readable code, e.g. "bad_code",
	// "address_not_allowed", "rate_limited", "upstream_error", "unknown_app".
	Error string `json:"error"`
	// Reason says in words what went wrong and, where it helps, what to do.
	// It never contains a secret.
	Reason string `json:"reason"`
}

// ServerOptions are a Server's settings that do not come from the config file.
// Every field is optional.
type ServerOptions struct {
	// PathPrefix is where credentials are served; empty means
	// DefaultPathPrefix ("/token"). "/" serves apps at the root.
	PathPrefix string
	// Logger receives one structured line per event; nil discards logs.
	// Codes, bearer keys, query strings and tokens are never logged.
	Logger *slog.Logger
	// HTTPClient calls Google's token endpoint; nil means a client on a
	// clone of http.DefaultTransport.
	HTTPClient *http.Client
	// Now is the clock for expiry, reuse windows and rate limits; nil means
	// time.Now. Tests inject a fake one.
	Now func() time.Time
	// Getenv reads the environment variables the config names; nil means
	// os.Getenv.
	Getenv func(string) string
	// FCMRefreshMargin replaces DefaultFCMRefreshMargin when positive.
	FCMRefreshMargin time.Duration
}

// Server answers credential requests for the configured apps. Create it
// with NewServer; it is safe for concurrent use.
type Server struct {
	// Static after construction.
	prefix  string
	log     *slog.Logger
	client  *http.Client
	now     func() time.Time
	getenv  func(string) string
	margin  time.Duration
	metrics *metrics
	promh   http.Handler
	base    context.Context // parent of every mint; cancelled by Close
	cancel  context.CancelFunc

	reloadMu sync.Mutex                  // serialises Reload
	state    atomic.Pointer[serverState] // replaced whole by Reload
}

// serverState is everything a reload replaces. Immutable once published.
type serverState struct {
	apps      map[string]*app
	names     []string // sorted app names
	trusted   []netip.Prefix
	rateLimit RateLimitConfig
	limiter   *limiter
}

// app is one configured app.
type app struct {
	name        string
	fingerprint [sha256.Size]byte // of its config (auth excluded) and key bytes
	auth        *authPolicy
	source      credentialSource
}

// credentialSource mints and caches one app's credential.
type credentialSource interface {
	// kind is KindFCM or KindAPNs.
	kind() string
	// credential returns a credential that may be handed out now. Errors
	// are *upstreamError, or ctx's error when the caller gave up.
	credential(ctx context.Context) (Credential, error)
	// validUntil reports until when the cached credential is handed out, and
	// whether there is one.
	validUntil() (time.Time, bool)
}

// NewServer checks cfg, reads every key and secret it names and returns a
// ready Server. Each problem is reported with the app and field it concerns.
// Credentials are minted on first request, not here.
func NewServer(cfg ServerConfig, opts ServerOptions) (*Server, error) {
	prefix, err := normalizePrefix(opts.PathPrefix)
	if err != nil {
		return nil, fmt.Errorf("tokensvc: %w", err)
	}
	s := &Server{
		prefix: prefix,
		log:    opts.Logger,
		client: opts.HTTPClient,
		now:    opts.Now,
		getenv: opts.Getenv,
		margin: DefaultFCMRefreshMargin,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.client == nil {
		s.client = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.getenv == nil {
		s.getenv = os.Getenv
	}
	if opts.FCMRefreshMargin > 0 {
		s.margin = opts.FCMRefreshMargin
	}
	s.base, s.cancel = context.WithCancel(context.Background())
	s.metrics = newMetrics(s)
	st, err := s.buildState(cfg, nil)
	if err != nil {
		s.cancel()
		return nil, err
	}
	s.promh = promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{})
	s.state.Store(st)
	return s, nil
}

// Reload replaces the configuration without dropping a request. Apps whose
// settings and key bytes are unchanged keep their cached credential; changed
// or new apps start empty. On error the old configuration stays in force.
func (s *Server) Reload(cfg ServerConfig) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	st, err := s.buildState(cfg, s.state.Load())
	if err != nil {
		return err
	}
	s.state.Store(st)
	s.log.Info("configuration reloaded", "apps", len(st.names))
	return nil
}

// Close cancels mints in flight; requests waiting for them get 502. Call it
// after http.Server.Shutdown has drained the handlers.
func (s *Server) Close() error {
	s.cancel()
	return nil
}

// Apps returns the configured app names, sorted.
func (s *Server) Apps() []string {
	return slices.Clone(s.state.Load().names)
}

// PathPrefix returns the normalized prefix credentials are served under ("" for the root).
func (s *Server) PathPrefix() string { return s.prefix }

func normalizePrefix(p string) (string, error) {
	if p == "" {
		return DefaultPathPrefix, nil
	}
	if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?#") {
		return "", fmt.Errorf("path prefix %q must start with / and hold no ? or #", p)
	}
	p = strings.TrimRight(p, "/")
	if p == "/healthz" || p == "/metrics" {
		return "", fmt.Errorf("path prefix %q collides with the operations endpoints", p)
	}
	return p, nil
}

// buildState loads cfg into a new state, reusing apps of old that did not
// change.
func (s *Server) buildState(cfg ServerConfig, old *serverState) (*serverState, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("tokensvc: config: %w", err)
	}
	st := &serverState{apps: make(map[string]*app, len(cfg.Apps)), rateLimit: cfg.RateLimit}
	st.trusted, _ = parsePrefixes(cfg.TrustedProxies) // checked by Validate
	if old != nil && old.rateLimit == cfg.RateLimit {
		st.limiter = old.limiter
	} else {
		st.limiter = newLimiter(cfg.RateLimit, s.now)
	}
	shared, err := loadAuthPolicy(cfg.Auth, cfg.Dir, s.getenv)
	if err != nil {
		return nil, fmt.Errorf("tokensvc: config: auth: %w", err)
	}
	for _, ac := range cfg.Apps {
		a, err := s.loadApp(ac, cfg.Dir, shared, old)
		if err != nil {
			return nil, fmt.Errorf("tokensvc: config: app %q: %w", ac.Name, err)
		}
		st.apps[a.name] = a
		st.names = append(st.names, a.name)
	}
	slices.Sort(st.names)
	return st, nil
}

// loadApp reads one app's key and auth settings.
func (s *Server) loadApp(ac AppConfig, dir string, shared *authPolicy, old *serverState) (*app, error) {
	a := &app{name: ac.Name, auth: shared}
	if ac.Auth != nil {
		p, err := loadAuthPolicy(ac.Auth, dir, s.getenv)
		if err != nil {
			return nil, fmt.Errorf("auth: %w", err)
		}
		a.auth = p
	}
	var keyBytes []byte
	var err error
	switch ac.Kind {
	case KindFCM:
		keyBytes, err = readSecret(dir, ac.ServiceAccountFile, ac.ServiceAccountEnv, s.getenv, "service_account_file", "service_account_env")
	case KindAPNs:
		keyBytes, err = readSecret(dir, ac.KeyFile, ac.KeyEnv, s.getenv, "key_file", "key_env")
	}
	if err != nil {
		return nil, err
	}
	a.fingerprint = fingerprint(ac, keyBytes)
	if old != nil {
		if prev := old.apps[ac.Name]; prev != nil && prev.fingerprint == a.fingerprint {
			a.source = prev.source
			return a, nil
		}
	}
	switch ac.Kind {
	case KindFCM:
		project, conf, err := parseServiceAccount(keyBytes, ac.ProjectID)
		if err != nil {
			return nil, err
		}
		a.source = &fcmSource{
			app: ac.Name, project: project, conf: conf, client: s.client,
			now: s.now, base: s.base, margin: s.margin, metrics: s.metrics,
		}
	case KindAPNs:
		key, err := parseP8(keyBytes)
		if err != nil {
			return nil, fmt.Errorf("APNs key: %w", err)
		}
		env := ac.Environment
		if env == "" {
			env = EnvironmentProduction
		}
		window := time.Duration(ac.JWTReuseWindow)
		if window == 0 {
			window = DefaultAPNsReuseWindow
		}
		a.source = &apnsSource{
			app: ac.Name, key: key, keyID: ac.KeyID, teamID: ac.TeamID, topic: ac.Topic,
			environment: env, window: window, now: s.now, metrics: s.metrics,
		}
	}
	return a, nil
}

// fingerprint identifies an app's settings and key material, so that a
// reload keeps the cache of an unchanged app. Auth is excluded: it does not
// affect the credential.
func fingerprint(ac AppConfig, key []byte) [sha256.Size]byte {
	ac.Auth = nil
	b, _ := json.Marshal(ac)
	h := sha256.New()
	h.Write(b)
	h.Write([]byte{0})
	h.Write(key)
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// ServeHTTP answers GET <prefix>/<app>, GET <prefix>?app=<app>, GET /healthz
// and GET /metrics.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == "/healthz":
		s.serveHealth(w, r)
	case p == "/metrics":
		s.promh.ServeHTTP(w, r)
	case p == s.prefix || p == s.prefix+"/":
		s.serveCredential(w, r, r.URL.Query().Get("app"))
	case strings.HasPrefix(p, s.prefix+"/"):
		name := p[len(s.prefix)+1:]
		if q := r.URL.Query().Get("app"); q != "" && q != name {
			s.refuseRequest(w, r, http.StatusBadRequest, "bad_request", "the app is named both in the path and in ?app= and they differ")
			return
		}
		s.serveCredential(w, r, name)
	default:
		writeJSON(w, http.StatusNotFound, ErrorResponse{Error: "not_found", Reason: "no such endpoint; credentials are served under " + s.prefix + "/<app>"})
	}
}

func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSON(w, http.StatusMethodNotAllowed, ErrorResponse{Error: "method_not_allowed", Reason: "use GET"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "apps": len(s.state.Load().names)})
}

// refuseRequest answers a malformed request (before any app is resolved).
func (s *Server) refuseRequest(w http.ResponseWriter, r *http.Request, status int, code, reason string) {
	s.metrics.requests.WithLabelValues(unknownAppLabel, resultBadRequest).Inc()
	s.log.Info("bad request", "path", r.URL.Path, "method", r.Method, "remote", r.RemoteAddr, "reason", reason)
	writeJSON(w, status, ErrorResponse{Error: code, Reason: reason})
}

// serveCredential is the token endpoint: rate limit, resolve the app, check
// the caller, return the credential.
func (s *Server) serveCredential(w http.ResponseWriter, r *http.Request, name string) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		s.refuseRequest(w, r, http.StatusMethodNotAllowed, "method_not_allowed", "credentials are fetched with GET")
		return
	}
	st := s.state.Load()
	addr, err := callerAddr(r, st.trusted)
	if err != nil {
		s.refuseRequest(w, r, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	a := st.apps[name]
	label := name
	if a == nil {
		label = unknownAppLabel
	}
	log := s.log.With("app", label, "caller", addr.String())

	if ok, wait := st.limiter.allow(addr); !ok {
		secs := int64(math.Ceil(wait.Seconds()))
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
		s.metrics.requests.WithLabelValues(label, resultRateLimited).Inc()
		log.Debug("caller rate-limited", "retry_after", secs)
		writeJSON(w, http.StatusTooManyRequests, ErrorResponse{Error: "rate_limited", Reason: fmt.Sprintf("too many requests or refusals from this address; retry in %d s", secs)})
		return
	}
	if a == nil {
		st.limiter.fail(addr)
		s.metrics.requests.WithLabelValues(label, resultNotFound).Inc()
		log.Info("unknown app requested")
		reason := "no such app; name it as " + s.prefix + "/<app> or " + s.prefix + "?app=<app>"
		if name == "" {
			reason = "no app named; use " + s.prefix + "/<app> or " + s.prefix + "?app=<app>"
		}
		writeJSON(w, http.StatusNotFound, ErrorResponse{Error: "unknown_app", Reason: reason})
		return
	}
	broker, ref := a.auth.check(r, addr)
	if ref != nil {
		st.limiter.fail(addr)
		result := resultUnauthorized
		if ref.status == http.StatusForbidden {
			result = resultForbidden
		}
		s.metrics.requests.WithLabelValues(label, result).Inc()
		s.metrics.authFailures.WithLabelValues(ref.reason).Inc()
		log.Warn("caller refused", "reason", ref.reason)
		if ref.status == http.StatusUnauthorized && len(a.auth.bearer) > 0 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tokensvc"`)
		}
		writeJSON(w, ref.status, ErrorResponse{Error: ref.reason, Reason: ref.detail})
		return
	}
	if broker != "" {
		log = log.With("broker", broker)
	}
	cred, err := a.source.credential(r.Context())
	if err != nil {
		var ue *upstreamError
		if errors.As(err, &ue) {
			s.metrics.requests.WithLabelValues(label, resultUpstreamError).Inc()
			log.Error("credential mint failed", "kind", a.source.kind(), "err", err)
			writeJSON(w, http.StatusBadGateway, ErrorResponse{Error: "upstream_error", Reason: ue.reason})
			return
		}
		s.metrics.requests.WithLabelValues(label, resultCanceled).Inc()
		log.Info("caller gave up while the credential was minted", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, ErrorResponse{Error: "canceled", Reason: "the request ended before the credential was ready"})
		return
	}
	s.metrics.requests.WithLabelValues(label, resultOK).Inc()
	log.Info("credential issued", "kind", a.source.kind(), "expires", cred.Expires)
	writeJSON(w, http.StatusOK, cred)
}

// writeJSON writes v as the whole response.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":"internal","reason":"cannot encode the answer"}` + "\n")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
