package broker

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/rewind-broker/rewind/tokensvc"
	"github.com/sideshow/apns2"
	"github.com/sideshow/apns2/token"
)

// APNs sender defaults, each with its reason.
const (
	// DefaultAPNsMaxClients bounds the cached (team, environment) clients, each with its own
	// connection. A broker serves a handful of vendors; when the bound is reached one client is
	// dropped and its idle connection closed.
	DefaultAPNsMaxClients = 256
	// apnsIdleConnTimeout: Apple asks providers to keep connections open rather than reconnect
	// per push, so a quiet connection is kept long; it still ends eventually when a vendor's
	// terminals stop needing wakes (or its client was dropped from the cache).
	apnsIdleConnTimeout = 30 * time.Minute
	// apnsDialTimeout and apnsTLSHandshakeTimeout bound connection set-up below the send
	// timeout, so that a black-holed address fails as a network error.
	apnsDialTimeout         = 5 * time.Second
	apnsTLSHandshakeTimeout = 5 * time.Second
	// apnsPingTimeout: a connection silent this long is pinged (as apns2's own ReadIdleTimeout
	// does, 15 s) and closed if the ping goes unanswered.
	apnsPingTimeout = 15 * time.Second
	// apnsDevicePath precedes the device token in apns2's request URL.
	apnsDevicePath = "/3/device/"
	// maxAPNsTeam bounds the "iss" claim used as a cache key (Apple team ids are 10 characters).
	maxAPNsTeam = 64
)

// APNs push priorities (apns-priority).
const (
	apnsPriorityImmediate = 10 // alert pushes
	apnsPriorityThrottled = 5  // background pushes: required by Apple for content-available
)

// APNsConfig configures an APNsSender. The zero value of every field means its default.
type APNsConfig struct {
	// ProductionHost and DevelopmentHost are the base URLs for credentials whose environment is
	// production (or empty) and development. Empty means apns2.HostProduction and
	// apns2.HostDevelopment; tests point both at a pushsim server.
	ProductionHost  string
	DevelopmentHost string
	// TLSConfig is used by the sender's own transports (nil: system roots). Tests set RootCAs to
	// pushsim's CertPool.
	TLSConfig *tls.Config
	// Transport, when set, carries the requests of every client (e.g. a pushsim server's
	// Client().Transport). Nil means one HTTP/2-only transport per (team, environment), so that
	// each team gets a connection of its own as Apple expects: providers report
	// InvalidProviderToken when the JWTs of several teams share one connection. Set it only for
	// tests or a single-team deployment. It is wrapped, not modified.
	Transport http.RoundTripper
	// Timeout bounds one Send. Zero means DefaultPushTimeout.
	Timeout time.Duration
	// MaxClients: zero means DefaultAPNsMaxClients.
	MaxClients int
	// Logger receives debug lines about client creation and failed sends (never a token). Nil
	// means slog.Default().
	Logger *slog.Logger
}

// APNsSender sends pushes through APNs with github.com/sideshow/apns2 and token-based (JWT)
// authentication.
//
// It keeps one apns2.Client per (team, environment), created on first use; the team is the "iss"
// claim of the provider JWT. The broker holds no signing key: each Send carries the JWT the
// vendor's token service minted, and the sender installs it in the client's token under the
// token's own lock when it is newer than the one there (apns2 reads it under that lock for every
// push), so rotating it while pushes are in flight is safe. "Newer" is by the JWT's iat claim:
// while sends that fetched the previous JWT are still running they go out with the newest one,
// which keeps the bearer of a connection from flapping between two JWTs (Apple answers 429
// TooManyProviderTokenUpdates to a connection whose token changes more than every 20 minutes).
type APNsSender struct {
	// Static after construction.
	prodHost, devHost string
	tlsConfig         *tls.Config
	transport         http.RoundTripper // shared by every client when set
	timeout           time.Duration
	maxClients        int
	logger            *slog.Logger

	mu      sync.Mutex
	clients map[apnsClientKey]*apnsClient // guarded by mu
}

var _ Sender = (*APNsSender)(nil)

type apnsClientKey struct {
	team, host string
}

type apnsClient struct {
	*apns2.Client
	transport http.RoundTripper // its base transport, for CloseIdleConnections
}

