package broker

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rewind-broker/rewind/registry"
)

// TerminalDetail is GET /v1/terminals/{id}: the terminal, its state, its push attachment and
// its outbox. It never holds the password, the full device token, the token-service URL's
// path or query, or key material.
type TerminalDetail struct {
	TerminalInfo
	// State is active or idle (a live session), or offline.
	State string `json:"state"`
	// Attach is the push channel; null when the terminal has none.
	Attach *AttachInfo `json:"attach"`
	// Outbox is what is stored for the terminal; absent on a broker without push.
	Outbox *OutboxInfo `json:"outbox,omitempty"`
	// LastPush is the newest push attempt in the audit trail, whatever its outcome; absent when
	// there is none or the broker keeps no trail.
	LastPush *PushAuditInfo `json:"last_push,omitempty"`
}

// AttachInfo is a push attachment as operators see it: secrets redacted, keys fingerprinted.
type AttachInfo struct {
	Platform string `json:"platform"`
	// TokenServiceHost is the token-service URL's host (and port), nothing else of it.
	TokenServiceHost string `json:"token_service_host"`
	// DeviceToken is the device token's first characters and its length (registry.RedactToken).
	DeviceToken string `json:"device_token"`
	// P256DHFingerprint and SigKeyFingerprint are the first 16 hex digits of the SHA-256 of
	// the key bytes; absent without a key. SigKeyKind is es256 or ed25519.
	P256DHFingerprint string    `json:"p256dh_fingerprint,omitempty"`
	SigKeyFingerprint string    `json:"sigkey_fingerprint,omitempty"`
	SigKeyKind        string    `json:"sigkey_kind,omitempty"`
	Name              string    `json:"name,omitempty"`
	Topic             string    `json:"topic,omitempty"`
	Legacy            bool      `json:"legacy"`
	Attached          time.Time `json:"attached"`
	TokenUpdated      time.Time `json:"token_updated"`
	// Invalid is set when the provider said the device token is gone; no push is sent until
	// the terminal attaches again or updates its token.
	Invalid       bool       `json:"invalid"`
	InvalidReason string     `json:"invalid_reason,omitempty"`
	InvalidAt     *time.Time `json:"invalid_at,omitempty"`
}

// OutboxInfo is the size of a terminal's outbox.
type OutboxInfo struct {
	// Depth counts unexpired stored datagrams (delivered but unacknowledged ones included).
	Depth int `json:"depth"`
	// OldestAgeSeconds is how long the oldest of them has waited; 0 when Depth is 0.
	OldestAgeSeconds int64 `json:"oldest_age_seconds"`
	// OldestStored is when it was stored; absent when Depth is 0.
	OldestStored *time.Time `json:"oldest_stored,omitempty"`
}

// fingerprintBytes is how many bytes of a key's SHA-256 identify it (16 hex digits): enough to
// compare keys, nothing to use.
const fingerprintBytes = 8

func fingerprint(key []byte) string {
	if len(key) == 0 {
		return ""
	}
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:fingerprintBytes])
}

func sigKeyKind(key []byte) string {
	switch len(key) {
	case registry.P256PublicKeyBytes:
		return "es256"
	case registry.Ed25519PublicKeyBytes:
		return "ed25519"
	}
	return ""
}

// tokenServiceHost returns the host[:port] of a token-service URL, or a redacted form when it
// does not parse.
func tokenServiceHost(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return registry.RedactURL(u)
	}
	return p.Host
}

func attachInfo(a registry.Attach) *AttachInfo {
	info := &AttachInfo{
		Platform:          a.Platform,
		TokenServiceHost:  tokenServiceHost(a.URL),
		DeviceToken:       registry.RedactToken(a.Token),
		P256DHFingerprint: fingerprint(a.P256DH),
		SigKeyFingerprint: fingerprint(a.SigKey),
		SigKeyKind:        sigKeyKind(a.SigKey),
		Name:              a.Name,
		Topic:             a.Topic,
		Legacy:            a.Legacy,
		Attached:          a.Attached.UTC(),
		TokenUpdated:      a.TokenUpdated.UTC(),
		Invalid:           a.Invalid,
		// The reason is the provider's answer, which the senders keep free of the token;
		// redact it anyway should one slip through.
		InvalidReason: strings.ReplaceAll(a.InvalidReason, a.Token, registry.RedactToken(a.Token)),
	}
	if !a.InvalidAt.IsZero() {
		at := a.InvalidAt.UTC()
		info.InvalidAt = &at
	}
	return info
}

