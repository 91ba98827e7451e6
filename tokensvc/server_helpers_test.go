package tokensvc

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is an injected clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fakeGoogle is an in-process OAuth 2.0 token endpoint that checks the JWT
// bearer assertion the way Google does: RS256 signature by the service
// account's key, iss, scope, aud and times.
type fakeGoogle struct {
	t      *testing.T
	srv    *httptest.Server
	key    *rsa.PrivateKey
	email  string
	mints  atomic.Int64 // token requests received
	issued atomic.Int64 // tokens handed out

	mu        sync.Mutex
	status    int    // guarded by mu; 0 or 200 means success
	errBody   string // guarded by mu
	expiresIn int    // guarded by mu
	gate      chan struct{}
}

func newFakeGoogle(t *testing.T) *fakeGoogle {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	g := &fakeGoogle{t: t, key: key, email: "firebase-adminsdk-x1y2z@mydmrapp-jaso42.iam.gserviceaccount.com", expiresIn: 3600}
	g.srv = httptest.NewTLSServer(http.HandlerFunc(g.serveToken))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *fakeGoogle) tokenURI() string { return g.srv.URL + "/token" }

// fail makes the endpoint answer status with body until fail(0, "").
func (g *fakeGoogle) fail(status int, body string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.status, g.errBody = status, body
}

// serviceAccountJSON is a service-account key file as the Firebase console
// hands it out, pointing at this endpoint.
func (g *fakeGoogle) serviceAccountJSON() []byte {
	der, err := x509.MarshalPKCS8PrivateKey(g.key)
	if err != nil {
		g.t.Fatal(err)
	}
	b, err := json.MarshalIndent(map[string]string{
		"type":                        "service_account",
		"project_id":                  "mydmrapp-jaso42",
		"private_key_id":              "0123456789abcdef0123456789abcdef01234567",
		"private_key":                 string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":                g.email,
		"client_id":                   "109876543210987654321",
		"auth_uri":                    "https://accounts.google.com/o/oauth2/auth",
		"token_uri":                   g.tokenURI(),
		"auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
	}, "", "  ")
	if err != nil {
		g.t.Fatal(err)
	}
	return b
}