// NewAPNsSender returns a sender configured by cfg.
func NewAPNsSender(cfg APNsConfig) (*APNsSender, error) {
	if cfg.ProductionHost == "" {
		cfg.ProductionHost = apns2.HostProduction
	}
	if cfg.DevelopmentHost == "" {
		cfg.DevelopmentHost = apns2.HostDevelopment
	}
	for _, h := range []string{cfg.ProductionHost, cfg.DevelopmentHost} {
		if !strings.HasPrefix(h, "https://") {
			return nil, fmt.Errorf("broker: APNs host %q: not https", h)
		}
	}
	if cfg.Timeout < 0 || cfg.MaxClients < 0 {
		return nil, errors.New("broker: APNs config: negative timeout or client limit")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultPushTimeout
	}
	if cfg.MaxClients == 0 {
		cfg.MaxClients = DefaultAPNsMaxClients
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &APNsSender{
		prodHost:   strings.TrimSuffix(cfg.ProductionHost, "/"),
		devHost:    strings.TrimSuffix(cfg.DevelopmentHost, "/"),
		tlsConfig:  cfg.TLSConfig,
		transport:  cfg.Transport,
		timeout:    cfg.Timeout,
		maxClients: cfg.MaxClients,
		logger:     cfg.Logger.With("platform", string(PlatformAPNs)),
		clients:    make(map[apnsClientKey]*apnsClient),
	}, nil
}

// newAPNsTransport is the default transport of one client: HTTP/2 only (APNs speaks nothing
// else), bounded connection set-up, pings on silent connections, and MaxConnsPerHost 1 so that a
// burst of sends on a cold client waits for one connection instead of dialing one per send (see
// newFCMTransport).
func newAPNsTransport(tlsConfig *tls.Config) *http.Transport {
	var protocols http.Protocols
	protocols.SetHTTP2(true)
	t := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: apnsDialTimeout, KeepAlive: 15 * time.Second}).DialContext,
		TLSClientConfig:     tlsConfig.Clone(),
		TLSHandshakeTimeout: apnsTLSHandshakeTimeout,
		IdleConnTimeout:     apnsIdleConnTimeout,
		MaxConnsPerHost:     1,
		ForceAttemptHTTP2:   true,
		Protocols:           &protocols,
		HTTP2:               &http.HTTP2Config{SendPingTimeout: apnsPingTimeout, PingTimeout: apnsPingTimeout},
	}
	return t
}

// CloseIdleConnections closes the idle connections of every client (and of the transport given
// in APNsConfig). Sends in flight are not interrupted and later sends open new connections.
func (s *APNsSender) CloseIdleConnections() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.clients {
		closeIdle(c.transport)
	}
	if s.transport != nil {
		closeIdle(s.transport)
	}
}

