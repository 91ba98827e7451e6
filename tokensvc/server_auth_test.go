package tokensvc

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

const (
	testSecret    = "example-app-secret-2024"
	testBrokerKey = "k3y-for-bm-example-net-0123456789"
)

func newAuthEnv(t *testing.T, auth, rateLimit string) *testEnv {
	t.Helper()
	g := newFakeGoogle(t)
	if rateLimit == "" {
		rateLimit = "{}"
	}
	config := `{"auth": ` + auth + `, "rate_limit": ` + rateLimit + `, "trusted_proxies": ["127.0.0.1"],
		"apps": [{"name": "mydmrapp", "kind": "fcm", "service_account_file": "sa.json"}]}`
	return newTestEnv(t, g, config, files{
		"sa.json":     string(g.serviceAccountJSON()),
		"app.secrets": "# current secret\n" + testSecret + "\n",
		"brokers.keys": "# broker identity, key\n" +
			"bm.example.net " + testBrokerKey + "\n" +
			"other.example.org other-broker-key-0123456789\n",
	}, nil)
}

// TestVerificationCodeWorkedExample pins the example in docs/vendor-guide.md.
func TestVerificationCodeWorkedExample(t *testing.T) {
	const want = "2da5e198514d33ffb70ce6c9af9b5f87565cab96cd0f94b8a2ceb1b018e446fb"
	if got := VerificationCode([]byte(testSecret), "bm.example.net"); got != want {
		t.Fatalf("VerificationCode = %s, want %s", got, want)
	}
}

func TestHMACCode(t *testing.T) {
	e := newAuthEnv(t, `{"hmac_secret_file": "app.secrets"}`, "")
	code := VerificationCode([]byte(testSecret), "bm.example.net")

	e.credential(withQuery("/token/mydmrapp", "broker", "bm.example.net", "code", code))
	e.credential(withQuery("/token", "app", "mydmrapp", "broker", "bm.example.net", "code", strings.ToUpper(code)))

	cases := []struct {
		name, path, reason string
	}{
		{"no code", "/token/mydmrapp", reasonMissingCode},
		{"no broker", withQuery("/token/mydmrapp", "code", code), reasonMissingCode},
		{"code for another broker", withQuery("/token/mydmrapp", "broker", "evil.example.com", "code", code), reasonBadCode},
		{"code with wrong secret", withQuery("/token/mydmrapp", "broker", "bm.example.net",
			"code", VerificationCode([]byte("another-secret-of-16+"), "bm.example.net")), reasonBadCode},
		{"truncated code", withQuery("/token/mydmrapp", "broker", "bm.example.net", "code", code[:32]), reasonBadCode},
		{"not hex", withQuery("/token/mydmrapp", "broker", "bm.example.net", "code", "zz"+code[2:]), reasonBadCode},
	}
	for _, tc := range cases {
		er, _ := e.refused(tc.path, http.StatusUnauthorized)
		if er.Error != tc.reason {
			t.Errorf("%s: error %q, want %q", tc.name, er.Error, tc.reason)
		}
	}
	if v := e.metric(`tokensvc_auth_failures_total{reason="bad_code"}`); v != 4 {
		t.Errorf("bad_code failures %v, want 4", v)
	}
	if v := e.metric(`tokensvc_auth_failures_total{reason="missing_code"}`); v != 2 {
		t.Errorf("missing_code failures %v, want 2", v)
	}
	if v := e.metric(`tokensvc_requests_total{app="mydmrapp",result="unauthorized"}`); v != 6 {
		t.Errorf("unauthorized requests %v, want 6", v)
	}
	assertNoSecretsLogged(t, e, code, code[:32], testSecret)
}

