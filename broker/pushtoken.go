package broker

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rewind-broker/rewind/registry"
)

// Signed background token updates: limits and names, each with its reason.
const (
	// PushTokenRoute is the pattern PushTokenHandler must be mounted under (it reads {id}).
	PushTokenRoute = "POST /v1/terminals/{id}/push-token"
	// PushTokenContext is the first line of the signed message: it binds a signature to this
	// use and version, so no other signature made with the terminal's key can be passed off as
	// a token update.
	PushTokenContext = "rewind-push-token-v1"
	// PushTokenSkew is how far a timestamp may be from the broker's clock: phones keep network
	// time, so five minutes covers skew and slow networks, and bounds how long a captured
	// request could be replayed if the last-timestamp record were lost.
	PushTokenSkew = 5 * time.Minute
	// MaxPushTokenBody bounds the request body: a 4 KiB token, a timestamp and a 96-character
	// signature, with room for JSON whitespace.
	MaxPushTokenBody = 8 << 10
	// DefaultPushTokenPerTerminal updates per terminal id per PushTokenWindow: an app gets a
	// new token a few times a year; ten a minute allows retries and bounds signature checks
	// an attacker can make us do for one terminal.
	DefaultPushTokenPerTerminal = 10
	// DefaultPushTokenPerAddress requests per remote address (IPv6: per /64) per
	// PushTokenWindow: many phones may share a carrier NAT address, one attacker should not
	// make us verify signatures for every terminal id.
	DefaultPushTokenPerAddress = 60
	// PushTokenWindow is the rate limiter's fixed window.
	PushTokenWindow = time.Minute
	// pushTokenBlobPrefix + terminal id is the Blobs key of a terminal's last accepted
	// timestamp (decimal Unix seconds). It never expires: its job is to outlive the window.
	pushTokenBlobPrefix = "pushtoken-ts/"
	// pushTokenLockStripes serialises the replay check and the writes of one terminal.
	pushTokenLockStripes = 64
	// pushTokenMaxKeys bounds the rate limiter's tables (see tokenLimiter.allow).
	pushTokenMaxKeys = 100_000
)

// Results of a token update, the values of rewind_push_token_updates_total{result}.
const (
	pushTokenOK           = "ok"
	pushTokenBadSignature = "bad_signature"
	pushTokenReplayed     = "replayed"
	pushTokenStale        = "stale"
	pushTokenNoSigKey     = "no_sigkey"
	pushTokenRateLimited  = "rate_limited"
	pushTokenInvalid      = "invalid" // malformed request, bad token, unknown terminal
	pushTokenError        = "error"   // the registry failed; the client may retry
)

// Refusal reasons of the contract, the "error" of the JSON answer.
const (
	reasonNoSigKey     = "no signing key registered; re-attach with sigkey"
	reasonStale        = "stale or future timestamp"
	reasonReplayed     = "replayed"
	reasonBadSignature = "bad signature"
)

// pushTokenRequest is the body of a token update. Timestamp is a pointer to tell "missing"
// from 0; json refuses a non-integer into int64.
type pushTokenRequest struct {
	Token     string `json:"token"`
	Timestamp *int64 `json:"timestamp"`
	Signature string `json:"signature"`
}

// pushTokenHandler serves PushTokenRoute. Its limiter and locks live here, not in Server:
// mount one handler per Server.
type pushTokenHandler struct {
	srv     *Server
	limiter *tokenLimiter
	updates *prometheus.CounterVec // rewind_push_token_updates_total{result}
	locks   [pushTokenLockStripes]sync.Mutex
}