func closeIdle(rt http.RoundTripper) {
	if c, ok := rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// Send sends req through APNs: an alert push at priority 10 when req.Visible, a background push
// at priority 5 otherwise, to req.Topic (or the credential's), expiring after req.TTL. It fails
// with a *PushError: ErrRejected for a request that cannot be sent (no topic, a JWT without
// "iss", an unknown environment…), ErrProviderAuth without a token, ErrPayloadTooLarge before
// any request when the payload exceeds MaxPushPayload, and otherwise what APNs answered (see
// classifyAPNs).
func (s *APNsSender) Send(ctx context.Context, req PushRequest) (PushResult, error) {
	if req.Platform != PlatformAPNs {
		return PushResult{}, rejectf(PlatformAPNs, "platform %q", req.Platform)
	}
	topic := req.Topic
	if topic == "" {
		topic = req.Credential.Topic
	}
	if !validAPNsTopic(topic) {
		return PushResult{}, rejectf(PlatformAPNs, "no valid topic")
	}
	if !isHex(req.DeviceToken) && req.DeviceToken != "" {
		// It could never work, and it must not reach the request path.
		return PushResult{}, &PushError{Err: ErrUnregistered, Platform: PlatformAPNs,
			Reason: apns2.ReasonBadDeviceToken + " (not hex)"}
	}
	host, perr := s.host(req.Credential.Environment)
	if perr != nil {
		return PushResult{}, perr
	}
	if req.Credential.Token == "" {
		return PushResult{}, &PushError{Err: ErrProviderAuth, Platform: PlatformAPNs, Reason: "credential has no token"}
	}
	team, issuedAt, perr := jwtIssuer(req.Credential.Token)
	if perr != nil {
		return PushResult{}, perr
	}
	payload, err := BuildAPNsPayload(req)
	if err != nil {
		return PushResult{}, err
	}

	client := s.client(apnsClientKey{team: team, host: host}, host)
	installJWT(client.Token, req.Credential.Token, issuedAt)

	n := &apns2.Notification{
		DeviceToken: req.DeviceToken,
		Topic:       topic,
		CollapseID:  req.CollapseID,
		Payload:     payload,
		PushType:    apns2.PushTypeBackground,
		Priority:    apnsPriorityThrottled,
	}
	if req.Visible {
		n.PushType, n.Priority = apns2.PushTypeAlert, apnsPriorityImmediate
	}
	if ttl := ttlSeconds(req.TTL); ttl > 0 {
		n.Expiration = time.Now().Add(time.Duration(ttl) * time.Second)
	} // else apnsTransport sends apns-expiration: 0, which apns2 cannot express

	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var ans pushAnswer
	res, err := client.PushWithContext(context.WithValue(ctx, pushAnswerKey{}, &ans), n)
	if err == nil && res.Sent() {
		return PushResult{MessageID: res.ApnsID, Status: res.StatusCode}, nil
	}
	e := classifyAPNs(ctx, res, err, &ans, time.Now())
	s.logger.Debug("push failed", "team", team, "error", e)
	return PushResult{}, e
}

// host returns the base URL for an APNs credential's environment.
func (s *APNsSender) host(environment string) (string, *PushError) {
	switch environment {
	case "", tokensvc.EnvironmentProduction:
		return s.prodHost, nil
	case tokensvc.EnvironmentDevelopment:
		return s.devHost, nil
	}
	return "", rejectf(PlatformAPNs, "unknown environment %q", environment)
}

// client returns the client of key, creating it on first use.
func (s *APNsSender) client(key apnsClientKey, host string) *apnsClient {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.clients[key]; c != nil {
		return c
	}
	if len(s.clients) >= s.maxClients {
		for k, old := range s.clients { // drop one: its in-flight pushes still complete
			delete(s.clients, k)
			closeIdle(old.transport)
			break
		}
	}
	base := s.transport
	if base == nil {
		base = newAPNsTransport(s.tlsConfig)
	}
	c := &apnsClient{
		Client: &apns2.Client{
			Host:  host,
			Token: &token.Token{TeamID: key.team},
			// No client timeout: every Send's context carries the deadline, and a client timeout
			// racing it would turn a timeout into an error that is not context.DeadlineExceeded.
			HTTPClient: &http.Client{Transport: apnsTransport{base: base}},
		},
		transport: base,
	}
	s.clients[key] = c
	s.logger.Debug("APNs client created", "team", key.team, "host", host)
	return c
}

// installJWT makes jwt the bearer of t unless t already holds a newer one. apns2 reads the
// bearer under t's lock (Token.GenerateIfExpired) for every push, so t is changed under that
// lock and never replaced: swapping Client.Token while pushes are in flight is a data race.
// With no AuthKey apns2 never regenerates the token itself; IssuedAt only orders JWTs here.
func installJWT(t *token.Token, jwt string, issuedAt int64) {
	t.Lock()
	defer t.Unlock()
	if t.Bearer == jwt || issuedAt < t.IssuedAt {
		return // current, or an older credential still used by a send that fetched it earlier
	}
	t.Bearer, t.IssuedAt = jwt, issuedAt
}

// jwtIssuer reads the "iss" (team id) and "iat" claims of a provider JWT without verifying it:
// the broker has no key to verify with, and APNs does. A JWT without iat counts as issued now.
func jwtIssuer(jwt string) (team string, issuedAt int64, perr *PushError) {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return "", 0, rejectf(PlatformAPNs, "provider token is not a JWT")
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return "", 0, rejectf(PlatformAPNs, "provider token claims are not base64url")
	}
	var claims struct {
		Iss string          `json:"iss"`
		Iat json.RawMessage `json:"iat"`
	}
	if err := json.Unmarshal(raw, &claims); err != nil {
		return "", 0, rejectf(PlatformAPNs, "provider token claims are not JSON")
	}
	if claims.Iss == "" || len(claims.Iss) > maxAPNsTeam {
		return "", 0, rejectf(PlatformAPNs, "provider token has no valid iss (team) claim")
	}
	issuedAt = time.Now().Unix()
	var iat int64
	if json.Unmarshal(claims.Iat, &iat) == nil && iat > 0 {
		issuedAt = iat
	}
	return claims.Iss, issuedAt, nil
}