func TestBearerKey(t *testing.T) {
	e := newAuthEnv(t, `{"bearer_keys_file": "brokers.keys"}`, "")
	e.credential("/token/mydmrapp", "Authorization", "Bearer "+testBrokerKey)
	e.credential("/token/mydmrapp", "Authorization", "bearer other-broker-key-0123456789")

	er, h := e.refused("/token/mydmrapp", http.StatusUnauthorized)
	if er.Error != reasonMissingBearer || h.Get("WWW-Authenticate") == "" {
		t.Errorf("no key: %+v, WWW-Authenticate %q", er, h.Get("WWW-Authenticate"))
	}
	er, _ = e.refused("/token/mydmrapp", http.StatusUnauthorized, "Authorization", "Bearer "+testBrokerKey+"x")
	if er.Error != reasonBadBearer {
		t.Errorf("wrong key: %+v", er)
	}
	er, _ = e.refused("/token/mydmrapp", http.StatusUnauthorized, "Authorization", "Basic "+testBrokerKey)
	if er.Error != reasonMissingBearer {
		t.Errorf("basic auth: %+v", er)
	}
	if v := e.metric(`tokensvc_auth_failures_total{reason="bad_bearer"}`); v != 1 {
		t.Errorf("bad_bearer failures %v, want 1", v)
	}
	if v := e.metric(`tokensvc_auth_failures_total{reason="missing_bearer"}`); v != 2 {
		t.Errorf("missing_bearer failures %v, want 2", v)
	}
	if !strings.Contains(e.logs.String(), `"broker":"bm.example.net"`) {
		t.Errorf("issued credential not logged with the broker identity:\n%s", e.logs.String())
	}
	assertNoSecretsLogged(t, e, testBrokerKey, "other-broker-key")
}

// TestBearerAndCode: with both checks the code must be for the broker that
// owns the bearer key, so one broker cannot replay another's URL.
func TestBearerAndCode(t *testing.T) {
	e := newAuthEnv(t, `{"bearer_keys_file": "brokers.keys", "hmac_secret_file": "app.secrets"}`, "")
	auth := []string{"Authorization", "Bearer " + testBrokerKey}
	e.credential(withQuery("/token/mydmrapp", "broker", "bm.example.net",
		"code", VerificationCode([]byte(testSecret), "bm.example.net")), auth...)
	er, _ := e.refused(withQuery("/token/mydmrapp", "broker", "other.example.org",
		"code", VerificationCode([]byte(testSecret), "other.example.org")), http.StatusUnauthorized, auth...)
	if er.Error != reasonBrokerMismatch {
		t.Fatalf("%+v", er)
	}
}

// TestAllowCIDRs: the caller's address must be allowed; X-Forwarded-For
// counts only when the TCP peer is a trusted proxy, and only its rightmost
// untrusted entry.
func TestAllowCIDRs(t *testing.T) {
	e := newAuthEnv(t, `{"allow_cidrs": ["10.0.0.0/8", "2001:db8::/32"]}`, "")
	// The test's TCP peer is 127.0.0.1, a trusted proxy in newAuthEnv.
	e.credential("/token/mydmrapp", "X-Forwarded-For", "10.1.2.3")
	e.credential("/token/mydmrapp", "X-Forwarded-For", "2001:db8::7, 127.0.0.1")
	er, _ := e.refused("/token/mydmrapp", http.StatusForbidden)
	if er.Error != reasonAddressNotAllowed {
		t.Fatalf("%+v", er)
	}
	// The caller cannot smuggle an allowed address in front of its own.
	e.refused("/token/mydmrapp", http.StatusForbidden, "X-Forwarded-For", "10.1.2.3, 192.0.2.7")
	if v := e.metric(`tokensvc_auth_failures_total{reason="address_not_allowed"}`); v != 2 {
		t.Fatalf("address_not_allowed failures %v, want 2", v)
	}
	if v := e.metric(`tokensvc_requests_total{app="mydmrapp",result="forbidden"}`); v != 2 {
		t.Fatalf("forbidden requests %v, want 2", v)
	}
}

// TestXFFIgnoredWithoutTrustedProxy: without trusted_proxies the header is
// never believed.
func TestXFFIgnoredWithoutTrustedProxy(t *testing.T) {
	g := newFakeGoogle(t)
	e := newTestEnv(t, g, `{"auth": {"allow_cidrs": ["10.0.0.0/8"]},
		"apps": [{"name": "mydmrapp", "kind": "fcm", "service_account_file": "sa.json"}]}`,
		files{"sa.json": string(g.serviceAccountJSON())}, nil)
	e.refused("/token/mydmrapp", http.StatusForbidden, "X-Forwarded-For", "10.1.2.3")
}