// PushTokenHandler returns the handler of signed background push-token updates, to be mounted
// on the PUBLIC listener under PushTokenRoute (one handler per Server: it holds the rate
// limiter).
//
// POST /v1/terminals/{id}/push-token on the PUBLIC listener (the terminal has no session: the
// app got a new FCM/APNs token in the background). Body JSON {"token": "<new device token>",
// "timestamp": <unix seconds, integer>, "signature": "<base64url, no padding>"}. The signed
// message is the UTF-8 bytes of `rewind-push-token-v1\n<terminal id decimal>\n<timestamp
// decimal>\n<token>` (no trailing newline). Signature: with a 65-byte P-256 sigkey, ES256 =
// ECDSA P-256 over SHA-256 of the message, encoded either as 64 bytes r‖s (JWS style, what
// CryptoKit's rawRepresentation gives) or ASN.1 DER (what Android Keystore's
// Signature("SHA256withECDSA") gives) — accept both; with a 32-byte sigkey, Ed25519 over the
// message itself (64 bytes). Rules: terminal must have an attach with a sigkey (else 403
// {"error":"no signing key registered; re-attach with sigkey"}); timestamp within ±5 minutes
// of the broker's clock (else 401 "stale or future timestamp"); each timestamp usable once
// and strictly increasing per terminal — store the last accepted timestamp durably (registry
// Blobs, key "pushtoken-ts/<id>") so a restart cannot reopen a replay (else 401 "replayed");
// bad signature → 401 "bad signature"; token validated like an attach token (non-empty, ≤
// 4096 printable ASCII, else 400); body ≤ 8 KiB, unknown fields refused (400); unknown
// terminal → 404; rate limit per terminal id (e.g. 10 per minute) and per remote address
// (e.g. 60 per minute) → 429 with Retry-After; push not enabled → 503. On success:
// Store.SetPushToken(ctx, id, token, now) (clears Invalid), answer 200 {"terminal": id,
// "updated": true}, a structured log line "push token updated" with terminal and redacted
// tokens (registry.RedactToken) and a counter rewind_push_token_updates_total{result} (ok,
// bad_signature, replayed, stale, no_sigkey, rate_limited, invalid). Nothing changes on any
// refusal. Also: wake any pending outbox entries for that terminal after a successful update
// (srv.waker.request(id, false)) since the previous token may have been invalid.
//
// Details of this implementation, within the contract:
//   - Checks run in this order, so a request gets the first refusal that applies: 503 push not
//     enabled; 400 bad terminal id in the path; 429 rate limited (every request with a valid
//     id counts, whatever its outcome; the limits are DefaultPushTokenPerTerminal and
//     DefaultPushTokenPerAddress per PushTokenWindow, an IPv6 address counted by its /64);
//     400 body (over 8 KiB, not one JSON object, unknown field, missing timestamp, token
//     empty, longer than 4096 bytes or not printable ASCII 0x21–0x7e: no spaces, as in an
//     attach); 404 unknown terminal; 403 no sigkey; 401 stale; 401 bad signature (empty,
//     not base64url without padding, wrong length, or not verifying); 401 replayed.
//   - Every error answer is JSON {"error": "<reason>"}.
//   - Two updates of one terminal in the same second: the second is "replayed"; wait a second.
//   - The last timestamp is recorded before the token is replaced: a registry failure between
//     the two (500) spends the timestamp but never leaves a verified request replayable.
//   - The counter also has result "error" (registry failures, answered 500); unknown
//     terminals and malformed requests count as "invalid"; 503 and 400 on the path are not
//     counted.
func (srv *Server) PushTokenHandler() http.Handler {
	return &pushTokenHandler{srv: srv, updates: srv.metrics.pushTokenCounter(), limiter: newTokenLimiter(srv.cfg.Clock,
		DefaultPushTokenPerTerminal, DefaultPushTokenPerAddress, PushTokenWindow)}
}