// classifyAPNs maps a refused or failed push to a *PushError. apns2 reports APNs' refusals as a
// Response with err == nil; an error means no answer (network, timeout) or one whose body was not
// JSON, which apns2 returns with StatusCode 0 — ans, filled by apnsTransport, still has its
// status.
func classifyAPNs(ctx context.Context, res *apns2.Response, err error, ans *pushAnswer, now time.Time) *PushError {
	e := &PushError{Platform: PlatformAPNs, Cause: redactURLError(err), RetryAfter: retryAfter(ans.retryAfter, now)}
	if err != nil {
		// No usable answer. A proxy's error page may still say something about the status, but
		// not that this push is hopeless: retry later.
		e.Err, e.Status = ErrUnavailable, ans.status
		switch {
		case ans.status == http.StatusTooManyRequests:
			e.Err = ErrThrottled
		case ans.status != 0:
			e.Reason = "unreadable answer"
		case ctx.Err() == context.DeadlineExceeded:
			e.Reason = "timeout"
		case ctx.Err() != nil:
			e.Reason = "canceled"
		}
		return e
	}
	e.Status, e.Reason = res.StatusCode, res.Reason
	switch {
	case res.Reason == apns2.ReasonUnregistered || res.StatusCode == http.StatusGone:
		e.Err, e.Timestamp = ErrUnregistered, res.Timestamp.Time
	case res.Reason == apns2.ReasonBadDeviceToken, res.Reason == apns2.ReasonDeviceTokenNotForTopic:
		e.Err = ErrUnregistered
	case res.Reason == apns2.ReasonExpiredProviderToken, res.Reason == apns2.ReasonInvalidProviderToken,
		res.Reason == apns2.ReasonMissingProviderToken:
		e.Err = ErrProviderAuth
	case res.Reason == apns2.ReasonPayloadTooLarge || res.StatusCode == http.StatusRequestEntityTooLarge:
		e.Err = ErrPayloadTooLarge
	case res.StatusCode == http.StatusTooManyRequests:
		e.Err = ErrThrottled
	case res.StatusCode >= 500 || res.StatusCode == 0:
		e.Err = ErrUnavailable
	default:
		e.Err = ErrRejected
	}
	return e
}

// apnsTransport adapts apns2's requests and records the answer's status:
//   - apns2 sends no apns-expiration for a zero (or Unix 0) Expiration, and APNs then applies its
//     own storage policy; the broker means "deliver now or never", which is apns-expiration: 0.
//   - apns2 drops the status of an answer whose body is not JSON (an HTML 502 from a proxy).
type apnsTransport struct {
	base http.RoundTripper
}

func (t apnsTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("apns-expiration") == "" {
		r2 := *r // a RoundTripper must not modify its request
		r2.Header = r.Header.Clone()
		r2.Header.Set("apns-expiration", "0")
		r = &r2
	}
	resp, err := t.base.RoundTrip(r)
	recordAnswer(r, resp, err)
	return resp, err
}

// redactURLError returns err without the device token: apns2 returns net/http's *url.Error,
// whose text holds the request URL, ".../3/device/<token>", and a device token is kept out of
// logs. Other errors are returned as they are.
func redactURLError(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err
	}
	redacted := *ue
	if i := strings.Index(redacted.URL, apnsDevicePath); i >= 0 {
		redacted.URL = redacted.URL[:i+len(apnsDevicePath)] + "…"
	}
	return &redacted
}

// validAPNsTopic accepts a bundle id and its suffixes (".voip"…): letters, digits, '.', '-', '_'.
func validAPNsTopic(topic string) bool {
	if topic == "" || len(topic) > 255 {
		return false
	}
	for _, c := range topic {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		switch {
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
		default:
			return false
		}
	}
	return true
}