func (g *fakeGoogle) serveToken(w http.ResponseWriter, r *http.Request) {
	g.mints.Add(1)
	g.mu.Lock()
	status, errBody, expiresIn, gate := g.status, g.errBody, g.expiresIn, g.gate
	g.mu.Unlock()
	if gate != nil {
		<-gate
	}
	if err := g.checkRequest(r); err != nil {
		g.t.Errorf("fake Google: %v", err)
		http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
		return
	}
	if status != 0 && status != http.StatusOK {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, errBody)
		return
	}
	n := g.issued.Add(1)
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"access_token":"ya29.fake-token-%d","expires_in":%d,"token_type":"Bearer"}`, n, expiresIn)
}

// checkRequest verifies the JWT bearer grant (RFC 7523) as Google would.
func (g *fakeGoogle) checkRequest(r *http.Request) error {
	if r.Method != http.MethodPost || r.URL.Path != "/token" {
		return fmt.Errorf("got %s %s, want POST /token", r.Method, r.URL.Path)
	}
	if err := r.ParseForm(); err != nil {
		return err
	}
	if gt := r.PostForm.Get("grant_type"); gt != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		return fmt.Errorf("grant_type %q", gt)
	}
	parts := strings.Split(r.PostForm.Get("assertion"), ".")
	if len(parts) != 3 {
		return fmt.Errorf("assertion has %d parts", len(parts))
	}
	var header struct{ Alg, Typ, Kid string }
	if err := decodeSegment(parts[0], &header); err != nil {
		return err
	}
	if header.Alg != "RS256" {
		return fmt.Errorf("alg %q, want RS256", header.Alg)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return err
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&g.key.PublicKey, crypto.SHA256, digest[:], sig); err != nil {
		return fmt.Errorf("assertion signature: %w", err)
	}
	var claims struct {
		Iss, Scope, Aud string
		Iat, Exp        int64
	}
	if err := decodeSegment(parts[1], &claims); err != nil {
		return err
	}
	switch {
	case claims.Iss != g.email:
		return fmt.Errorf("iss %q, want %q", claims.Iss, g.email)
	case claims.Scope != FCMScope:
		return fmt.Errorf("scope %q, want %q", claims.Scope, FCMScope)
	case claims.Aud != g.tokenURI():
		return fmt.Errorf("aud %q, want %q", claims.Aud, g.tokenURI())
	case claims.Exp <= claims.Iat || claims.Exp-claims.Iat > 3600:
		return fmt.Errorf("iat %d exp %d: lifetime must be in (0, 1h]", claims.Iat, claims.Exp)
	case time.Since(time.Unix(claims.Iat, 0)).Abs() > 5*time.Minute:
		return fmt.Errorf("iat %d is far from now", claims.Iat)
	}
	return nil
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// newP8 returns a fresh APNs key as Apple ships it (PKCS#8 PEM, P-256).
func newP8(t *testing.T) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// verifyAPNsJWT checks an ES256 provider token against pub and returns its
// header and claims.
func verifyAPNsJWT(t *testing.T, tok string, pub *ecdsa.PublicKey) (kid, iss string, iat int64) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("JWT has %d parts", len(parts))
	}
	var header map[string]any
	if err := decodeSegment(parts[0], &header); err != nil {
		t.Fatal(err)
	}
	if header["alg"] != "ES256" || len(header) != 2 {
		t.Fatalf("header %v, want exactly alg ES256 and kid", header)
	}
	var claims map[string]any
	if err := decodeSegment(parts[1], &claims); err != nil {
		t.Fatal(err)
	}
	if len(claims) != 2 {
		t.Fatalf("claims %v, want exactly iss and iat", claims)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		t.Fatalf("signature: %d bytes, %v; want 64 bytes r||s", len(sig), err)
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	if !ecdsa.Verify(pub, digest[:], r, s) {
		t.Fatal("ES256 signature does not verify with the .p8 public key")
	}
	return header["kid"].(string), claims["iss"].(string), int64(claims["iat"].(float64))
}

// testEnv is a token service under test on real loopback HTTP.
type testEnv struct {
	t      *testing.T
	srv    *Server
	ts     *httptest.Server
	clock  *fakeClock
	logs   *syncBuffer
	dir    string
	google *fakeGoogle
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// files written into the config directory before the config is loaded.
type files map[string]string

// newTestEnv writes the files and the config into a temp dir, loads it like
// cmd/tokensvc does and serves it on loopback.
// Wraps, if given, wrap the handler on the listener.
func newTestEnv(t *testing.T, g *fakeGoogle, config string, fs files, env map[string]string, wraps ...func(http.Handler) http.Handler) *testEnv {
	t.Helper()
	e := &testEnv{t: t, clock: newFakeClock(), logs: &syncBuffer{}, dir: t.TempDir(), google: g}
	srv, err := e.build(config, fs, env)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	var h http.Handler = srv
	for _, w := range wraps {
		h = w(h)
	}
	e.ts = httptest.NewServer(h)
	t.Cleanup(func() {
		e.ts.Close()
		srv.Close()
	})
	return e
}

func (e *testEnv) build(config string, fs files, env map[string]string) (*Server, error) {
	for name, content := range fs {
		if err := os.WriteFile(filepath.Join(e.dir, name), []byte(content), 0o600); err != nil {
			e.t.Fatal(err)
		}
	}
	path := filepath.Join(e.dir, "config.json")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		e.t.Fatal(err)
	}
	cfg, err := LoadServerConfig(path)
	if err != nil {
		return nil, err
	}
	opts := ServerOptions{
		Logger: slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:    e.clock.Now,
		Getenv: func(k string) string { return env[k] },
	}
	if e.google != nil {
		opts.HTTPClient = e.google.srv.Client()
	}
	return NewServer(cfg, opts)
}

// get fetches path from the service with optional headers.
func (e *testEnv) get(path string, header ...string) (int, http.Header, []byte) {
	e.t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, e.ts.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, body
}

// credential fetches path and expects a 200 Credential.
func (e *testEnv) credential(path string, header ...string) Credential {
	e.t.Helper()
	status, h, body := e.get(path, header...)
	if status != http.StatusOK {
		e.t.Fatalf("GET %s: %d %s", path, status, body)
	}
	if ct := h.Get("Content-Type"); ct != "application/json" {
		e.t.Fatalf("Content-Type %q", ct)
	}
	var c Credential
	if err := json.Unmarshal(body, &c); err != nil {
		e.t.Fatal(err)
	}
	return c
}

// refused fetches path and expects status with a JSON error.
func (e *testEnv) refused(path string, status int, header ...string) (ErrorResponse, http.Header) {
	e.t.Helper()
	got, h, body := e.get(path, header...)
	if got != status {
		e.t.Fatalf("GET %s: status %d %s, want %d", path, got, body, status)
	}
	var er ErrorResponse
	if err := json.Unmarshal(body, &er); err != nil {
		e.t.Fatalf("error body %q: %v", body, err)
	}
	if er.Error == "" || er.Reason == "" {
		e.t.Fatalf("error body %q lacks error or reason", body)
	}
	return er, h
}

// metric scrapes /metrics and returns the value of the sample whose line
// starts with series (name{labels}), or -1 when absent.
func (e *testEnv) metric(series string) float64 {
	e.t.Helper()
	status, _, body := e.get("/metrics")
	if status != http.StatusOK {
		e.t.Fatalf("/metrics: %d", status)
	}
	for line := range strings.SplitSeq(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			var v float64
			if _, err := fmt.Sscan(rest, &v); err != nil {
				e.t.Fatalf("metric line %q: %v", line, err)
			}
			return v
		}
	}
	return -1
}

// fcmConfig is a one-app FCM config with an optional auth block.
func fcmConfig(auth string) string {
	if auth == "" {
		auth = "null"
	}
	return `{"auth": ` + auth + `, "apps": [{"name": "mydmrapp", "kind": "fcm", "service_account_file": "sa.json"}]}`
}

// url builds a path with query parameters.
func withQuery(path string, kv ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	return path + "?" + q.Encode()
}
