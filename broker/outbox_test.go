package broker

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rewind-broker/rewind/tokensvc"
)

func TestOutboxExpiry(t *testing.T) {
	w := newPushWorld(t, func(c *PushConfig) { c.OutboxTTL = time.Minute })
	w.addTerminal(bob, "b")
	w.publishText(t, bob, 2620009, "stale soon")
	w.publishText(t, bob, 2620009, "stale too")
	if n := w.srv.expireOnce(time.Now().Add(59 * time.Second)); n != 0 {
		t.Fatalf("%d expired before their TTL", n)
	}
	if n := w.srv.expireOnce(time.Now().Add(61 * time.Second)); n != 2 {
		t.Fatalf("%d expired after the TTL, want 2", n)
	}
	if n, _, _ := w.store.Depth(context.Background(), bob); n != 0 {
		t.Fatalf("depth %d after expiry", n)
	}
	_, body := w.adminDo("GET", "/metrics", testAdminKey, "")
	if !strings.Contains(body, "rewind_outbox_expired_total 2") {
		t.Fatal("expiries not counted")
	}
	if !strings.Contains(w.logs.String(), "outbox entry expired unacknowledged") {
		t.Fatal("expiry not logged")
	}
}

// TestTokenCachePersists: a broker restarted on the same registry does not refetch a credential
// it already holds.
func TestTokenCachePersists(t *testing.T) {
	w := newPushWorld(t)
	cache := TokenCache{Blobs: w.store}
	url := w.tokenURL("fcm")
	c1, err := tokensvc.NewClient(tokensvc.ClientConfig{Policy: tokensvc.URLPolicy{AllowInsecure: true}, Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	first, err := c1.Get(context.Background(), url)
	c1.Close()
	if err != nil {
		t.Fatal(err)
	}
	before := w.vendorReq.Load()
	c2, err := tokensvc.NewClient(tokensvc.ClientConfig{Policy: tokensvc.URLPolicy{AllowInsecure: true}, Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	second, err := c2.Get(context.Background(), url)
	if err != nil || second.Token != first.Token {
		t.Fatalf("second client: %v %v", second, err)
	}
	if w.vendorReq.Load() != before {
		t.Fatal("the restarted client refetched a cached credential")
	}
	// The URL's secret is not a database key.
	if _, _, err := w.store.GetBlob(context.Background(), tokenCachePrefix+url); err == nil {
		t.Fatal("credential stored under the clear URL")
	}
}