func outboxInfo(n int, oldest, now time.Time) *OutboxInfo {
	info := &OutboxInfo{Depth: n}
	if n > 0 {
		stored := oldest.UTC()
		info.OldestStored = &stored
		info.OldestAgeSeconds = int64(max(now.Sub(oldest), 0) / time.Second)
	}
	return info
}

// terminalState is active or idle for a live session, else offline.
func terminalState(s *SessionInfo) string {
	if s == nil {
		return stateOffline
	}
	return s.State
}

// apiGetTerminal: GET /v1/terminals/{id}.
func (srv *Server) apiGetTerminal(w http.ResponseWriter, r *http.Request) {
	id, err := parseID(r.PathValue("id"))
	if err != nil {
		apiError(w, http.StatusBadRequest, "%v", err)
		return
	}
	t, err := srv.store.GetTerminal(r.Context(), id)
	if err != nil {
		srv.storeError(w, err)
		return
	}
	d := TerminalDetail{TerminalInfo: terminalInfo(t)}
	d.Session = srv.liveSession(id)
	d.State = terminalState(d.Session)
	a, ok, err := srv.attachOf(r.Context(), id)
	if err != nil {
		srv.storeError(w, err)
		return
	}
	if ok {
		d.Attach = attachInfo(a)
	}
	if ob := srv.pushCfg.Store; ob != nil {
		n, oldest, err := ob.Depth(r.Context(), id)
		if err != nil {
			srv.storeError(w, err)
			return
		}
		d.Outbox = outboxInfo(n, oldest, srv.cfg.Clock.Now())
	}
	last, err := srv.LastPush(r.Context(), id)
	if err != nil && !errors.Is(err, ErrAuditUnavailable) {
		srv.storeError(w, err)
		return
	}
	if last != nil {
		info := AuditInfo(*last)
		d.LastPush = &info
	}
	writeJSON(w, http.StatusOK, d)
}

// UserDevice is one terminal of a user in GET /v1/users/{dmrid}/terminals.
type UserDevice struct {
	ID   uint32 `json:"id"`
	Name string `json:"name,omitempty"`
	// State is active, idle or offline.
	State string `json:"state"`
	// Platform is the attach platform: fcm, apns or none.
	Platform      string `json:"platform"`
	AttachName    string `json:"attach_name,omitempty"`
	AttachInvalid bool   `json:"attach_invalid,omitempty"`
	// LastSeen is the last login or logout; Since is when the live session began.
	LastSeen *time.Time `json:"last_seen,omitempty"`
	Since    *time.Time `json:"since,omitempty"`
}

// UserDevices is the answer of GET /v1/users/{dmrid}/terminals.
type UserDevices struct {
	User      uint32       `json:"user"`
	Terminals []UserDevice `json:"terminals"`
}

// apiUserTerminals: GET /v1/users/{dmrid}/terminals. A user has at most 101 terminals, so the
// list is not paged.
func (srv *Server) apiUserTerminals(w http.ResponseWriter, r *http.Request) {
	user, err := parseID(r.PathValue("dmrid"))
	if err != nil {
		apiError(w, http.StatusBadRequest, "%v", err)
		return
	}
	ts, err := srv.store.UserTerminals(r.Context(), user)
	if err != nil {
		srv.storeError(w, err)
		return
	}
	if len(ts) == 0 {
		apiError(w, http.StatusNotFound, "user %d has no terminals", user)
		return
	}
	out := UserDevices{User: user, Terminals: make([]UserDevice, 0, len(ts))}
	for _, t := range ts {
		info := terminalInfo(t)
		dev := UserDevice{ID: t.ID, Name: t.Name, LastSeen: info.LastSeen, Platform: platformNone}
		s := srv.liveSession(t.ID)
		dev.State = terminalState(s)
		if s != nil {
			since := s.Since
			dev.Since = &since
		}
		a, ok, err := srv.attachOf(r.Context(), t.ID)
		if err != nil {
			srv.storeError(w, err)
			return
		}
		if ok {
			dev.Platform, dev.AttachName, dev.AttachInvalid = a.Platform, a.Name, a.Invalid
		}
		out.Terminals = append(out.Terminals, dev)
	}
	writeJSON(w, http.StatusOK, out)
}
