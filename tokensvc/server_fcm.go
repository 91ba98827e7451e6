package tokensvc

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	"golang.org/x/oauth2/jwt"
	"golang.org/x/sync/singleflight"
)

// FCMScope is the OAuth 2.0 scope of FCM HTTP v1 sends; it is the only scope
// the service asks for.
const FCMScope = "https://www.googleapis.com/auth/firebase.messaging"

const (
	// DefaultFCMRefreshMargin is how long before a Google access token
	// expires the service stops handing it out and mints the next one.
	// Brokers are told the token expires at that point, so a broker that uses
	// its token until then still has 5 minutes for a slow push and for clock
	// differences. Capped at half the token's lifetime.
	DefaultFCMRefreshMargin = 5 * time.Minute
	// mintTimeout bounds one call to Google's token endpoint. A broker waits
	// for it, and its own request to us has a deadline of about this size.
	mintTimeout = 20 * time.Second
	// minHandOut is the least validity a credential must have left to be
	// handed out; below it a new one is made.
	minHandOut = time.Second
	// maxReasonLen bounds upstream text copied into a 502 reason.
	maxReasonLen = 200
)

// serviceAccount is the part of a Google service-account key file that is
// checked at start; golang.org/x/oauth2/google reads the same file again.
type serviceAccount struct {
	Type        string `json:"type"`
	ProjectID   string `json:"project_id"`
	PrivateKey  string `json:"private_key"`
	ClientEmail string `json:"client_email"`
	TokenURI    string `json:"token_uri"`
}

// parseServiceAccount checks a service-account JSON key and returns the
// project it sends for and the JWT configuration that mints its tokens.
func parseServiceAccount(data []byte, projectOverride string) (string, *jwt.Config, error) {
	var sa serviceAccount
	if err := json.Unmarshal(data, &sa); err != nil {
		return "", nil, fmt.Errorf("service account is not valid JSON: %w", err)
	}
	if sa.Type != "service_account" {
		return "", nil, fmt.Errorf("service account JSON has type %q, want \"service_account\" (download a key from Firebase console → Project settings → Service accounts)", sa.Type)
	}
	if sa.ClientEmail == "" {
		return "", nil, errors.New("service account JSON has no client_email")
	}
	if sa.PrivateKey == "" {
		return "", nil, errors.New("service account JSON has no private_key")
	}
	if err := checkRSAKey([]byte(sa.PrivateKey)); err != nil {
		return "", nil, fmt.Errorf("service account private_key: %w", err)
	}
	project := sa.ProjectID
	if projectOverride != "" {
		project = projectOverride
	}
	if project == "" {
		return "", nil, errors.New("service account JSON has no project_id (set project_id in the app's config)")
	}
	conf, err := google.JWTConfigFromJSON(data, FCMScope)
	if err != nil {
		return "", nil, fmt.Errorf("service account: %w", err)
	}
	return project, conf, nil
}

// checkRSAKey verifies that PEM holds an RSA private key, the only kind
// Google issues for service accounts.
func checkRSAKey(pemBytes []byte) error {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return errors.New("no PEM block found")
	}
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		if _, ok := k.(*rsa.PrivateKey); !ok {
			return fmt.Errorf("%s key, want an RSA key", keyTypeName(k))
		}
		return nil
	}
	if _, err := x509.ParsePKCS1PrivateKey(block.Bytes); err != nil {
		return fmt.Errorf("not an RSA private key: %w", err)
	}
	return nil
}

// fcmToken is a cached Google access token.
type fcmToken struct {
	access       string
	expiry       time.Time // when Google stops accepting it
	handOutUntil time.Time // expiry minus the refresh margin
}

// fcmSource mints and caches the access token of one fcm app. Concurrent
// callers share one mint; a failed mint caches nothing.
type fcmSource struct {
	// Static after construction.
	app     string
	project string
	conf    *jwt.Config
	client  *http.Client
	now     func() time.Time
	base    context.Context // cancelled by Server.Close
	margin  time.Duration
	metrics *metrics

	flight singleflight.Group

	mu  sync.Mutex
	cur fcmToken // guarded by mu; zero when none
}

func (s *fcmSource) kind() string { return KindFCM }

// validUntil reports until when the cached token is handed out.
func (s *fcmSource) validUntil() (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur.handOutUntil, s.cur.access != ""
}

// cached returns the cached token if it may still be handed out at now.
func (s *fcmSource) cached(now time.Time) (fcmToken, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur.access == "" || s.cur.handOutUntil.Sub(now) < minHandOut {
		return fcmToken{}, false
	}
	return s.cur, true
}

