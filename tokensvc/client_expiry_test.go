package tokensvc

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestClientExpiries(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		expires := int64(3600)
		if strings.HasSuffix(r.URL.Path, "/short") {
			expires = 600
		}
		json.NewEncoder(w).Encode(Credential{Type: TypeFCM, Project: "p", Token: "tok", Expires: expires})
	}))
	defer srv.Close()
	c, err := NewClient(ClientConfig{Policy: URLPolicy{AllowInsecure: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.Expiries(); len(got) != 0 {
		t.Fatalf("before any fetch: %v", got)
	}
	for _, path := range []string{"/long?code=secret", "/short?code=secret"} {
		if _, err := c.Get(context.Background(), srv.URL+path); err != nil {
			t.Fatal(err)
		}
	}
	got := c.Expiries()
	if len(got) != 1 || got[0].Host != strings.TrimPrefix(srv.URL, "http://") {
		t.Fatalf("expiries: %v", got)
	}
	if left := got[0].Expires.Sub(c.clock.Now()).Seconds(); left < 590 || left > 600 {
		t.Fatalf("soonest expiry in %.0f s, want the short credential's 600 s", left)
	}
}
