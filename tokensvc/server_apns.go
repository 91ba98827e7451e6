package tokensvc

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"sync"
	"time"
)

// parseP8 reads an APNs signing key: the .p8 file Apple lets a team download
// once, a PKCS#8 PEM "PRIVATE KEY" holding an EC P-256 key.
func parseP8(pemBytes []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("no PEM block found: want the .p8 file from Apple (-----BEGIN PRIVATE KEY-----)")
	}
	switch block.Type {
	case "PRIVATE KEY":
	case "EC PRIVATE KEY":
		return nil, errors.New("SEC 1 \"EC PRIVATE KEY\", want PKCS#8 \"PRIVATE KEY\" as Apple ships it (convert with: openssl pkcs8 -topk8 -nocrypt -in key.pem -out AuthKey.p8)")
	case "RSA PRIVATE KEY":
		return nil, errors.New("RSA key, want the EC P-256 .p8 key from Apple")
	case "ENCRYPTED PRIVATE KEY":
		return nil, errors.New("encrypted key, want the unencrypted .p8 key from Apple")
	default:
		return nil, fmt.Errorf("PEM block %q, want \"PRIVATE KEY\" (the .p8 file from Apple)", block.Type)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("not a PKCS#8 private key: %w", err)
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s key, want the EC P-256 .p8 key from Apple", keyTypeName(k))
	}
	if ec.Curve != elliptic.P256() {
		return nil, fmt.Errorf("EC key on curve %s, want P-256", ec.Curve.Params().Name)
	}
	return ec, nil
}

// keyTypeName names a private key's algorithm for error messages.
func keyTypeName(k any) string {
	switch k := k.(type) {
	case *rsa.PrivateKey:
		return "RSA"
	case *ecdsa.PrivateKey:
		return "EC " + k.Curve.Params().Name
	case ed25519.PrivateKey:
		return "Ed25519"
	default:
		return fmt.Sprintf("%T", k)
	}
}

// signProviderJWT makes an APNs provider token: a JWT with header
// {"alg":"ES256","kid":keyID} and claims {"iss":teamID,"iat":iat}, signed
// with ES256 (ECDSA P-256 over SHA-256, signature as r‖s, 32 bytes each,
// RFC 7518 §3.4).
func signProviderJWT(key *ecdsa.PrivateKey, keyID, teamID string, iat time.Time) (string, error) {
	header, err := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}{"ES256", keyID})
	if err != nil {
		return "", err
	}
	claims, err := json.Marshal(struct {
		Iss string `json:"iss"`
		Iat int64  `json:"iat"`
	}{teamID, iat.Unix()})
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	signingInput := enc.EncodeToString(header) + "." + enc.EncodeToString(claims)
	digest := sha256.Sum256([]byte(signingInput))
	r, s, err := ecdsa.Sign(rand.Reader, key, digest[:])
	if err != nil {
		return "", fmt.Errorf("sign APNs provider token: %w", err)
	}
	var sig [64]byte
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signingInput + "." + enc.EncodeToString(sig[:]), nil
}

// apnsSource signs and reuses the provider JWT of one apns app. Signing is
// local and fast, so callers take turns under mu instead of sharing a flight.
type apnsSource struct {
	// Static after construction.
	app         string
	key         *ecdsa.PrivateKey
	keyID       string
	teamID      string
	topic       string
	environment string
	window      time.Duration
	now         func() time.Time
	metrics     *metrics

	mu     sync.Mutex
	jwt    string    // guarded by mu; empty when none
	issued time.Time // guarded by mu; the JWT's iat
}

func (s *apnsSource) kind() string { return KindAPNs }

// validUntil reports until when the current JWT is handed out.
func (s *apnsSource) validUntil() (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issued.Add(s.window), s.jwt != ""
}

// credential returns the current JWT, signing a new one when there is none,
// when its window has passed, or when the clock went back before its iat (a
// JWT from the future is refused by Apple). A JWT is handed out for window
// after its iat, so no broker that honours expires uses one older than
// window, and two JWTs are never less than window apart.
func (s *apnsSource) credential(context.Context) (Credential, error) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.jwt == "" || now.Before(s.issued) || s.issued.Add(s.window).Sub(now) < minHandOut {
		iat := now.Truncate(time.Second)
		started := time.Now()
		tok, err := signProviderJWT(s.key, s.keyID, s.teamID, iat)
		s.metrics.mintDuration.WithLabelValues(s.app, KindAPNs).Observe(time.Since(started).Seconds())
		if err != nil {
			s.metrics.mintFailures.WithLabelValues(s.app, KindAPNs).Inc()
			return Credential{}, &upstreamError{reason: "cannot sign APNs provider token", err: err}
		}
		s.jwt, s.issued = tok, iat
	}
	return Credential{
		Type:        TypeAPNs,
		Topic:       s.topic,
		Token:       s.jwt,
		Expires:     remainingSeconds(s.issued.Add(s.window), now),
		Environment: s.environment,
	}, nil
}