// credential returns the app's credential, minting a token when none is
// cached. ctx bounds only this caller's wait: the mint itself runs on the
// server's context so that one impatient broker does not fail the others.
func (s *fcmSource) credential(ctx context.Context) (Credential, error) {
	tok, ok := s.cached(s.now())
	if !ok {
		ch := s.flight.DoChan("mint", func() (any, error) {
			if tok, ok := s.cached(s.now()); ok {
				return tok, nil
			}
			return s.mint()
		})
		select {
		case res := <-ch:
			if res.Err != nil {
				return Credential{}, res.Err
			}
			tok = res.Val.(fcmToken)
		case <-ctx.Done():
			return Credential{}, ctx.Err()
		}
	}
	return Credential{
		Type:    TypeFCM,
		Project: s.project,
		Token:   tok.access,
		Expires: remainingSeconds(tok.handOutUntil, s.now()),
	}, nil
}

// mint asks Google's token endpoint for a new access token and caches it.
func (s *fcmSource) mint() (fcmToken, error) {
	ctx, cancel := context.WithTimeout(s.base, mintTimeout)
	defer cancel()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, s.client)
	issuedAt := s.now()
	started := time.Now()
	tok, err := s.conf.TokenSource(ctx).Token()
	s.metrics.mintDuration.WithLabelValues(s.app, KindFCM).Observe(time.Since(started).Seconds())
	if err != nil {
		s.metrics.mintFailures.WithLabelValues(s.app, KindFCM).Inc()
		return fcmToken{}, googleError(ctx, err)
	}
	lifetime, ok := tokenLifetime(tok)
	if tok.AccessToken == "" || !ok {
		s.metrics.mintFailures.WithLabelValues(s.app, KindFCM).Inc()
		return fcmToken{}, &upstreamError{reason: "Google token endpoint answered without access_token or expires_in"}
	}
	margin := min(s.margin, lifetime/2)
	t := fcmToken{
		access:       tok.AccessToken,
		expiry:       issuedAt.Add(lifetime),
		handOutUntil: issuedAt.Add(lifetime - margin),
	}
	if t.handOutUntil.Sub(s.now()) < minHandOut {
		s.metrics.mintFailures.WithLabelValues(s.app, KindFCM).Inc()
		return fcmToken{}, &upstreamError{reason: fmt.Sprintf("Google token endpoint answered a token that expires in %v", lifetime)}
	}
	s.mu.Lock()
	s.cur = t
	s.mu.Unlock()
	return t, nil
}

// tokenLifetime reads expires_in as Google sent it. x/oauth2 turns it into an
// Expiry on the wall clock; the raw value keeps the service's own clock (which
// tests inject) the only clock that matters.
func tokenLifetime(tok *oauth2.Token) (time.Duration, bool) {
	switch v := tok.Extra("expires_in").(type) {
	case float64:
		if v > 0 {
			return time.Duration(v * float64(time.Second)), true
		}
	case string:
		if d, err := time.ParseDuration(v + "s"); err == nil && d > 0 {
			return d, true
		}
	}
	if !tok.Expiry.IsZero() {
		if d := time.Until(tok.Expiry); d > 0 {
			return d, true
		}
	}
	return 0, false
}

// upstreamError is a failed mint; reason is safe to show to brokers.
type upstreamError struct {
	reason string
	err    error
}

func (e *upstreamError) Error() string {
	if e.err != nil {
		return e.reason + ": " + e.err.Error()
	}
	return e.reason
}

func (e *upstreamError) Unwrap() error { return e.err }

// googleError turns a failed token request into a reason a vendor can act on.
func googleError(ctx context.Context, err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		var body struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		_ = json.Unmarshal(re.Body, &body)
		reason := fmt.Sprintf("Google token endpoint answered HTTP %d", status)
		if body.Error != "" {
			reason += ": " + printable(body.Error)
			if body.Description != "" {
				reason += " (" + printable(body.Description) + ")"
			}
		}
		if body.Error == "invalid_grant" {
			reason += "; the service-account key may be revoked or deleted, or this host's clock is wrong"
		}
		return &upstreamError{reason: reason, err: err}
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			return &upstreamError{reason: fmt.Sprintf("Google token endpoint did not answer within %v", mintTimeout), err: err}
		}
		return &upstreamError{reason: "the token service is shutting down", err: err}
	}
	return &upstreamError{reason: "cannot reach Google token endpoint: " + printable(err.Error()), err: err}
}

// printable shortens upstream text and drops control characters.
func printable(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return -1
	}, s)
	if len(s) > maxReasonLen {
		s = s[:maxReasonLen] + "…"
	}
	return s
}

// remainingSeconds is until-now in whole seconds, never negative.
func remainingSeconds(until, now time.Time) int64 {
	d := until.Sub(now)
	if d < 0 {
		return 0
	}
	return int64(d / time.Second)
}
