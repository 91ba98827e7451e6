package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rewind-broker/rewind/tokensvc"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// lockedBuffer collects the logs run writes from several goroutines and
// lets a test wait for a line.
type lockedBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{} // closed and replaced on every write
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.changed != nil {
		close(l.changed)
		l.changed = nil
	}
	return l.b.Write(p)
}

// waitFor blocks until the logs contain s.
func (l *lockedBuffer) waitFor(t *testing.T, s string) {
	t.Helper()
	for {
		l.mu.Lock()
		if strings.Contains(l.b.String(), s) {
			l.mu.Unlock()
			return
		}
		if l.changed == nil {
			l.changed = make(chan struct{})
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatalf("logs never showed %q:\n%s", s, l.String())
		}
	}
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// writeP8 writes a fresh APNs key and returns its public half.
func writeP8(t *testing.T, path string) *ecdsa.PublicKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))
	return &key.PublicKey
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// fakeGoogle is a minimal token endpoint (the JWT assertion itself is checked
// by package tokensvc's tests).
func fakeGoogle(t *testing.T) (*httptest.Server, *int) {
	t.Helper()
	var mu sync.Mutex
	mints := new(int)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		*mints++
		mu.Unlock()
		if r.FormValue("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" || r.FormValue("assertion") == "" {
			http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"access_token":"ya29.from-cmd-test","expires_in":3600,"token_type":"Bearer"}`)
	}))
	t.Cleanup(srv.Close)
	return srv, mints
}

func serviceAccount(t *testing.T, tokenURI string) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "mydmrapp-jaso42",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": "fcm@mydmrapp-jaso42.iam.gserviceaccount.com", "token_uri": tokenURI,
	})
	return string(b)
}

// started is a run in progress.
type started struct {
	addr     string
	logs     *lockedBuffer
	stop     func() error
	reload   chan os.Signal
	reloaded chan error
}

// start calls run like main does and waits until it listens.
func start(t *testing.T, args []string, env map[string]string) *started {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &started{logs: &lockedBuffer{}, reload: make(chan os.Signal, 1), reloaded: make(chan error, 1)}
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, args, runEnv{
			getenv:   func(k string) string { return env[k] },
			stdout:   io.Discard,
			stderr:   s.logs,
			reload:   s.reload,
			ready:    func(a net.Addr) { ready <- a },
			reloaded: func(err error) { s.reloaded <- err },
		})
	}()
	select {
	case a := <-ready:
		s.addr = a.String()
	case err := <-done:
		cancel()
		t.Fatalf("run returned before listening: %v\nlogs:\n%s", err, s.logs)
	}
	var once sync.Once
	var stopErr error
	s.stop = func() error {
		once.Do(func() {
			cancel()
			stopErr = <-done
		})
		return stopErr
	}
	t.Cleanup(func() { s.stop() })
	return s
}

func getCredential(t *testing.T, client *http.Client, url string) tokensvc.Credential {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	var c tokensvc.Credential
	if err := json.Unmarshal(body, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRunPlainHTTP starts the command against a temp config (one FCM app
// backed by a fake Google endpoint, one APNs app with its key in the
// environment) and fetches credentials over loopback HTTP.
func TestRunPlainHTTP(t *testing.T) {
	google, mints := fakeGoogle(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "sa.json"), serviceAccount(t, google.URL+"/token"))
	keyPath := filepath.Join(dir, "k.p8")
	writeP8(t, keyPath)
	p8, _ := os.ReadFile(keyPath)
	writeFile(t, filepath.Join(dir, "brokers.keys"), "bm.example.net k3y-for-bm-example-net-0123456789\n")
	writeFile(t, filepath.Join(dir, "config.json"), `{
		"auth": {"bearer_keys_file": "brokers.keys"},
		"apps": [
			{"name": "mydmrapp", "kind": "fcm", "service_account_file": "sa.json"},
			{"name": "ios", "kind": "apns", "key_env": "IOS_KEY", "key_id": "ABC123DEFG", "team_id": "DEF123GHIJ", "topic": "com.example.app"}
		]}`)
	s := start(t, []string{"--listen", "127.0.0.1:0", "--insecure-http", "--path", "/v1/token"},
		map[string]string{"TOKENSVC_CONFIG": filepath.Join(dir, "config.json"), "IOS_KEY": string(p8)})

	client := &http.Client{Transport: &bearerTransport{key: "k3y-for-bm-example-net-0123456789"}}
	defer client.CloseIdleConnections()
	base := "http://" + s.addr + "/v1/token/"
	if c := getCredential(t, client, base+"mydmrapp"); c.Type != tokensvc.TypeFCM || c.Token != "ya29.from-cmd-test" || c.Expires < 3290 || c.Expires > 3300 {
		t.Fatalf("fcm: %+v", c)
	}
	if c := getCredential(t, client, base+"ios"); c.Type != tokensvc.TypeAPNs || c.Environment != "production" {
		t.Fatalf("apns: %+v", c)
	}
	getCredential(t, client, base+"mydmrapp")
	if *mints != 1 {
		t.Fatalf("%d mints, want 1", *mints)
	}
	resp, err := http.Get("http://" + s.addr + "/v1/token/ios")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("without bearer key: %d", resp.StatusCode)
	}
	if err := s.stop(); err != nil {
		t.Fatalf("run returned %v after cancel", err)
	}
	logs := s.logs.String()
	for _, want := range []string{"tokensvc listening", "serving plain HTTP", "credential issued", "caller refused", "stopped"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "k3y-for-bm") || strings.Contains(logs, "ya29.") {
		t.Errorf("secret in logs:\n%s", logs)
	}
	http.DefaultClient.CloseIdleConnections()
}

type bearerTransport struct {
	key string
	http.Transport
}

func (b *bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.key)
	return b.Transport.RoundTrip(r)
}

// TestRunTLSAndReload serves HTTPS with a self-signed certificate and
// rotates the APNs key with a SIGHUP-style reload.
func TestRunTLSAndReload(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath, pool := writeCert(t, dir)
	pub1 := writeP8(t, filepath.Join(dir, "k.p8"))
	writeFile(t, filepath.Join(dir, "config.json"), `{"apps": [
		{"name": "ios", "kind": "apns", "key_file": "k.p8", "key_id": "ABC123DEFG", "team_id": "DEF123GHIJ", "topic": "com.example.app", "environment": "development"}]}`)
	s := start(t, []string{"--config", filepath.Join(dir, "config.json"), "--listen", "127.0.0.1:0",
		"--tls-cert", certPath, "--tls-key", keyPath}, nil)

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer client.CloseIdleConnections()
	c1 := getCredential(t, client, "https://"+s.addr+"/token/ios")
	verifyES256(t, c1.Token, pub1)

	pub2 := writeP8(t, filepath.Join(dir, "k.p8"))
	s.reload <- syscall.SIGHUP
	if err := <-s.reloaded; err != nil {
		t.Fatal(err)
	}
	c2 := getCredential(t, client, "https://"+s.addr+"/token/ios")
	verifyES256(t, c2.Token, pub2)

	writeFile(t, filepath.Join(dir, "k.p8"), "not a key")
	s.reload <- syscall.SIGHUP
	if err := <-s.reloaded; err == nil {
		t.Fatal("reload accepted a broken key")
	}
	if c := getCredential(t, client, "https://"+s.addr+"/token/ios"); c.Token != c2.Token {
		t.Fatal("a failed reload changed the credential")
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s.logs.String(), "reload failed") {
		t.Fatalf("failed reload not logged:\n%s", s.logs)
	}
}

// verifyES256 checks a JWT's signature against pub.
func verifyES256(t *testing.T, tok string, pub *ecdsa.PublicKey) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		t.Fatalf("signature %d bytes %v", len(sig), err)
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if !ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		t.Fatal("JWT not signed by the expected key")
	}
}

// writeCert makes a self-signed certificate for 127.0.0.1.
func writeCert(t *testing.T, dir string) (certPath, keyPath string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "tokensvc test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeFile(t, certPath, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, keyPath, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})))
	return certPath, keyPath, pool
}

// TestGracefulShutdown: a stop waits for the request in progress (held at
// the fake Google endpoint) and that request still gets its credential.
func TestGracefulShutdown(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	google := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"access_token":"ya29.slow","expires_in":3600,"token_type":"Bearer"}`)
	}))
	defer google.Close()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "sa.json"), serviceAccount(t, google.URL+"/token"))
	writeFile(t, filepath.Join(dir, "config.json"), `{"apps": [{"name": "a", "kind": "fcm", "service_account_file": "sa.json"}]}`)
	s := start(t, []string{"--config", filepath.Join(dir, "config.json"), "--listen", "127.0.0.1:0", "--insecure-http"}, nil)

	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	got := make(chan string, 1)
	go func() {
		resp, err := client.Get("http://" + s.addr + "/token/a")
		if err != nil {
			got <- err.Error()
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		got <- fmt.Sprintf("%d %s", resp.StatusCode, body)
	}()
	<-entered
	stopped := make(chan error, 1)
	go func() { stopped <- s.stop() }()
	s.logs.waitFor(t, "shutting down")
	close(release)
	if r := <-got; !strings.HasPrefix(r, `200 {"type":"FCM HTTP v1","project":"mydmrapp-jaso42","token":"ya29.slow"`) {
		t.Fatalf("in-flight request got %s", r)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}

// TestShutdownTimeout: a request stuck past --shutdown-timeout makes run
// return an error instead of hanging.
func TestShutdownTimeout(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	google := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer google.Close()
	defer close(release)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "sa.json"), serviceAccount(t, google.URL+"/token"))
	writeFile(t, filepath.Join(dir, "config.json"), `{"apps": [{"name": "a", "kind": "fcm", "service_account_file": "sa.json"}]}`)
	s := start(t, []string{"--config", filepath.Join(dir, "config.json"), "--listen", "127.0.0.1:0", "--insecure-http",
		"--shutdown-timeout", "50ms"}, nil)
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := client.Get("http://" + s.addr + "/token/a"); err == nil {
			resp.Body.Close()
		}
	}()
	<-entered
	if err := s.stop(); err == nil || !strings.Contains(err.Error(), "requests still running after 50ms") {
		t.Fatalf("stop: %v", err)
	}
	<-done
}