// pushTokenCounter returns rewind_push_token_updates_total{result}, registering it on first use
// with every result pre-created (dashboards see zeros rather than gaps).
func (m *metrics) pushTokenCounter() *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rewind_push_token_updates_total",
		Help: "Signed background push-token updates, by result (ok, bad_signature, replayed, stale, no_sigkey, rate_limited, invalid, error).",
	}, []string{"result"})
	if err := m.registry.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			panic(err) // a name clash with another metric: a programming error
		}
		c = are.ExistingCollector.(*prometheus.CounterVec)
	}
	for _, r := range []string{pushTokenOK, pushTokenBadSignature, pushTokenReplayed, pushTokenStale,
		pushTokenNoSigKey, pushTokenRateLimited, pushTokenInvalid, pushTokenError} {
		c.WithLabelValues(r)
	}
	return c
}

func (h *pushTokenHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	srv := h.srv
	blobs := srv.pushTokenBlobs()
	if srv.pushCfg.Store == nil || blobs == nil {
		apiError(w, http.StatusServiceUnavailable, "push is not enabled on this broker")
		return
	}
	id, err := parseID(r.PathValue("id"))
	if err != nil {
		apiError(w, http.StatusBadRequest, "%v", err)
		return
	}
	log := srv.log.With("terminal", id, "remote", r.RemoteAddr)
	refuse := func(status int, result, reason string) {
		h.updates.WithLabelValues(result).Inc()
		switch result {
		case pushTokenBadSignature, pushTokenReplayed, pushTokenNoSigKey:
			log.Info("push token update refused", "result", result, "reason", reason)
		default:
			log.Debug("push token update refused", "result", result, "reason", reason)
		}
		apiError(w, status, "%s", reason)
	}
	storeFailed := func(what string, err error) {
		h.updates.WithLabelValues(pushTokenError).Inc()
		log.Error("push token update: "+what, "err", err)
		apiError(w, http.StatusInternalServerError, "registry error")
	}

	if ok, retry := h.limiter.allow(id, limiterAddr(r.RemoteAddr)); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int((retry+time.Second-1)/time.Second)))
		refuse(http.StatusTooManyRequests, pushTokenRateLimited, "too many token updates; retry later")
		return
	}
	req, err := decodePushTokenRequest(w, r)
	if err != nil {
		refuse(http.StatusBadRequest, pushTokenInvalid, err.Error())
		return
	}

	ctx, cancel := context.WithTimeout(r.Context(), DefaultStoreTimeout)
	defer cancel()
	if _, err := srv.store.GetTerminal(ctx, id); errors.Is(err, registry.ErrNotFound) {
		refuse(http.StatusNotFound, pushTokenInvalid, "no such terminal")
		return
	} else if err != nil {
		storeFailed("terminal lookup failed", err)
		return
	}
	a, err := srv.pushCfg.Store.GetAttach(ctx, id)
	if errors.Is(err, registry.ErrNotFound) || (err == nil && a.SigKey == nil) {
		refuse(http.StatusForbidden, pushTokenNoSigKey, reasonNoSigKey)
		return
	} else if err != nil {
		storeFailed("attach lookup failed", err)
		return
	}
	now := srv.cfg.Clock.Now()
	ts := *req.Timestamp
	if skew := int64(PushTokenSkew / time.Second); ts < now.Unix()-skew || ts > now.Unix()+skew {
		refuse(http.StatusUnauthorized, pushTokenStale, reasonStale)
		return
	}
	if !verifyPushTokenSignature(a.SigKey, pushTokenMessage(id, ts, req.Token), req.Signature) {
		refuse(http.StatusUnauthorized, pushTokenBadSignature, reasonBadSignature)
		return
	}

	// The replay check and both writes of one terminal happen under its lock.
	mu := &h.locks[id%pushTokenLockStripes]
	mu.Lock()
	defer mu.Unlock()
	key := pushTokenBlobPrefix + strconv.FormatUint(uint64(id), 10)
	last, err := loadLastTimestamp(ctx, blobs, key)
	if err != nil {
		storeFailed("last timestamp unreadable", err)
		return
	}
	if last != nil && ts <= *last {
		refuse(http.StatusUnauthorized, pushTokenReplayed, reasonReplayed)
		return
	}
	if err := blobs.PutBlob(ctx, key, strconv.AppendInt(nil, ts, 10), time.Time{}); err != nil {
		storeFailed("last timestamp not stored", err)
		return
	}
	if err := srv.pushCfg.Store.SetPushToken(ctx, id, req.Token, now); errors.Is(err, registry.ErrNotFound) {
		refuse(http.StatusForbidden, pushTokenNoSigKey, reasonNoSigKey) // detached meanwhile
		return
	} else if err != nil {
		storeFailed("token not stored", err)
		return
	}
	h.updates.WithLabelValues(pushTokenOK).Inc()
	log.Info("push token updated", "platform", a.Platform, "token", registry.RedactToken(req.Token),
		"old_token", registry.RedactToken(a.Token), "was_invalid", a.Invalid)
	srv.emitPushTokenUpdated(id, a.Platform)
	writeJSON(w, http.StatusOK, map[string]any{"terminal": id, "updated": true})
	srv.wakeAfterTokenUpdate(id)
}

