package tokensvc

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func newFCMEnv(t *testing.T) (*testEnv, *fakeGoogle) {
	t.Helper()
	g := newFakeGoogle(t)
	e := newTestEnv(t, g, fcmConfig(""), files{"sa.json": string(g.serviceAccountJSON())}, nil)
	return e, g
}

func TestFCMCredential(t *testing.T) {
	e, g := newFCMEnv(t)
	c := e.credential("/token/mydmrapp")
	want := Credential{Type: TypeFCM, Project: "mydmrapp-jaso42", Token: "ya29.fake-token-1", Expires: 3300}
	if c != want {
		t.Fatalf("got %+v, want %+v", c, want)
	}
	// The ?app= form names the same app and gets the cached token.
	if c2 := e.credential("/token?app=mydmrapp"); c2.Token != c.Token {
		t.Fatalf("?app= form: token %q, want %q", c2.Token, c.Token)
	}
	if c3 := e.credential("/token/?app=mydmrapp"); c3.Token != c.Token {
		t.Fatalf("/token/?app= form: token %q, want %q", c3.Token, c.Token)
	}
	if n := g.mints.Load(); n != 1 {
		t.Fatalf("%d mints, want 1", n)
	}
	// The wire form is exactly PROTOCOL.md §8's.
	_, h, body := e.get("/token/mydmrapp")
	if cc := h.Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("Cache-Control %q, want no-store", cc)
	}
	var raw map[string]any
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	if len(raw) != 4 || raw["type"] != "FCM HTTP v1" || raw["project"] != "mydmrapp-jaso42" || raw["expires"] != 3300.0 {
		t.Fatalf("wire form %s", body)
	}
	if v := e.metric(`tokensvc_requests_total{app="mydmrapp",result="ok"}`); v != 4 {
		t.Fatalf("requests ok = %v, want 4", v)
	}
	if v := e.metric(`tokensvc_mint_duration_seconds_count{app="mydmrapp",kind="fcm"}`); v != 1 {
		t.Fatalf("mint histogram count = %v, want 1", v)
	}
	if v := e.metric(`tokensvc_credential_expiry_seconds{app="mydmrapp"}`); v != 3300 {
		t.Fatalf("expiry gauge = %v, want 3300", v)
	}
	if logs := e.logs.String(); strings.Contains(logs, "ya29.") {
		t.Fatalf("a token was logged: %s", logs)
	}
}

// TestFCMConcurrentSingleMint: 100 brokers asking at once cause one call to
// Google. The fake endpoint holds the first mint until all 100 requests have
// reached the service, so they really overlap.
func TestFCMConcurrentSingleMint(t *testing.T) {
	g := newFakeGoogle(t)
	gate := make(chan struct{})
	g.gate = gate
	const n = 100
	var entered sync.WaitGroup
	entered.Add(n)
	countEntered := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			entered.Done()
			h.ServeHTTP(w, r)
		})
	}
	// Every request comes from 127.0.0.1: lift the per-address limit.
	config := `{"rate_limit": {"requests_per_second": -1},
		"apps": [{"name": "mydmrapp", "kind": "fcm", "service_account_file": "sa.json"}]}`
	e := newTestEnv(t, g, config, files{"sa.json": string(g.serviceAccountJSON())}, nil, countEntered)
	go func() {
		entered.Wait()
		close(gate)
	}()

	tokens := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			status, _, body := e.get("/token/mydmrapp")
			if status != http.StatusOK {
				t.Errorf("request %d: %d %s", i, status, body)
				return
			}
			var c Credential
			if err := json.Unmarshal(body, &c); err != nil {
				t.Error(err)
			}
			tokens[i] = c.Token
		})
	}
	wg.Wait()
	if m := g.mints.Load(); m != 1 {
		t.Fatalf("%d upstream mints for %d concurrent requests, want 1", m, n)
	}
	for i, tok := range tokens {
		if tok != "ya29.fake-token-1" {
			t.Fatalf("request %d got token %q", i, tok)
		}
	}
}

// TestFCMExpiry: the token is reused, its expires counts down, and a new one
// is minted when expiry minus the 5-minute margin is reached.
func TestFCMExpiry(t *testing.T) {
	e, g := newFCMEnv(t)
	if c := e.credential("/token/mydmrapp"); c.Expires != 3300 || c.Token != "ya29.fake-token-1" {
		t.Fatalf("first: %+v", c)
	}
	e.clock.Advance(10 * time.Minute)
	if c := e.credential("/token/mydmrapp"); c.Expires != 2700 || c.Token != "ya29.fake-token-1" {
		t.Fatalf("after 10m: %+v", c)
	}
	e.clock.Advance(45*time.Minute - 1*time.Second) // 1 s before expiry − margin
	if c := e.credential("/token/mydmrapp"); c.Expires != 1 || c.Token != "ya29.fake-token-1" {
		t.Fatalf("after 54m59s: %+v", c)
	}
	if m := g.mints.Load(); m != 1 {
		t.Fatalf("%d mints before the refresh point, want 1", m)
	}
	e.clock.Advance(time.Second) // expiry − margin: the token is no longer handed out
	if c := e.credential("/token/mydmrapp"); c.Expires != 3300 || c.Token != "ya29.fake-token-2" {
		t.Fatalf("after 55m: %+v", c)
	}
	if m := g.mints.Load(); m != 2 {
		t.Fatalf("%d mints after the refresh point, want 2", m)
	}
}

