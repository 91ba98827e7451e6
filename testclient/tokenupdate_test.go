package testclient_test

import (
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
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rewind-broker/rewind/testclient"
)

func TestTokenUpdateMessage(t *testing.T) {
	got := string(testclient.TokenUpdateMessage(262000101, "fcm:tok-1", 1795000000))
	want := "rewind-push-token-v1\n262000101\n1795000000\nfcm:tok-1"
	if got != want {
		t.Fatalf("message %q, want %q", got, want)
	}
}

func decodeUpdate(t *testing.T, body []byte) (testclient.TokenUpdate, []byte) {
	t.Helper()
	var u testclient.TokenUpdate
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&u); err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	if strings.ContainsAny(u.Signature, "=+/") {
		t.Fatalf("signature %q is not unpadded base64url", u.Signature)
	}
	sig, err := base64.RawURLEncoding.DecodeString(u.Signature)
	if err != nil {
		t.Fatal(err)
	}
	return u, sig
}

// hardwareKey is a crypto.Signer that is not one of the standard library's key types, as a
// key in a secure element would be.
type hardwareKey struct{ k crypto.Signer }

func (h hardwareKey) Public() crypto.PublicKey { return h.k.Public() }
func (h hardwareKey) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	return h.k.Sign(r, d, o)
}

func TestSignTokenUpdate(t *testing.T) {
	ts := time.Unix(1795000000, 900_000_000) // fractions of a second are dropped
	const id, token = 262000101, "device-token-123"
	msg := testclient.TokenUpdateMessage(id, token, 1795000000)
	digest := sha256.Sum256(msg)

	for _, kind := range []string{testclient.SigningES256, testclient.SigningEd25519} {
		key, pub, err := testclient.GenerateSigningKey(kind)
		if err != nil {
			t.Fatal(err)
		}
		for _, signer := range []crypto.Signer{key, hardwareKey{key}} {
			body, err := testclient.SignTokenUpdate(signer, id, token, ts)
			if err != nil {
				t.Fatalf("%s %T: %v", kind, signer, err)
			}
			u, sig := decodeUpdate(t, body)
			if u.Token != token || u.Timestamp != 1795000000 {
				t.Fatalf("%s: body %+v", kind, u)
			}
			switch kind {
			case testclient.SigningES256:
				if len(pub) != 65 || pub[0] != 4 || len(sig) != 64 {
					t.Fatalf("es256: public key %d bytes, signature %d bytes", len(pub), len(sig))
				}
				pk, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), pub)
				if err != nil {
					t.Fatal(err)
				}
				if !ecdsa.Verify(pk, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
					t.Fatal("es256: r||s signature does not verify")
				}
			case testclient.SigningEd25519:
				if len(pub) != 32 || len(sig) != 64 || !ed25519.Verify(pub, msg, sig) {
					t.Fatalf("ed25519: public key %d bytes, signature %d bytes, or it does not verify", len(pub), len(sig))
				}
			}
		}
	}
}

// smallRS returns a fixed DER signature whose r and s are tiny, as a signer may return: r||s
// must still be 32 + 32 bytes.
type smallRS struct{ crypto.Signer }

func (s smallRS) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return asn1.Marshal(struct{ R, S *big.Int }{big.NewInt(1), big.NewInt(0x0203)})
}

func TestSignTokenUpdatePadsRS(t *testing.T) {
	key, _, _ := testclient.GenerateSigningKey(testclient.SigningES256)
	body, err := testclient.SignTokenUpdate(smallRS{key}, 1, "t", time.Unix(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	_, sig := decodeUpdate(t, body)
	want := make([]byte, 64)
	want[31], want[62], want[63] = 1, 2, 3
	if string(sig) != string(want) {
		t.Fatalf("r||s %x, want %x", sig, want)
	}
}

func TestSignTokenUpdateRefusesOtherKeys(t *testing.T) {
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := testclient.SignTokenUpdate(p384, 1, "t", time.Now()); err == nil {
		t.Fatal("a P-384 key signed a token update")
	}
	if _, _, err := testclient.GenerateSigningKey("rs256"); err == nil {
		t.Fatal("GenerateSigningKey accepted rs256")
	}
}

func TestUpdatePushToken(t *testing.T) {
	var gotPath, gotMethod, gotType, gotBody string
	status, answer, retryAfter := http.StatusOK, `{"terminal": 262000101, "updated": true}`, ""
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		gotPath, gotMethod, gotType, gotBody = r.URL.Path, r.Method, r.Header.Get("Content-Type"), string(b)
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.WriteHeader(status)
		io.WriteString(w, answer)
	}))
	defer srv.Close()
	ctx := context.Background()
	body := []byte(`{"token":"t","timestamp":1,"signature":"AA"}`)

	for _, base := range []string{srv.URL, srv.URL + "/", "ws" + strings.TrimPrefix(srv.URL, "http") + "/rewind"} {
		if err := testclient.UpdatePushToken(ctx, srv.Client(), base, 262000101, body); err != nil {
			t.Fatalf("%s: %v", base, err)
		}
		if gotPath != "/v1/terminals/262000101/push-token" || gotMethod != "POST" || gotType != "application/json" || gotBody != string(body) {
			t.Fatalf("%s: request %s %s %q %s", base, gotMethod, gotPath, gotType, gotBody)
		}
	}

	answer = `{"terminal": 262000102, "updated": true}`
	if err := testclient.UpdatePushToken(ctx, srv.Client(), srv.URL, 262000101, body); !errors.Is(err, testclient.ErrBrokerProtocol) {
		t.Fatalf("200 about another terminal: %v", err)
	}

	for _, tc := range []struct {
		status     int
		answer     string
		retryAfter string
		reason     string
		wait       time.Duration
	}{
		{401, `{"error": "replayed"}`, "", "replayed", 0},
		{403, `{"error": "no signing key registered; re-attach with sigkey"}`, "", "no signing key registered; re-attach with sigkey", 0},
		{429, `{"error": "too many token updates; retry later"}`, "42", "too many token updates; retry later", 42 * time.Second},
		{502, "bad gateway\n", "", "bad gateway", 0},
	} {
		status, answer, retryAfter = tc.status, tc.answer, tc.retryAfter
		err := testclient.UpdatePushToken(ctx, srv.Client(), srv.URL, 262000101, body)
		var te *testclient.TokenUpdateError
		if !errors.As(err, &te) || te.Status != tc.status || te.Reason != tc.reason || te.RetryAfter != tc.wait {
			t.Fatalf("%d: %#v", tc.status, err)
		}
		if !strings.Contains(err.Error(), tc.reason) || !strings.Contains(err.Error(), http.StatusText(tc.status)) {
			t.Fatalf("error text %q lacks the status or reason", err)
		}
	}
}

// A phone's background token refresh: sign the new token with the key registered as sigkey and
// post it to the broker's public listener.
func ExampleUpdatePushToken() {
	key, sigKey, err := testclient.GenerateSigningKey(testclient.SigningES256)
	if err != nil {
		panic(err)
	}
	_ = testclient.AttachOptions{SigKey: sigKey} // registered once, in TERMINAL_ATTACH

	// Later, in the background: the provider gave the app a new device token.
	body, err := testclient.SignTokenUpdate(key, 262000101, "new-device-token", time.Now())
	if err != nil {
		panic(err)
	}
	err = testclient.UpdatePushToken(context.Background(), http.DefaultClient, "https://broker.example.net", 262000101, body)
	var refused *testclient.TokenUpdateError
	if errors.As(err, &refused) && refused.Status == http.StatusForbidden {
		fmt.Println("no sigkey registered: re-attach with one at the next session")
	}
}