// pushTokenBlobs is where last timestamps are kept: the push store, else the terminal store;
// nil when neither keeps blobs (the endpoint then answers 503: without a durable record a
// restart would reopen replays).
func (srv *Server) pushTokenBlobs() registry.Blobs {
	if b, ok := srv.pushCfg.Store.(registry.Blobs); ok {
		return b
	}
	if b, ok := srv.store.(registry.Blobs); ok {
		return b
	}
	return nil
}

// wakeAfterTokenUpdate wakes terminal t for what its outbox holds: pushes to the previous token
// may have failed. The quiet period after an earlier push is dropped: it was for the old token.
// A terminal with an active session gets its datagrams over the socket.
func (srv *Server) wakeAfterTokenUpdate(t uint32) {
	if srv.waker == nil {
		return
	}
	if srv.hub.active(t) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), DefaultStoreTimeout)
	n, _, err := srv.pushCfg.Store.Depth(ctx, t)
	cancel()
	if err != nil || n == 0 {
		return
	}
	srv.waker.reconnected(t)
	srv.waker.request(t, false)
}

func decodePushTokenRequest(w http.ResponseWriter, r *http.Request) (pushTokenRequest, error) {
	var req pushTokenRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxPushTokenBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, fmt.Errorf("body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return req, errors.New("body: more than one JSON value")
	}
	if req.Timestamp == nil {
		return req, errors.New("body: timestamp is required")
	}
	if err := checkPushToken(req.Token); err != nil {
		return req, err
	}
	return req, nil
}

// checkPushToken accepts 1..registry.MaxPushTokenBytes bytes of printable ASCII without spaces
// (FCM tokens and APNs hex tokens are; an attach refuses spaces and control characters too).
func checkPushToken(token string) error {
	switch {
	case token == "":
		return errors.New("token is empty")
	case len(token) > registry.MaxPushTokenBytes:
		return fmt.Errorf("token of %d bytes, limit %d", len(token), registry.MaxPushTokenBytes)
	}
	for i := 0; i < len(token); i++ {
		if c := token[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("token has a byte outside printable ASCII at %d", i)
		}
	}
	return nil
}

func loadLastTimestamp(ctx context.Context, blobs registry.Blobs, key string) (*int64, error) {
	b, _, err := blobs.GetBlob(ctx, key)
	if errors.Is(err, registry.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	v, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%w: blob %q: %v", registry.ErrCorrupt, key, err)
	}
	return &v, nil
}

// pushTokenMessage returns the bytes a token update signs:
// "rewind-push-token-v1\n<terminal>\n<timestamp>\n<token>", without a trailing newline.
func pushTokenMessage(terminal uint32, timestamp int64, token string) []byte {
	b := make([]byte, 0, len(PushTokenContext)+len(token)+32)
	b = append(b, PushTokenContext...)
	b = append(b, '\n')
	b = strconv.AppendUint(b, uint64(terminal), 10)
	b = append(b, '\n')
	b = strconv.AppendInt(b, timestamp, 10)
	b = append(b, '\n')
	return append(b, token...)
}

