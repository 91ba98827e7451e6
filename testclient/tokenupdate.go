package testclient

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Signed background token updates (POST /v1/terminals/{id}/push-token on the broker's public
// listener): when the push provider hands the app a new device token while it has no session,
// the app signs the token with the key it registered as "sigkey" in TERMINAL_ATTACH and posts
// it. See broker.Server.PushTokenHandler for the contract.

// Signing-key kinds for GenerateSigningKey.
const (
	// SigningES256 is ECDSA P-256 with SHA-256: the one kind both iOS (Secure Enclave) and
	// Android (Keystore) keep in hardware.
	SigningES256 = "es256"
	// SigningEd25519 is Ed25519 (software keys on phones).
	SigningEd25519 = "ed25519"
)

// tokenUpdateContext is the first line of the signed message.
const tokenUpdateContext = "rewind-push-token-v1"

// maxTokenUpdateAnswer bounds how much of the broker's answer UpdatePushToken reads.
const maxTokenUpdateAnswer = 64 << 10

// TokenUpdate is the JSON body of a token update. Tests that need a malformed request build
// one from it by hand.
type TokenUpdate struct {
	Token     string `json:"token"`
	Timestamp int64  `json:"timestamp"` // Unix seconds
	Signature string `json:"signature"` // base64url without padding
}

// TokenUpdateMessage returns the bytes a token update signs:
// "rewind-push-token-v1\n<terminal>\n<timestamp>\n<token>", without a trailing newline.
func TokenUpdateMessage(terminal uint32, token string, timestamp int64) []byte {
	return []byte(tokenUpdateContext + "\n" + strconv.FormatUint(uint64(terminal), 10) + "\n" +
		strconv.FormatInt(timestamp, 10) + "\n" + token)
}

// GenerateSigningKey returns a fresh signing key of kind (SigningES256 or SigningEd25519) and
// its public half as AttachOptions.SigKey takes it: the 65-byte uncompressed P-256 point, or
// the 32-byte Ed25519 key.
func GenerateSigningKey(kind string) (crypto.Signer, []byte, error) {
	switch kind {
	case SigningES256:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, fmt.Errorf("testclient: signing key: %w", err)
		}
		pub, err := k.PublicKey.Bytes()
		if err != nil {
			return nil, nil, fmt.Errorf("testclient: signing key: %w", err)
		}
		return k, pub, nil
	case SigningEd25519:
		pub, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, nil, fmt.Errorf("testclient: signing key: %w", err)
		}
		return k, []byte(pub), nil
	}
	return nil, nil, fmt.Errorf("testclient: signing key kind %q: want %q or %q", kind, SigningES256, SigningEd25519)
}

// SignTokenUpdate returns the JSON body of a token update of terminal to token at ts (whole
// seconds), signed by signer: an ECDSA P-256 key signs ES256 and the signature is sent as
// 64 bytes r‖s (as CryptoKit gives it), an Ed25519 key signs the message itself. signer may be
// any crypto.Signer with such a public key (*ecdsa.PrivateKey, ed25519.PrivateKey, a key in
// hardware).
func SignTokenUpdate(signer crypto.Signer, terminal uint32, token string, ts time.Time) ([]byte, error) {
	msg := TokenUpdateMessage(terminal, token, ts.Unix())
	var sig []byte
	switch pub := signer.Public().(type) {
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() {
			return nil, fmt.Errorf("testclient: sign token update: ECDSA key on %s; want P-256", pub.Curve.Params().Name)
		}
		digest := sha256.Sum256(msg)
		der, err := signer.Sign(rand.Reader, digest[:], crypto.SHA256) // ASN.1 DER, per crypto.Signer
		if err != nil {
			return nil, fmt.Errorf("testclient: sign token update: %w", err)
		}
		if sig, err = rawECDSASignature(der); err != nil {
			return nil, fmt.Errorf("testclient: sign token update: %w", err)
		}
	case ed25519.PublicKey:
		var err error
		if sig, err = signer.Sign(rand.Reader, msg, crypto.Hash(0)); err != nil {
			return nil, fmt.Errorf("testclient: sign token update: %w", err)
		}
	default:
		return nil, fmt.Errorf("testclient: sign token update: %T keys are not supported; want ECDSA P-256 or Ed25519", pub)
	}
	return json.Marshal(TokenUpdate{Token: token, Timestamp: ts.Unix(), Signature: base64.RawURLEncoding.EncodeToString(sig)})
}

// rawECDSASignature converts an ASN.1 DER P-256 signature to r‖s, 32 bytes each.
func rawECDSASignature(der []byte) ([]byte, error) {
	var rs struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &rs)
	if err != nil || len(rest) != 0 || rs.R.Sign() <= 0 || rs.S.Sign() <= 0 || rs.R.BitLen() > 256 || rs.S.BitLen() > 256 {
		return nil, errors.New("signer returned a malformed ECDSA signature")
	}
	out := make([]byte, 64)
	rs.R.FillBytes(out[:32])
	rs.S.FillBytes(out[32:])
	return out, nil
}

// TokenUpdateError is a token update the broker refused.
type TokenUpdateError struct {
	// Status is the HTTP status: 400 malformed, 401 stale/replayed/bad signature, 403 no
	// signing key, 404 unknown terminal, 429 rate limited, 503 push disabled, ...
	Status int
	// Reason is the broker's "error" text (or the start of the body if it was not JSON).
	Reason string
	// RetryAfter is the Retry-After of a 429, zero otherwise.
	RetryAfter time.Duration
}

func (e *TokenUpdateError) Error() string {
	s := fmt.Sprintf("testclient: push-token update refused: %d %s: %s", e.Status, http.StatusText(e.Status), e.Reason)
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(" (retry after %s)", e.RetryAfter)
	}
	return s
}

// UpdatePushToken posts body (from SignTokenUpdate) as the token update of terminal to the
// broker's public listener at baseURL ("http://host:port" or "https://…"; the WebSocket
// "ws(s)://host:port/rewind" URL is accepted too). A refusal is returned as a
// *TokenUpdateError carrying the status and the broker's reason.
func UpdatePushToken(ctx context.Context, hc *http.Client, baseURL string, terminal uint32, body []byte) error {
	if hc == nil {
		hc = http.DefaultClient
	}
	base := strings.TrimSuffix(strings.TrimSuffix(baseURL, "/"), "/rewind")
	if rest, ok := strings.CutPrefix(base, "ws"); ok { // ws:// → http://, wss:// → https://
		base = "http" + rest
	}
	url := fmt.Sprintf("%s/v1/terminals/%d/push-token", base, terminal)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("testclient: push-token update: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("testclient: push-token update: %w", err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenUpdateAnswer))
	if err != nil {
		return fmt.Errorf("testclient: push-token update: reading the answer: %w", err)
	}
	if resp.StatusCode == http.StatusOK {
		var ok struct {
			Terminal uint32 `json:"terminal"`
			Updated  bool   `json:"updated"`
		}
		if err := json.Unmarshal(answer, &ok); err != nil || !ok.Updated || ok.Terminal != terminal {
			return fmt.Errorf("%w: push-token update answered 200 with %.200q", ErrBrokerProtocol, answer)
		}
		return nil
	}
	e := &TokenUpdateError{Status: resp.StatusCode}
	var refusal struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(answer, &refusal) == nil && refusal.Error != "" {
		e.Reason = refusal.Error
	} else {
		e.Reason = strings.TrimSpace(string(answer[:min(len(answer), 200)]))
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	return e
}