// TestHelp: --help is a manual on stdout, and its example config loads.
func TestHelp(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"--help"}, runEnv{getenv: func(string) string { return "" }, stdout: &out, stderr: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	help := out.String()
	for _, want := range []string{
		"reference vendor token service", "USAGE", "EXAMPLE CONFIGURATION", "EXAMPLES", "SIGNALS", "EXIT STATUS",
		"--config VALUE  (TOKENSVC_CONFIG)", "--listen VALUE  (TOKENSVC_LISTEN, default 127.0.0.1:8443)",
		"--insecure-http  (TOKENSVC_INSECURE_HTTP)", "--path VALUE  (TOKENSVC_PATH, default /token)",
		"curl -H 'Accept: application/json'", "Authorization: Bearer", "?broker=bm.example.net&code=",
		`{"type":"FCM HTTP v1"`, `{"type":"APNs"`, "printf %s 'bm.example.net' | openssl dgst -sha256 -hmac",
	} {
		if !strings.Contains(help, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
	if strings.Contains(help, "%!") {
		t.Errorf("--help has a formatting error:\n%s", help)
	}
	// The curl example's code is the real code for the example secret.
	code := tokensvc.VerificationCode([]byte("example-app-secret-2024"), "bm.example.net")
	if !strings.Contains(help, "code="+code) {
		t.Errorf("--help's example code is not VerificationCode(example secret, bm.example.net) = %s", code)
	}
	if _, err := tokensvc.ParseServerConfig([]byte(exampleConfig)); err != nil {
		t.Fatalf("--help example config: %v", err)
	}
}

// TestFlagErrors: bad invocations say what is wrong before anything starts.
func TestFlagErrors(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.json")
	writeFile(t, cfg, `{"apps": [{"name": "a", "kind": "fcm", "service_account_file": "missing.json"}]}`)
	cases := []struct {
		args  []string
		env   map[string]string
		want  string
		usage bool
	}{
		{nil, nil, "--config (TOKENSVC_CONFIG) is required", true},
		{[]string{"--config", cfg}, nil, "give --tls-cert and --tls-key, or --insecure-http", true},
		{[]string{"--config", cfg, "--tls-cert", "c.pem"}, nil, "--tls-cert and --tls-key go together", true},
		{[]string{"--config", cfg, "--tls-cert", "c", "--tls-key", "k", "--insecure-http"}, nil, "contradicts", true},
		{[]string{"--config", cfg}, map[string]string{"TOKENSVC_INSECURE_HTTP": "maybe"}, `TOKENSVC_INSECURE_HTTP="maybe": want true or false`, true},
		{[]string{"--bogus"}, nil, "flag provided but not defined: -bogus", true},
		{[]string{"--config", cfg, "--insecure-http", "extra"}, nil, `unexpected argument "extra"`, true},
		{[]string{"--config", cfg, "--insecure-http", "--shutdown-timeout", "soon"}, nil, "--shutdown-timeout", true},
		{[]string{"--config", cfg, "--insecure-http", "--log-level", "loud"}, nil, "--log-level", true},
		{[]string{"--config", cfg, "--insecure-http"}, nil, `app "a": service_account_file: open`, false},
		{[]string{"--config", filepath.Join(dir, "nope.json"), "--insecure-http"}, nil, "read config", false},
		{[]string{"--config", cfg, "--insecure-http", "--path", "metrics"}, nil, "must start with /", false},
	}
	for _, tc := range cases {
		err := run(context.Background(), tc.args, runEnv{
			getenv: func(k string) string { return tc.env[k] }, stdout: io.Discard, stderr: io.Discard,
		})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v: error %v, want %q", tc.args, tc.env, err, tc.want)
			continue
		}
		if got := errors.As(err, new(usageError)); got != tc.usage {
			t.Errorf("%v: usage error %v, want %v", tc.args, got, tc.usage)
		}
	}
}

// TestCheckConfig loads everything and reports without serving.
func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	writeP8(t, filepath.Join(dir, "k.p8"))
	writeFile(t, filepath.Join(dir, "config.json"), `{"apps": [
		{"name": "ios", "kind": "apns", "key_file": "k.p8", "key_id": "ABC123DEFG", "team_id": "DEF123GHIJ", "topic": "t"}]}`)
	var out bytes.Buffer
	err := run(context.Background(), []string{"--check-config", "--config", filepath.Join(dir, "config.json")},
		runEnv{getenv: func(string) string { return "" }, stdout: &out, stderr: io.Discard})
	if err != nil || out.String() != "configuration OK: 1 apps (ios)\n" {
		t.Fatalf("%v %q", err, out.String())
	}
	writeFile(t, filepath.Join(dir, "k.p8"), "garbage")
	err = run(context.Background(), []string{"--check-config", "--config", filepath.Join(dir, "config.json")},
		runEnv{getenv: func(string) string { return "" }, stdout: io.Discard, stderr: io.Discard})
	if err == nil || !strings.Contains(err.Error(), `app "ios": APNs key: no PEM block found`) {
		t.Fatalf("broken key: %v", err)
	}
}
