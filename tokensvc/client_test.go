package tokensvc

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestClientConcurrentGetsShareOneRequest(t *testing.T) {
	stub := newVendorStub(t)
	env := newClientEnv(t, stub, ClientConfig{})
	release := stub.hold()

	const callers = 1000
	var waiting sync.WaitGroup
	waiting.Add(callers)
	env.c.waitHook = waiting.Done

	results := make(chan error, callers)
	for range callers {
		go func() {
			cred, err := env.c.Get(context.Background(), vendorURL)
			if err == nil && cred.Token != "tok-1" {
				err = errors.New("got token " + cred.Token)
			}
			results <- err
		}()
	}
	waiting.Wait() // every caller waits for the one request, which is held
	release()
	for range callers {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	if n := stub.count(); n != 1 {
		t.Fatalf("%d concurrent Gets made %d requests, want 1", callers, n)
	}
	req := <-stub.arrived
	if req.Header.Get("Accept") != "application/json" {
		t.Errorf("Accept %q", req.Header.Get("Accept"))
	}
	if req.Header.Get("Authorization") != "" {
		t.Errorf("Authorization sent without a bearer key configured")
	}
}

func TestClientRefreshAhead(t *testing.T) {
	stub := newVendorStub(t)
	env := newClientEnv(t, stub, ClientConfig{})

	cred := env.mustGet(t, vendorURL)
	if cred.Token != "tok-1" || cred.Type != TypeFCM || cred.Project != "mydmrapp-jaso42" || cred.Expires != 3600 {
		t.Fatalf("first Get: %+v", cred)
	}
	// Cached, without a request, until the refresh margin (5 min for an hour).
	env.clock.Advance(time.Hour - DefaultRefreshMargin - time.Second)
	if cred := env.mustGet(t, vendorURL); cred.Token != "tok-1" || cred.Expires != 301 {
		t.Fatalf("before the margin: %+v, want tok-1 with 301 s left", cred)
	}
	if n := stub.count(); n != 1 {
		t.Fatalf("%d requests before the margin, want 1", n)
	}

	// Within the margin: the old token is still handed out while one
	// background refresh runs.
	release := stub.hold()
	env.clock.Advance(time.Second)
	if cred := env.mustGet(t, vendorURL); cred.Token != "tok-1" {
		t.Fatalf("within the margin: %s, want the old token", cred.Token)
	}
	<-stub.arrived // the first request
	<-stub.arrived // the refresh, now held by the stub
	for range 10 {
		if cred := env.mustGet(t, vendorURL); cred.Token != "tok-1" {
			t.Fatalf("during the refresh: %s, want the old token", cred.Token)
		}
	}
	if n := stub.count(); n != 2 {
		t.Fatalf("%d requests during the refresh, want 2", n)
	}
	release()
	env.c.waitBackground()
	if cred := env.mustGet(t, vendorURL); cred.Token != "tok-2" || cred.Expires != 3600 {
		t.Fatalf("after the refresh: %+v, want tok-2 for an hour", cred)
	}
	if n := stub.count(); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
}

func TestClientInvalidate(t *testing.T) {
	stub := newVendorStub(t)
	env := newClientEnv(t, stub, ClientConfig{})
	env.mustGet(t, vendorURL)

	env.c.Invalidate(vendorURL, "some-other-token")
	env.c.Invalidate("https://other.example.com/x", "tok-1")
	if cred := env.mustGet(t, vendorURL); cred.Token != "tok-1" || stub.count() != 1 {
		t.Fatalf("Invalidate of another token dropped ours: %s after %d requests", cred.Token, stub.count())
	}

	// FCM answered 401 for tok-1 to many pushes at once: they all
	// invalidate it and retry, and exactly one refetch follows.
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	env.c.Invalidate(vendorURL, "tok-1")
	for range 100 {
		wg.Go(func() {
			env.c.Invalidate(vendorURL, "tok-1")
			cred, err := env.c.Get(context.Background(), vendorURL)
			if err == nil && cred.Token != "tok-2" {
				err = errors.New("got " + cred.Token)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := stub.count(); n != 2 {
		t.Fatalf("%d requests after Invalidate, want 2", n)
	}
	// A late Invalidate for the old token changes nothing.
	env.c.Invalidate(vendorURL, "tok-1")
	if cred := env.mustGet(t, vendorURL); cred.Token != "tok-2" || stub.count() != 2 {
		t.Fatalf("stale Invalidate dropped the new token: %s after %d requests", cred.Token, stub.count())
	}
}

func TestClientContextEndsWait(t *testing.T) {
	stub := newVendorStub(t)
	env := newClientEnv(t, stub, ClientConfig{})
	release := stub.hold()

	ctx, cancel := context.WithCancel(context.Background())
	waiting := make(chan struct{})
	env.c.waitHook = func() { close(waiting) }
	done := make(chan error, 1)
	go func() {
		_, err := env.c.Get(ctx, vendorURL)
		done <- err
	}()
	<-waiting
	env.c.waitHook = nil
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Get after cancel: %v, want context.Canceled", err)
	}
	// The fetch went on for everyone else.
	release()
	if cred := env.mustGet(t, vendorURL); cred.Token != "tok-1" || stub.count() != 1 {
		t.Fatalf("after cancel: %s with %d requests, want tok-1 with 1", cred.Token, stub.count())
	}
}

func TestClientClose(t *testing.T) {
	stub := newVendorStub(t)
	env := newClientEnv(t, stub, ClientConfig{})
	stub.hold() // never answered: Close must cancel it

	waiting := make(chan struct{})
	env.c.waitHook = func() { close(waiting) }
	done := make(chan error, 1)
	go func() {
		_, err := env.c.Get(context.Background(), vendorURL)
		done <- err
	}()
	<-waiting
	if err := env.c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrClientClosed) {
		t.Fatalf("Get in flight at Close: %v, want ErrClientClosed", err)
	}
	if _, err := env.c.Get(context.Background(), vendorURL); !errors.Is(err, ErrClientClosed) {
		t.Fatalf("Get after Close: %v, want ErrClientClosed", err)
	}
	if err := env.c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if got := env.fetchOutcomes(); len(got) != 0 {
		t.Errorf("a fetch cancelled by Close was reported as %v", got)
	}
}

func TestClientPolicyRefusalMakesNoRequest(t *testing.T) {
	stub := newVendorStub(t)
	env := newClientEnv(t, stub, ClientConfig{Policy: URLPolicy{AllowedHosts: []string{"vendor.example.com"}}})
	for _, u := range []string{"https://evil.example.com/x", "http://vendor.example.com/x", stub.ts.URL + "/x"} {
		if _, err := env.c.Get(context.Background(), u); !errors.Is(err, ErrURLPolicy) {
			t.Errorf("Get(%s): %v, want ErrURLPolicy", u, err)
		}
	}
	if n := stub.count(); n != 0 {
		t.Fatalf("refused URLs made %d requests", n)
	}
}

func TestClientDefaultTransport(t *testing.T) {
	var hits int
	var mu sync.Mutex
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits++
		mu.Unlock()
		fcmAnswer(3600)(w, r, 1)
	})

	// A host name on the allow-list that resolves to loopback is refused
	// when dialling: DNS cannot smuggle the broker into its own network.
	tls := httptest.NewTLSServer(handler)
	defer tls.Close()
	_, port, _ := strings.Cut(tls.Listener.Addr().String(), ":")
	strict := newClientEnv(t, nil, ClientConfig{Policy: URLPolicy{AllowedHosts: []string{"localhost"}}})
	_, err := strict.c.Get(context.Background(), "https://localhost:"+port+"/token?code="+vendorSecret)
	if !errors.Is(err, ErrURLPolicy) || !errors.Is(err, ErrTokenService) || !errors.Is(err, ErrBackoff) {
		t.Fatalf("Get via localhost: %v, want a dial-time ErrURLPolicy", err)
	}
	if strings.Contains(err.Error(), vendorSecret) {
		t.Errorf("error quotes the query: %v", err)
	}
	strict.c.Close()

	// Development mode dials loopback (plain http here: the test is about
	// the dialer, and the default transport does not trust the test CA).
	plain := httptest.NewServer(handler)
	defer plain.Close()
	dev := newClientEnv(t, nil, ClientConfig{Policy: URLPolicy{AllowInsecure: true}})
	if cred := dev.mustGet(t, plain.URL+"/token"); cred.Token != "tok-1" {
		t.Fatalf("dev Get: %+v", cred)
	}
	dev.c.Close()
	mu.Lock()
	defer mu.Unlock()
	if hits != 1 {
		t.Fatalf("%d requests reached the servers, want 1 (the dev one)", hits)
	}
}

func TestClientBearerKeyOnlyToItsHost(t *testing.T) {
	stub := newVendorStub(t)
	env := newClientEnv(t, stub, ClientConfig{BearerKeys: map[string]string{
		"A.example.com":      "key-a",
		"other.example.com":  "key-other",
		"a.example.com:8443": "key-a-8443",
	}})
	env.mustGet(t, "https://a.example.com/token")
	env.mustGet(t, "https://b.example.com/token")
	got := map[string]string{}
	for range 2 {
		r := <-stub.arrived
		got[r.Host] = r.Header.Get("Authorization")
	}
	if got["a.example.com"] != "Bearer key-a" {
		t.Errorf("a.example.com got Authorization %q, want its key", got["a.example.com"])
	}
	if v, ok := got["b.example.com"]; !ok || v != "" {
		t.Errorf("b.example.com got Authorization %q (seen %v), want none", v, ok)
	}

	u, _ := env.c.policy.Check("https://a.example.com:8443/token")
	if k, _ := env.c.bearerKey(u); k != "key-a-8443" {
		t.Errorf("host:port key: %q", k)
	}
	if _, err := NewClient(ClientConfig{BearerKeys: map[string]string{"https://a.example.com/": "k"}}); err == nil {
		t.Error("a URL as a BearerKeys host was accepted")
	}
}

func TestClientAPNsAndClamp(t *testing.T) {
	stub := newVendorStub(t)
	stub.setRespond(func(w http.ResponseWriter, _ *http.Request, _ int64) {
		writeTestJSON(w, http.StatusOK, Credential{Type: TypeAPNs, Topic: "com.example.app", Token: "eyJ.jwt.sig",
			Expires: 10 * 86400, Environment: EnvironmentDevelopment})
	})
	env := newClientEnv(t, stub, ClientConfig{})
	cred := env.mustGet(t, vendorURL)
	want := Credential{Type: TypeAPNs, Topic: "com.example.app", Token: "eyJ.jwt.sig", Expires: 86400, Environment: EnvironmentDevelopment}
	if cred != want {
		t.Fatalf("got %+v, want %+v", cred, want)
	}
	env.clock.Advance(24 * time.Hour)
	stub.setRespond(statusAnswer(http.StatusInternalServerError))
	if _, err := env.c.Get(context.Background(), vendorURL); !errors.Is(err, ErrTokenService) {
		t.Fatalf("after the clamped lifetime: %v, want a refetch that fails", err)
	}
}

func TestClientMalformedResponses(t *testing.T) {
	const token = "tok-SECRET-value"
	raw := func(contentType, body string) func(http.ResponseWriter, *http.Request, int64) {
		return func(w http.ResponseWriter, _ *http.Request, _ int64) {
			w.Header().Set("Content-Type", contentType)
			w.Write([]byte(body))
		}
	}
	const js = "application/json"
	tests := []struct {
		name    string
		respond func(http.ResponseWriter, *http.Request, int64)
		reason  string
	}{
		{"bad JSON", raw(js, `{"type":"FCM HTTP v1","token":"`+token), "not a credential JSON object"},
		{"trailing data", raw(js, `{"type":"FCM HTTP v1","project":"p","token":"`+token+`","expires":60} {}`), "not a credential JSON object"},
		{"array", raw(js, `["`+token+`"]`), "not a credential JSON object"},
		{"expires as string", raw(js, `{"type":"FCM HTTP v1","project":"p","token":"`+token+`","expires":"60"}`), `field "expires"`},
		{"missing token", raw(js, `{"type":"FCM HTTP v1","project":"p","expires":60}`), `"token" is missing`},
		{"negative expires", raw(js, `{"type":"FCM HTTP v1","project":"p","token":"`+token+`","expires":-5}`), `"expires" is -5`},
		{"zero expires", raw(js, `{"type":"FCM HTTP v1","project":"p","token":"`+token+`"}`), `"expires" is 0`},
		{"wrong type", raw(js, `{"type":"GCM","project":"p","token":"`+token+`","expires":60}`), `"type" is "GCM"`},
		{"FCM without project", raw(js, `{"type":"FCM HTTP v1","token":"`+token+`","expires":60}`), `without "project"`},
		{"APNs without topic", raw(js, `{"type":"APNs","token":"`+token+`","expires":60,"environment":"production"}`), `without "topic"`},
		{"APNs without environment", raw(js, `{"type":"APNs","topic":"t","token":"`+token+`","expires":60}`), `"environment"`},
		{"token with a space", raw(js, `{"type":"FCM HTTP v1","project":"p","token":"a b","expires":60}`), "not allowed in an HTTP header"},
		{"HTML", raw("text/html", `<html>`+token+`</html>`), "Content-Type"},
		{"no content type", func(w http.ResponseWriter, _ *http.Request, _ int64) {
			w.Header()["Content-Type"] = nil
			w.Write([]byte(`{}`))
		}, "Content-Type"},
		{"2 MB body", raw(js, `{"type":"FCM HTTP v1","project":"p","token":"`+token+`","expires":60,"pad":"`+strings.Repeat("x", 2<<20)+`"}`), "exceeds 65536 bytes"},
		{"redirect", func(w http.ResponseWriter, r *http.Request, _ int64) {
			http.Redirect(w, r, "https://vendor.example.com/elsewhere", http.StatusFound)
		}, "redirects are not followed"},
		{"204", func(w http.ResponseWriter, _ *http.Request, _ int64) { w.WriteHeader(http.StatusNoContent) }, "HTTP 204"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stub := newVendorStub(t)
			stub.setRespond(tt.respond)
			env := newClientEnv(t, stub, ClientConfig{})
			_, err := env.c.Get(context.Background(), vendorURL)
			if !errors.Is(err, ErrTokenService) || !errors.Is(err, ErrBackoff) {
				t.Fatalf("Get: %v, want ErrTokenService in backoff", err)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("error %q does not say %q", err, tt.reason)
			}
			if !strings.Contains(err.Error(), "https://vendor.example.com/token/mydmrapp") {
				t.Errorf("error %q does not name the URL", err)
			}
			for _, secret := range []string{token, vendorSecret} {
				if strings.Contains(err.Error(), secret) || strings.Contains(env.logs.String(), secret) {
					t.Errorf("error or log quotes %q: %v", secret, err)
				}
			}
			if got := env.fetchOutcomes(); len(got) != 1 || got[0] != OutcomeInvalid {
				t.Errorf("outcomes %v, want [invalid]", got)
			}
			if n := stub.count(); n != 1 {
				t.Errorf("%d requests, want 1 (redirects not followed)", n)
			}
		})
	}
}

