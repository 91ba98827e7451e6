package tokensvc

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testKeys are PEM keys of the wrong and right kinds, made once.
type testKeys struct {
	p8, rsaPKCS8, rsaPKCS1, p384, sec1 string
}

func makeTestKeys(t *testing.T) testKeys {
	t.Helper()
	pemOf := func(typ string, der []byte, err error) string {
		if err != nil {
			t.Fatal(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
	}
	_, p8 := newP8(t)
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ek256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var k testKeys
	k.p8 = string(p8)
	k.rsaPKCS8 = pemOf("PRIVATE KEY", mustPKCS8(t, rk), nil)
	k.rsaPKCS1 = pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rk), nil)
	k.p384 = pemOf("PRIVATE KEY", mustPKCS8(t, ek), nil)
	sec1, err := x509.MarshalECPrivateKey(ek256)
	k.sec1 = pemOf("EC PRIVATE KEY", sec1, err)
	return k
}

func mustPKCS8(t *testing.T, key any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// serviceAccountWith returns a service-account JSON with fields overridden
// (a nil value deletes the field).
func serviceAccountWith(t *testing.T, keyPEM string, override map[string]any) string {
	t.Helper()
	sa := map[string]any{
		"type":         "service_account",
		"project_id":   "mydmrapp-jaso42",
		"private_key":  keyPEM,
		"client_email": "fcm@mydmrapp-jaso42.iam.gserviceaccount.com",
		"token_uri":    "https://oauth2.googleapis.com/token",
	}
	for k, v := range override {
		if v == nil {
			delete(sa, k)
		} else {
			sa[k] = v
		}
	}
	b, err := json.Marshal(sa)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestConfigErrors: every way a config can be wrong is refused at start
// with a message that names the app, the field and the problem.
func TestConfigErrors(t *testing.T) {
	k := makeTestKeys(t)
	goodSA := serviceAccountWith(t, k.rsaPKCS8, nil)
	apns := `{"apps": [{"name": "ios", "kind": "apns", "key_file": "k.p8", "key_id": "ABC123DEFG",
		"team_id": "DEF123GHIJ", "topic": "com.example.app"}]}`
	fcm := `{"apps": [{"name": "a", "kind": "fcm", "service_account_file": "sa.json"}]}`
	cases := []struct {
		name   string
		config string
		files  files
		env    map[string]string
		want   string
	}{
		{"bad JSON", `{"apps": [`, nil, nil, "invalid JSON: the file ends inside a value"},
		{"empty file", "", nil, nil, "invalid JSON: the file is empty"},
		{"bad JSON syntax", "{\n  \"apps\": [}\n", nil, nil, "invalid JSON at line 2, column 12: invalid character '}'"},
		{"wrong type", `{"apps": {"name": "a"}}`, nil, nil, `invalid JSON at line 1, column 10: field "apps"`},
		{"unknown field", `{"apps": [{"name": "a", "kind": "fcm", "servce_account_file": "sa.json"}]}`, nil, nil,
			`invalid JSON: json: unknown field "servce_account_file"`},
		{"trailing data", `{"apps": []} {}`, nil, nil, "more than one value"},
		{"no apps", `{"apps": []}`, nil, nil, "no apps configured"},
		{"unknown kind", `{"apps": [{"name": "a", "kind": "gcm", "service_account_file": "sa.json"}]}`, nil, nil,
			`app "a": unknown kind "gcm": want "fcm" or "apns"`},
		{"missing kind", `{"apps": [{"name": "a"}]}`, nil, nil, `app "a": kind is required`},
		{"bad name", `{"apps": [{"name": "a/b", "kind": "fcm", "service_account_file": "x"}]}`, nil, nil, `app "a/b": bad name "a/b"`},
		{"no name", `{"apps": [{"kind": "fcm", "service_account_file": "x"}]}`, nil, nil, `apps[0]: bad name ""`},
		{"duplicate app", `{"apps": [{"name": "a", "kind": "fcm", "service_account_file": "sa.json"},
			{"name": "a", "kind": "fcm", "service_account_file": "sa.json"}]}`, files{"sa.json": goodSA}, nil,
			`duplicate app name "a" (apps[0] and apps[1])`},
		{"fcm without key", `{"apps": [{"name": "a", "kind": "fcm"}]}`, nil, nil,
			`app "a": service_account_file or service_account_env is required`},
		{"fcm with both", `{"apps": [{"name": "a", "kind": "fcm", "service_account_file": "x", "service_account_env": "Y"}]}`, nil, nil,
			`app "a": set only one of service_account_file and service_account_env`},
		{"fcm with apns fields", `{"apps": [{"name": "a", "kind": "fcm", "service_account_file": "x", "topic": "t"}]}`, nil, nil,
			`kind "fcm" takes no APNs fields`},
		{"unreadable service account", fcm, nil, nil,
			`app "a": service_account_file: open `},
		{"service account env unset", `{"apps": [{"name": "a", "kind": "fcm", "service_account_env": "SA"}]}`, nil, nil,
			`app "a": service_account_env: environment variable SA is empty or unset`},
		{"service account not JSON", fcm, files{"sa.json": "-----BEGIN PRIVATE KEY-----"}, nil,
			`app "a": service account is not valid JSON`},
		{"service account without private_key", fcm, files{"sa.json": serviceAccountWith(t, "", map[string]any{"private_key": nil})}, nil,
			`app "a": service account JSON has no private_key`},
		{"service account without client_email", fcm, files{"sa.json": serviceAccountWith(t, k.rsaPKCS8, map[string]any{"client_email": nil})}, nil,
			`app "a": service account JSON has no client_email`},
		{"service account without project", fcm, files{"sa.json": serviceAccountWith(t, k.rsaPKCS8, map[string]any{"project_id": nil})}, nil,
			`app "a": service account JSON has no project_id (set project_id in the app's config)`},
		{"OAuth client instead of service account", fcm, files{"sa.json": serviceAccountWith(t, k.rsaPKCS8, map[string]any{"type": "authorized_user"})}, nil,
			`app "a": service account JSON has type "authorized_user", want "service_account"`},
		{"service account with EC key", fcm, files{"sa.json": serviceAccountWith(t, k.p8, nil)}, nil,
			`app "a": service account private_key: EC P-256 key, want an RSA key`},
		{"service account with garbage key", fcm, files{"sa.json": serviceAccountWith(t, "not a key", nil)}, nil,
			`app "a": service account private_key: no PEM block found`},
		{"apns without key", `{"apps": [{"name": "ios", "kind": "apns", "key_id": "ABC123DEFG", "team_id": "DEF123GHIJ", "topic": "t"}]}`, nil, nil,
			`app "ios": key_file or key_env is required`},
		{"apns bad key id", `{"apps": [{"name": "ios", "kind": "apns", "key_file": "k.p8", "key_id": "abc", "team_id": "DEF123GHIJ", "topic": "t"}]}`, nil, nil,
			`app "ios": key_id "abc": want the 10-character key id`},
		{"apns bad team id", `{"apps": [{"name": "ios", "kind": "apns", "key_file": "k.p8", "key_id": "ABC123DEFG", "topic": "t"}]}`, nil, nil,
			`app "ios": team_id "": want the 10-character Apple team id`},
		{"apns no topic", `{"apps": [{"name": "ios", "kind": "apns", "key_file": "k.p8", "key_id": "ABC123DEFG", "team_id": "DEF123GHIJ"}]}`, nil, nil,
			`app "ios": topic is required`},
		{"apns bad environment", `{"apps": [{"name": "ios", "kind": "apns", "key_file": "k.p8", "key_id": "ABC123DEFG", "team_id": "DEF123GHIJ", "topic": "t", "environment": "sandbox"}]}`, nil, nil,
			`app "ios": environment "sandbox": want "production" or "development"`},
		{"apns window too short", `{"apps": [{"name": "ios", "kind": "apns", "key_file": "k.p8", "key_id": "ABC123DEFG", "team_id": "DEF123GHIJ", "topic": "t", "jwt_reuse_window": "10m"}]}`, nil, nil,
			`app "ios": jwt_reuse_window 10m0s: must be between 20m0s and 50m0s`},
		{"apns window too long", `{"apps": [{"name": "ios", "kind": "apns", "key_file": "k.p8", "key_id": "ABC123DEFG", "team_id": "DEF123GHIJ", "topic": "t", "jwt_reuse_window": "1h"}]}`, nil, nil,
			`app "ios": jwt_reuse_window 1h0m0s: must be between`},
		{"apns window not a duration", `{"apps": [{"name": "ios", "kind": "apns", "key_file": "k.p8", "key_id": "ABC123DEFG", "team_id": "DEF123GHIJ", "topic": "t", "jwt_reuse_window": 40}]}`, nil, nil,
			`duration must be a string such as "40m"`},
		{"unreadable p8", apns, nil, nil, `app "ios": key_file: open `},
		{"RSA key as p8", apns, files{"k.p8": k.rsaPKCS8}, nil,
			`app "ios": APNs key: RSA key, want the EC P-256 .p8 key from Apple`},
		{"PKCS1 RSA key as p8", apns, files{"k.p8": k.rsaPKCS1}, nil,
			`app "ios": APNs key: RSA key, want the EC P-256 .p8 key from Apple`},
		{"P-384 key as p8", apns, files{"k.p8": k.p384}, nil,
			`app "ios": APNs key: EC key on curve P-384, want P-256`},
		{"SEC1 key as p8", apns, files{"k.p8": k.sec1}, nil,
			`app "ios": APNs key: SEC 1 "EC PRIVATE KEY", want PKCS#8`},
		{"not PEM as p8", apns, files{"k.p8": "MIGTAgEAMBMGByqGSM49"}, nil,
			`app "ios": APNs key: no PEM block found`},
		{"service account as p8", apns, files{"k.p8": goodSA}, nil,
			`app "ios": APNs key: no PEM block found`},
		{"bad CIDR", `{"auth": {"allow_cidrs": ["10.0.0.0/33"]}, "apps": [{"name": "a", "kind": "fcm", "service_account_file": "x"}]}`, nil, nil,
			`auth: allow_cidrs: "10.0.0.0/33" is not a CIDR`},
		{"bad trusted proxy", `{"trusted_proxies": ["proxy.local"], "apps": [{"name": "a", "kind": "fcm", "service_account_file": "x"}]}`, nil, nil,
			`trusted_proxies: "proxy.local" is neither a CIDR nor an address`},
		{"app bad CIDR", `{"apps": [{"name": "a", "kind": "fcm", "service_account_file": "x", "auth": {"allow_cidrs": ["x"]}}]}`, nil, nil,
			`app "a": auth: allow_cidrs: "x" is neither`},
		{"two hmac sources", `{"auth": {"hmac_secret_file": "s", "hmac_secret_env": "S"}, "apps": [{"name": "a", "kind": "fcm", "service_account_file": "x"}]}`, nil, nil,
			`auth: set only one of hmac_secret_file and hmac_secret_env`},
		{"short hmac secret", `{"auth": {"hmac_secret_file": "s"}, "apps": [{"name": "a", "kind": "fcm", "service_account_file": "sa.json"}]}`,
			files{"s": "short\n", "sa.json": goodSA}, nil, `auth: hmac secret: line 1: secret is 5 bytes, want at least 16`},
		{"empty hmac file", `{"auth": {"hmac_secret_file": "s"}, "apps": [{"name": "a", "kind": "fcm", "service_account_file": "sa.json"}]}`,
			files{"s": "# nothing yet\n", "sa.json": goodSA}, nil, `auth: hmac secret: no secret found`},
		{"hmac env unset", `{"apps": [{"name": "a", "kind": "fcm", "service_account_file": "sa.json", "auth": {"hmac_secret_env": "APP_SECRET"}}]}`,
			files{"sa.json": goodSA}, nil, `app "a": auth: hmac_secret_env: environment variable APP_SECRET is empty or unset`},
		{"malformed bearer line", `{"auth": {"bearer_keys_file": "b"}, "apps": [{"name": "a", "kind": "fcm", "service_account_file": "sa.json"}]}`,
			files{"b": "bm.example.net\n", "sa.json": goodSA}, nil, `auth: bearer keys: line 1: want "<broker identity> <key>"`},
		{"short bearer key", `{"auth": {"bearer_keys_env": "KEYS"}, "apps": [{"name": "a", "kind": "fcm", "service_account_file": "sa.json"}]}`,
			files{"sa.json": goodSA}, map[string]string{"KEYS": "a.example aaaaaaaaaaaaaaaaaaaa,b.example short"},
			`auth: bearer keys: line 2 (broker "b.example"): key is 5 bytes, want at least 16`},
		{"reused bearer key", `{"auth": {"bearer_keys_file": "b"}, "apps": [{"name": "a", "kind": "fcm", "service_account_file": "sa.json"}]}`,
			files{"b": "x.example 0123456789abcdef0\ny.example 0123456789abcdef0\n", "sa.json": goodSA}, nil,
			`auth: bearer keys: line 2 (broker "y.example"): key is used twice`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := &testEnv{t: t, clock: newFakeClock(), logs: &syncBuffer{}, dir: t.TempDir()}
			srv, err := e.build(tc.config, tc.files, tc.env)
			if err == nil {
				srv.Close()
				t.Fatalf("accepted; want error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

// TestExampleConfig keeps the documented example (testdata/server, quoted in
// docs/vendor-guide.md) loadable.
func TestExampleConfig(t *testing.T) {
	cfg, err := LoadServerConfig(filepath.Join("testdata", "server", "example-config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Apps) != 2 || cfg.Apps[0].Kind != KindFCM || cfg.Apps[1].Kind != KindAPNs {
		t.Fatalf("%+v", cfg.Apps)
	}
	doc, err := os.ReadFile(filepath.Join("..", "docs", "vendor-guide.md"))
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile(filepath.Join("testdata", "server", "example-config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), strings.TrimSpace(string(example))) {
		t.Fatal("docs/vendor-guide.md does not quote testdata/server/example-config.json verbatim")
	}
	code := VerificationCode([]byte(testSecret), "bm.example.net")
	for _, s := range []string{testSecret, "bm.example.net", code} {
		if !strings.Contains(string(doc), s) {
			t.Fatalf("docs/vendor-guide.md lacks the worked example value %q", s)
		}
	}
}

// TestReload: an unchanged app keeps its cached token, a new key means a new
// credential, and a broken config leaves the old one in force.
func TestReload(t *testing.T) {
	g := newFakeGoogle(t)
	k1, p8a := newP8(t)
	k2, p8b := newP8(t)
	config := `{"apps": [{"name": "mydmrapp", "kind": "fcm", "service_account_file": "sa.json"},
		{"name": "ios", "kind": "apns", "key_file": "k.p8", "key_id": "ABC123DEFG", "team_id": "DEF123GHIJ", "topic": "com.example.app"}]}`
	e := newTestEnv(t, g, config, files{"sa.json": string(g.serviceAccountJSON()), "k.p8": string(p8a)}, nil)
	fcm1 := e.credential("/token/mydmrapp")
	ios1 := e.credential("/token/ios")
	verifyAPNsJWT(t, ios1.Token, &k1.PublicKey)

	reload := func(config string, fs files) error {
		for name, content := range fs {
			if err := os.WriteFile(filepath.Join(e.dir, name), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		path := filepath.Join(e.dir, "config.json")
		if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := LoadServerConfig(path)
		if err != nil {
			return err
		}
		return e.srv.Reload(cfg)
	}
	// Rotate the APNs key in place.
	if err := reload(config, files{"k.p8": string(p8b)}); err != nil {
		t.Fatal(err)
	}
	if c := e.credential("/token/mydmrapp"); c.Token != fcm1.Token || g.mints.Load() != 1 {
		t.Fatalf("unchanged FCM app lost its cache: %+v, %d mints", c, g.mints.Load())
	}
	ios2 := e.credential("/token/ios")
	verifyAPNsJWT(t, ios2.Token, &k2.PublicKey)

	// A broken key is refused and the running config stays.
	if err := reload(config, files{"k.p8": "garbage"}); err == nil || !strings.Contains(err.Error(), "APNs key") {
		t.Fatalf("reload with a broken key: %v", err)
	}
	if c := e.credential("/token/ios"); c.Token != ios2.Token {
		t.Fatal("failed reload changed the credential")
	}
	// Removing an app removes it.
	if err := reload(`{"apps": [{"name": "mydmrapp", "kind": "fcm", "service_account_file": "sa.json"}]}`, nil); err != nil {
		t.Fatal(err)
	}
	e.refused("/token/ios", 404)
	if got := e.srv.Apps(); len(got) != 1 || got[0] != "mydmrapp" {
		t.Fatalf("Apps() = %v", got)
	}
}

func TestPathPrefix(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"", "/token", ""},
		{"/token/", "/token", ""},
		{"/v1/creds", "/v1/creds", ""},
		{"/", "", ""},
		{"token", "", "must start with /"},
		{"/metrics", "", "collides"},
	} {
		got, err := normalizePrefix(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %q %v, want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestRootPrefix(t *testing.T) {
	_, p8 := newP8(t)
	clock := newFakeClock()
	cfg := ServerConfig{Apps: []AppConfig{{Name: "ios", Kind: KindAPNs, KeyEnv: "K", KeyID: "ABC123DEFG", TeamID: "DEF123GHIJ", Topic: "t"}}}
	srv, err := NewServer(cfg, ServerOptions{PathPrefix: "/", Now: clock.Now, Getenv: func(string) string { return string(p8) }})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for _, path := range []string{"/ios", "/?app=ios"} {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != 200 {
			t.Fatalf("%s: %d %s", path, rec.Code, rec.Body)
		}
	}
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if rec.Code != 200 {
		t.Fatalf("healthz under root prefix: %d", rec.Code)
	}
}