func TestCallerAddr(t *testing.T) {
	trusted, _ := parsePrefixes([]string{"192.168.0.0/16", "::1"})
	cases := []struct {
		remote, xff, want string
	}{
		{"203.0.113.9:4000", "10.0.0.1", "203.0.113.9"},                   // untrusted peer: header ignored
		{"192.168.1.1:4000", "", "192.168.1.1"},                           // trusted peer, no header
		{"192.168.1.1:4000", "198.51.100.2", "198.51.100.2"},              // one proxy
		{"192.168.1.1:4000", "198.51.100.2, 192.168.1.2", "198.51.100.2"}, // two proxies
		{"192.168.1.1:4000", "10.9.9.9, 198.51.100.2", "198.51.100.2"},    // caller-written entries ignored
		{"192.168.1.1:4000", "garbage, 198.51.100.2", "198.51.100.2"},     // caller-written garbage ignored
		{"192.168.1.1:4000", "198.51.100.2, garbage", "192.168.1.1"},      // proxy wrote garbage: stop at the proxy
		{"[::1]:4000", "2001:db8::1", "2001:db8::1"},                      // IPv6 proxy
		{"[::ffff:203.0.113.9]:4000", "", "203.0.113.9"},                  // v4-mapped peer
	}
	for _, tc := range cases {
		r := httptest.NewRequest(http.MethodGet, "/token/x", nil)
		r.RemoteAddr = tc.remote
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		got, err := callerAddr(r, trusted)
		if err != nil || got != netip.MustParseAddr(tc.want) {
			t.Errorf("remote %s xff %q: got %v %v, want %s", tc.remote, tc.xff, got, err, tc.want)
		}
	}
}

// TestPerAppAuth: an app's auth block replaces the service-wide one.
func TestPerAppAuth(t *testing.T) {
	g := newFakeGoogle(t)
	_, p8 := newP8(t)
	e := newTestEnv(t, g, `{"auth": {"bearer_keys_file": "brokers.keys"},
		"apps": [
			{"name": "android", "kind": "fcm", "service_account_file": "sa.json"},
			{"name": "ios", "kind": "apns", "key_file": "k.p8", "key_id": "ABC123DEFG", "team_id": "DEF123GHIJ",
			 "topic": "com.example.app", "auth": {"hmac_secret_env": "IOS_SECRET"}}]}`,
		files{
			"sa.json":      string(g.serviceAccountJSON()),
			"k.p8":         string(p8),
			"brokers.keys": "bm.example.net " + testBrokerKey + "\n",
		}, map[string]string{"IOS_SECRET": testSecret})
	bearer := []string{"Authorization", "Bearer " + testBrokerKey}
	coded := withQuery("", "broker", "bm.example.net", "code", VerificationCode([]byte(testSecret), "bm.example.net"))
	e.credential("/token/android", bearer...)
	e.refused("/token/android"+coded, http.StatusUnauthorized)
	e.credential("/token/ios" + coded)
	e.refused("/token/ios", http.StatusUnauthorized, bearer...)
}

// TestFailureRateLimit: after failure_burst refusals an address gets 429
// with Retry-After, even with a good key, until a token refills.
func TestFailureRateLimit(t *testing.T) {
	e := newAuthEnv(t, `{"bearer_keys_file": "brokers.keys"}`, `{"failure_burst": 3}`)
	for range 3 {
		e.refused("/token/mydmrapp", http.StatusUnauthorized, "Authorization", "Bearer wrong-key-0123456789abcdef")
	}
	er, h := e.refused("/token/mydmrapp", http.StatusTooManyRequests, "Authorization", "Bearer "+testBrokerKey)
	if er.Error != "rate_limited" || h.Get("Retry-After") != "6" {
		t.Fatalf("%+v Retry-After %q, want 6 (10 failures per minute)", er, h.Get("Retry-After"))
	}
	// Unknown app names spend the same budget.
	e.clock.Advance(6 * time.Second)
	e.refused("/token/nosuchapp", http.StatusNotFound)
	e.refused("/token/mydmrapp", http.StatusTooManyRequests, "Authorization", "Bearer "+testBrokerKey)
	e.clock.Advance(6 * time.Second)
	e.credential("/token/mydmrapp", "Authorization", "Bearer "+testBrokerKey)
	if v := e.metric(`tokensvc_requests_total{app="mydmrapp",result="rate_limited"}`); v != 2 {
		t.Fatalf("rate_limited %v, want 2", v)
	}
	if v := e.metric(`tokensvc_requests_total{app="_unknown",result="not_found"}`); v != 1 {
		t.Fatalf("not_found %v, want 1", v)
	}
}