// TestFCMShortLivedToken: a lifetime shorter than twice the margin is
// handed out for half of it, not refused or re-minted on every request.
func TestFCMShortLivedToken(t *testing.T) {
	e, g := newFCMEnv(t)
	g.mu.Lock()
	g.expiresIn = 300
	g.mu.Unlock()
	if c := e.credential("/token/mydmrapp"); c.Expires != 150 {
		t.Fatalf("expires %d, want 150", c.Expires)
	}
	e.credential("/token/mydmrapp")
	if m := g.mints.Load(); m != 1 {
		t.Fatalf("%d mints, want 1", m)
	}
}

// TestFCMUpstreamErrors: Google's failures become 502 with a reason, and
// nothing is cached: the next request asks Google again.
func TestFCMUpstreamErrors(t *testing.T) {
	e, g := newFCMEnv(t)
	cases := []struct {
		status     int
		body       string
		wantReason string
	}{
		{500, `{"error":"internal_failure"}`, "Google token endpoint answered HTTP 500: internal_failure"},
		{503, `<html>busy</html>`, "Google token endpoint answered HTTP 503"},
		{400, `{"error":"invalid_grant","error_description":"Invalid JWT Signature."}`,
			"Google token endpoint answered HTTP 400: invalid_grant (Invalid JWT Signature.); the service-account key may be revoked or deleted, or this host's clock is wrong"},
	}
	for i, tc := range cases {
		g.fail(tc.status, tc.body)
		er, _ := e.refused("/token/mydmrapp", http.StatusBadGateway)
		if er.Error != "upstream_error" || er.Reason != tc.wantReason {
			t.Errorf("HTTP %d: got %+v, want reason %q", tc.status, er, tc.wantReason)
		}
		if m := g.mints.Load(); m != int64(i+1) {
			t.Fatalf("after failure %d: %d mints, want %d (a failure must not be cached)", i+1, m, i+1)
		}
	}
	if v := e.metric(`tokensvc_requests_total{app="mydmrapp",result="upstream_error"}`); v != 3 {
		t.Fatalf("upstream_error count %v, want 3", v)
	}
	if v := e.metric(`tokensvc_mint_failures_total{app="mydmrapp",kind="fcm"}`); v != 3 {
		t.Fatalf("mint failures %v, want 3", v)
	}
	if v := e.metric(`tokensvc_credential_expiry_seconds{app="mydmrapp"}`); v != -1 {
		t.Fatalf("expiry gauge %v present with no credential", v)
	}
	g.fail(0, "")
	if c := e.credential("/token/mydmrapp"); c.Token != "ya29.fake-token-1" {
		t.Fatalf("after recovery: %+v", c)
	}
	if m := g.mints.Load(); m != 4 {
		t.Fatalf("%d mints, want 4", m)
	}
}

// TestFCMUnreachable: a token_uri nobody answers gives a 502 that says so.
func TestFCMUnreachable(t *testing.T) {
	g := newFakeGoogle(t)
	sa := g.serviceAccountJSON()
	g.srv.Close()
	e := newTestEnv(t, g, fcmConfig(""), files{"sa.json": string(sa)}, nil)
	er, _ := e.refused("/token/mydmrapp", http.StatusBadGateway)
	if !strings.HasPrefix(er.Reason, "cannot reach Google token endpoint: ") {
		t.Fatalf("reason %q", er.Reason)
	}
}

// TestFCMServiceAccountFromEnv: the key may come from an environment
// variable instead of a file.
func TestFCMServiceAccountFromEnv(t *testing.T) {
	g := newFakeGoogle(t)
	e := newTestEnv(t, g,
		`{"apps": [{"name": "envapp", "kind": "fcm", "service_account_env": "SA_JSON", "project_id": "other-project"}]}`,
		nil, map[string]string{"SA_JSON": string(g.serviceAccountJSON())})
	c := e.credential("/token/envapp")
	if c.Project != "other-project" || c.Token != "ya29.fake-token-1" {
		t.Fatalf("%+v", c)
	}
}
