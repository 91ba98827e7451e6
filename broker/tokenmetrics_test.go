package broker

import (
	"strings"
	"testing"
	"time"

	"github.com/rewind-broker/rewind/tokensvc"
)

func TestTokenMetrics(t *testing.T) {
	var srv *Server
	late := &lateTokens{}
	w := newPushWorld(t, func(c *PushConfig) { c.Tokens = late })
	srv = w.srv
	var err error
	late.c, err = tokensvc.NewClient(tokensvc.ClientConfig{
		Policy:  tokensvc.URLPolicy{AllowInsecure: true},
		Clock:   w.clock,
		OnFetch: func(outcome string, d time.Duration) { srv.ObserveTokenFetch(outcome, d) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer late.c.Close()
	w.attachDirect(t, bob, "fcm")
	if res := w.publishText(t, bob, 2620009, "x"); res["push"] != WakeSent {
		t.Fatalf("publish: %v", res)
	}
	_, body := w.adminDo("GET", "/metrics", testAdminKey, "")
	host := strings.TrimPrefix(w.vendor.URL, "http://")
	for _, want := range []string{
		`rewind_token_fetches_total{outcome="ok"} 1`,
		`rewind_token_fetch_seconds_count 1`,
		`rewind_token_credential_expiry_seconds{host="` + host + `"} 3600`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q in:\n%s", want, grepLines(body, "rewind_token"))
		}
	}
	if strings.Contains(body, "s3cret-code") {
		t.Fatal("a token-service query string reached the metrics")
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
