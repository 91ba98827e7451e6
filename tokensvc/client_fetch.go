package tokensvc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// ErrTokenService is wrapped by every failed fetch: the service could not be
// reached, refused the request or gave an invalid answer. The message names
// the redacted URL and the reason, never the query string or a token.
var ErrTokenService = errors.New("token service request failed")

// Fetch outcomes, passed to ClientConfig.OnFetch; a closed, low-cardinality
// set for a metrics label.
const (
	OutcomeOK       = "ok"
	OutcomeHTTP4xx  = "http_4xx"
	OutcomeHTTP5xx  = "http_5xx"
	OutcomeNetwork  = "network"
	OutcomeInvalid  = "invalid"
	outcomeCanceled = "" // the client is closing: not reported
)

// Limits on a token-service response.
const (
	// MaxResponseBytes bounds a response body: a credential is well under
	// 4 KiB, so 64 KiB leaves room for any real one and stops a broken or
	// hostile service from filling the broker's memory.
	MaxResponseBytes = 64 << 10
	// MaxCredentialLifetime clamps "expires": FCM and APNs tokens live an
	// hour, so a day is generous, and a longer value is a bug we should not
	// trust until the next restart.
	MaxCredentialLifetime = 24 * time.Hour
	// maxErrorBodyBytes is how much of a non-200 body is read for its error
	// code.
	maxErrorBodyBytes = 4 << 10
)

// errorCodePattern is what a non-200 body's "error" code must look like to
// be quoted in our error: the reference server's codes. Free text ("reason")
// is never quoted: a third-party service might echo the URL's secrets.
var errorCodePattern = regexp.MustCompile(`^[a-z0-9_]{1,64}$`)

// fetchResult is the outcome of one HTTP request to a token service.
type fetchResult struct {
	cred     Credential    // valid when err is nil; Expires clamped
	lifetime time.Duration // how long cred may be used, from the request's start
	outcome  string        // one of the Outcome constants
	class    failureClass  // backoff floor when err is not nil
	wait     time.Duration // Retry-After, when the service sent one on 429/503
	err      error         // wraps ErrTokenService
}

// fetch sends one GET to u and validates the answer.
func (c *Client) fetch(ctx context.Context, u *url.URL) fetchResult {
	redacted := shortRedact(u.String())
	fail := func(outcome string, class failureClass, format string, args ...any) fetchResult {
		return fetchResult{
			outcome: outcome,
			class:   class,
			err:     fmt.Errorf("%w: GET %s: %s", ErrTokenService, redacted, fmt.Sprintf(format, args...)),
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fail(OutcomeInvalid, persistentFailure, "cannot build request")
	}
	req.Header.Set("Accept", "application/json")
	if key, ok := c.bearerKey(u); ok {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// *url.Error quotes the full URL, query included: keep only its cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if c.base.Err() != nil {
			err = ErrClientClosed
		}
		r := fetchResult{outcome: OutcomeNetwork, class: transientFailure,
			err: fmt.Errorf("%w: GET %s: %w", ErrTokenService, redacted, err)}
		if c.base.Err() != nil {
			r.outcome = outcomeCanceled
		}
		return r
	}
	defer resp.Body.Close()

	if resp.StatusCode != http.StatusOK {
		outcome, class := OutcomeInvalid, persistentFailure
		switch {
		case resp.StatusCode >= 500:
			outcome, class = OutcomeHTTP5xx, transientFailure
		case resp.StatusCode >= 400:
			outcome = OutcomeHTTP4xx
		}
		reason := fmt.Sprintf("HTTP %d", resp.StatusCode)
		if resp.StatusCode >= 300 && resp.StatusCode < 400 {
			reason += " redirect; token services must answer directly, redirects are not followed"
		}
		var body ErrorResponse
		if b, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBodyBytes)); err == nil &&
			json.Unmarshal(b, &body) == nil && errorCodePattern.MatchString(body.Error) {
			reason += " (" + body.Error + ")"
		}
		r := fail(outcome, class, "%s", reason)
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
			r.wait = retryAfter(resp.Header.Get("Retry-After"), c.clock.Now())
		}
		return r
	}

	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil ||
		(mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return fail(OutcomeInvalid, persistentFailure, "Content-Type %q, want application/json", shortText(resp.Header.Get("Content-Type")))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return fail(OutcomeNetwork, transientFailure, "reading response: %v", err)
	}
	if len(body) > MaxResponseBytes {
		return fail(OutcomeInvalid, persistentFailure, "response body exceeds %d bytes", MaxResponseBytes)
	}
	var cred Credential
	if err := json.Unmarshal(body, &cred); err != nil {
		return fail(OutcomeInvalid, persistentFailure, "response is not a credential JSON object: %s", jsonErrorKind(err))
	}
	if reason := validateCredential(&cred); reason != "" {
		return fail(OutcomeInvalid, persistentFailure, "invalid credential: %s", reason)
	}
	return fetchResult{cred: cred, lifetime: time.Duration(cred.Expires) * time.Second, outcome: OutcomeOK}
}

// jsonErrorKind describes a JSON decoding error without quoting the input,
// which may hold a token.
func jsonErrorKind(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q has the wrong JSON type (%s)", te.Field, te.Value)
	default:
		return "malformed JSON"
	}
}

// validateCredential checks a decoded credential and clamps its Expires to
// MaxCredentialLifetime. It returns why the credential is unusable, or "".
func validateCredential(c *Credential) string {
	switch c.Type {
	case TypeFCM:
		if c.Project == "" {
			return `FCM credential without "project"`
		}
	case TypeAPNs:
		if c.Topic == "" {
			return `APNs credential without "topic"`
		}
		if c.Environment != EnvironmentProduction && c.Environment != EnvironmentDevelopment {
			return fmt.Sprintf(`APNs "environment" is %q, want %q or %q`, shortText(c.Environment), EnvironmentProduction, EnvironmentDevelopment)
		}
	default:
		return fmt.Sprintf(`"type" is %q, want %q or %q`, shortText(c.Type), TypeFCM, TypeAPNs)
	}
	if c.Token == "" {
		return `"token" is missing or empty`
	}
	for i := 0; i < len(c.Token); i++ {
		// It becomes an Authorization header: visible ASCII only.
		if b := c.Token[i]; b <= 0x20 || b >= 0x7f {
			return `"token" holds characters not allowed in an HTTP header`
		}
	}
	if c.Expires <= 0 {
		return fmt.Sprintf(`"expires" is %d, want a positive number of seconds`, c.Expires)
	}
	c.Expires = min(c.Expires, int64(MaxCredentialLifetime/time.Second))
	return ""
}

// bearerKey returns the key configured for u's host: the key for "host:port"
// if there is one, else the key for the host name.
func (c *Client) bearerKey(u *url.URL) (string, bool) {
	if len(c.bearer) == 0 {
		return "", false
	}
	if k, ok := c.bearer[strings.ToLower(u.Host)]; ok {
		return k, true
	}
	k, ok := c.bearer[normalizeHost(u.Hostname())]
	return k, ok
}

// shortText makes text from a response safe to quote in an error: control
// characters dropped, at most 64 bytes.
func shortText(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return -1
		}
		return r
	}, s)
	if len(s) > 64 {
		s = strings.ToValidUTF8(s[:64], "") + "…"
	}
	return s
}