func TestClientLogsNoSecrets(t *testing.T) {
	stub := newVendorStub(t)
	cache := &MemoryCache{}
	env := newClientEnv(t, stub, ClientConfig{Cache: cache, BearerKeys: map[string]string{"vendor.example.com": "bearer-SECRET"}})

	cred := env.mustGet(t, vendorURL)
	env.c.Invalidate(vendorURL, cred.Token)
	stub.setRespond(statusAnswer(http.StatusUnauthorized)) // its reason quotes the code
	_, err := env.c.Get(context.Background(), vendorURL)
	if !errors.Is(err, ErrTokenService) || !strings.Contains(err.Error(), "HTTP 401 (upstream_error)") {
		t.Fatalf("Get: %v, want HTTP 401 with the service's error code", err)
	}
	_, perr := env.c.Get(context.Background(), "https://user:pw-SECRET@vendor.example.com/x?code="+vendorSecret)

	logs := env.logs.String()
	for _, secret := range []string{vendorSecret, "code=", cred.Token, "bearer-SECRET", "pw-SECRET"} {
		for what, text := range map[string]string{"log": logs, "error": err.Error(), "policy error": perr.Error()} {
			if strings.Contains(text, secret) {
				t.Errorf("%s contains %q:\n%s", what, secret, text)
			}
		}
	}
	for _, want := range []string{`"url":"https://vendor.example.com/token/mydmrapp"`, `"token_fp":"` + tokenFingerprint(cred.Token) + `"`, `"outcome":"http_4xx"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
}

func TestNewClientConfigErrors(t *testing.T) {
	for name, cfg := range map[string]ClientConfig{
		"negative margin":  {RefreshMargin: -time.Second},
		"negative backoff": {MinBackoff: -time.Second},
		"min above max":    {MinBackoff: time.Hour, MaxBackoff: time.Minute},
		"empty key":        {BearerKeys: map[string]string{"vendor.example": ""}},
		"wildcard host":    {BearerKeys: map[string]string{"*.vendor.example": "k"}},
	} {
		if c, err := NewClient(cfg); err == nil {
			c.Close()
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestClientEntriesBounded(t *testing.T) {
	env := newClientEnv(t, nil, ClientConfig{})
	env.c.mu.Lock()
	defer env.c.mu.Unlock()
	for i := range maxEntries {
		e := env.c.entryLocked(fmt.Sprintf("https://vendor.example.com/t?terminal=%d", i))
		if i%2 == 0 { // half hold a valid credential
			e.have, e.expiry = true, env.clock.Now().Add(time.Hour)
		}
	}
	env.c.entryLocked("https://vendor.example.com/t?terminal=new")
	if n := len(env.c.entries); n > maxEntries*3/4+1 {
		t.Fatalf("%d entries after pruning, want at most %d", n, maxEntries*3/4+1)
	}
}