// TestRequestRateLimit: every request spends from the request bucket.
func TestRequestRateLimit(t *testing.T) {
	e := newAuthEnv(t, "null", `{"request_burst": 5, "requests_per_second": 0.5}`)
	for range 5 {
		e.credential("/token/mydmrapp")
	}
	_, h := e.refused("/token/mydmrapp", http.StatusTooManyRequests)
	if h.Get("Retry-After") != "2" {
		t.Fatalf("Retry-After %q, want 2", h.Get("Retry-After"))
	}
	e.clock.Advance(2 * time.Second)
	e.credential("/token/mydmrapp")
	e.refused("/token/mydmrapp", http.StatusTooManyRequests)
}

func TestLimiterGroupsIPv6(t *testing.T) {
	clock := newFakeClock()
	l := newLimiter(RateLimitConfig{RequestBurst: 2, FailuresPerMinute: -1}, clock.Now)
	a := netip.MustParseAddr("2001:db8:1:2::1")
	b := netip.MustParseAddr("2001:db8:1:2:ffff::9") // same /64
	c := netip.MustParseAddr("2001:db8:1:3::1")      // another /64
	if ok, _ := l.allow(a); !ok {
		t.Fatal("first")
	}
	if ok, _ := l.allow(b); !ok {
		t.Fatal("second")
	}
	if ok, wait := l.allow(a); ok || wait != time.Second {
		t.Fatalf("third from the same /64: ok %v wait %v", ok, wait)
	}
	if ok, _ := l.allow(c); !ok {
		t.Fatal("another /64 must have its own bucket")
	}
}

func TestLimiterPrunes(t *testing.T) {
	clock := newFakeClock()
	l := newLimiter(RateLimitConfig{}, clock.Now)
	for i := range maxLimiterEntries + 10 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		l.allow(a)
		if i == maxLimiterEntries/2 {
			clock.Advance(time.Hour) // the first half refills and may be forgotten
		}
	}
	if n := len(l.callers); n > maxLimiterEntries {
		t.Fatalf("%d entries, bound %d", n, maxLimiterEntries)
	}
}

func TestUnknownAppAndMethod(t *testing.T) {
	e := newAuthEnv(t, "null", "")
	if er, _ := e.refused("/token/nosuchapp", http.StatusNotFound); er.Error != "unknown_app" {
		t.Fatalf("%+v", er)
	}
	if er, _ := e.refused("/token", http.StatusNotFound); er.Error != "unknown_app" {
		t.Fatalf("%+v", er)
	}
	e.refused("/token/mydmrapp?app=other", http.StatusBadRequest)
	e.refused("/elsewhere", http.StatusNotFound)
	resp, err := e.ts.Client().Post(e.ts.URL+"/token/mydmrapp", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET" {
		t.Fatalf("POST: %d Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	status, _, body := e.get("/healthz")
	if status != http.StatusOK || !strings.Contains(string(body), `"status":"ok"`) {
		t.Fatalf("healthz: %d %s", status, body)
	}
	if v := e.metric(`go_goroutines`); v <= 0 {
		t.Fatalf("Go runtime metrics missing (go_goroutines = %v)", v)
	}
}

// assertNoSecretsLogged fails if any secret, or any query string, reached
// the log.
func assertNoSecretsLogged(t *testing.T, e *testEnv, secrets ...string) {
	t.Helper()
	logs := e.logs.String()
	if logs == "" {
		t.Fatal("nothing was logged")
	}
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("log contains a secret %q:\n%s", s, logs)
		}
	}
	for _, bad := range []string{"code=", "?", "Bearer", "ya29."} {
		if strings.Contains(logs, bad) {
			t.Errorf("log contains %q:\n%s", bad, logs)
		}
	}
}