// verifyPushTokenSignature reports whether sig (base64url without padding) is a signature of
// msg by sigKey: ES256 for a 65-byte uncompressed P-256 key, as 64-byte r‖s or ASN.1 DER;
// Ed25519 for a 32-byte key. Anything malformed is simply false.
func verifyPushTokenSignature(sigKey, msg []byte, sig string) bool {
	raw, err := base64.RawURLEncoding.Strict().DecodeString(sig)
	if err != nil || len(raw) == 0 {
		return false
	}
	switch len(sigKey) {
	case registry.P256PublicKeyBytes:
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), sigKey)
		if err != nil {
			return false
		}
		digest := sha256.Sum256(msg)
		// A DER signature of P-256 is 8..72 bytes and may, rarely, be 64: try r‖s first, then
		// DER, rather than guessing from the length alone.
		if len(raw) == 64 {
			r, s := new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:])
			if ecdsa.Verify(pub, digest[:], r, s) {
				return true
			}
		}
		return len(raw) <= 72 && ecdsa.VerifyASN1(pub, digest[:], raw)
	case registry.Ed25519PublicKeyBytes:
		return len(raw) == ed25519.SignatureSize && ed25519.Verify(ed25519.PublicKey(sigKey), msg, raw)
	}
	return false
}

// limiterAddr is the rate-limiting key of a remote address: the IP, or its /64 for IPv6 (one
// subscriber usually holds a whole /64).
func limiterAddr(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// tokenLimiter allows at most perID requests per terminal id and perAddr per address in each
// fixed window (starting at a key's first request). A refused request is not counted. Memory
// is bounded: expired windows are swept when the tables grow past pushTokenMaxKeys, and if
// that frees nothing they are cleared (limiting weakens under such a flood; memory does not
// grow).
type tokenLimiter struct {
	clock          Clock
	perID, perAddr int
	window         time.Duration

	mu     sync.Mutex
	byID   map[uint32]*rateWindow
	byAddr map[string]*rateWindow
}

type rateWindow struct {
	start time.Time
	count int
}

func newTokenLimiter(clock Clock, perID, perAddr int, window time.Duration) *tokenLimiter {
	return &tokenLimiter{clock: clock, perID: perID, perAddr: perAddr, window: window,
		byID: make(map[uint32]*rateWindow), byAddr: make(map[string]*rateWindow)}
}

// allow counts a request from addr for terminal id, or says how long until it would be allowed.
func (l *tokenLimiter) allow(id uint32, addr string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	if len(l.byID)+len(l.byAddr) > pushTokenMaxKeys {
		l.sweepLocked(now)
	}
	fresh := func(w *rateWindow) *rateWindow {
		if w == nil || now.Sub(w.start) >= l.window {
			return &rateWindow{start: now}
		}
		return w
	}
	wi, wa := fresh(l.byID[id]), fresh(l.byAddr[addr])
	var wait time.Duration
	if wi.count >= l.perID {
		wait = wi.start.Add(l.window).Sub(now)
	}
	if wa.count >= l.perAddr {
		wait = max(wait, wa.start.Add(l.window).Sub(now))
	}
	if wait > 0 {
		return false, wait
	}
	wi.count++
	wa.count++
	l.byID[id], l.byAddr[addr] = wi, wa
	return true, 0
}

func (l *tokenLimiter) sweepLocked(now time.Time) {
	for k, w := range l.byID {
		if now.Sub(w.start) >= l.window {
			delete(l.byID, k)
		}
	}
	for k, w := range l.byAddr {
		if now.Sub(w.start) >= l.window {
			delete(l.byAddr, k)
		}
	}
	if len(l.byID)+len(l.byAddr) > pushTokenMaxKeys {
		clear(l.byID)
		clear(l.byAddr)
	}
}
