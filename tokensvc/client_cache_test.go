package tokensvc

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestClientPersistence(t *testing.T) {
	stub := newVendorStub(t)
	cache := &MemoryCache{}

	first := newClientEnv(t, stub, ClientConfig{Cache: cache})
	if cred := first.mustGet(t, vendorURL); cred.Token != "tok-1" {
		t.Fatalf("first client: %s", cred.Token)
	}
	first.c.Close()

	keys := cache.Keys()
	if len(keys) != 1 || keys[0] != cacheKey(vendorURL) || len(keys[0]) != 64 || strings.Contains(keys[0], "example") {
		t.Fatalf("cache keys %q, want one SHA-256 hex of the URL", keys)
	}

	// A restarted broker: same cache, ten minutes later. No request.
	second := newClientEnv(t, stub, ClientConfig{Cache: cache})
	second.clock.Advance(10 * time.Minute)
	cred := second.mustGet(t, vendorURL)
	if cred.Token != "tok-1" || cred.Expires != 3000 || stub.count() != 1 {
		t.Fatalf("restarted client: %+v after %d requests, want tok-1 with 3000 s left and no request", cred, stub.count())
	}

	// Invalidate removes it from the cache too; the refetch stores the new one.
	second.c.Invalidate(vendorURL, "tok-1")
	if len(cache.Keys()) != 0 {
		t.Fatal("Invalidate left the token in the cache")
	}
	if cred := second.mustGet(t, vendorURL); cred.Token != "tok-2" {
		t.Fatalf("after Invalidate: %s", cred.Token)
	}
	if got, exp, ok, _ := cache.LoadCredential(context.Background(), cacheKey(vendorURL)); !ok || got.Token != "tok-2" ||
		!exp.Equal(second.clock.Now().Add(time.Hour)) {
		t.Fatalf("cache holds %+v until %v (%v)", got, exp, ok)
	}
	second.c.Close()

	// Past expiry, a persisted credential is not used.
	third := newClientEnv(t, stub, ClientConfig{Cache: cache})
	third.clock.Advance(2 * time.Hour)
	if cred := third.mustGet(t, vendorURL); cred.Token != "tok-3" {
		t.Fatalf("expired cache entry: got %s, want a refetch", cred.Token)
	}
}

// failingCache is a CredentialCache whose every call fails.
type failingCache struct{}

var errCacheDown = errors.New("cache down")

func (failingCache) LoadCredential(context.Context, string) (Credential, time.Time, bool, error) {
	return Credential{}, time.Time{}, false, errCacheDown
}

func (failingCache) StoreCredential(context.Context, string, Credential, time.Time) error {
	return errCacheDown
}
func (failingCache) DeleteCredential(context.Context, string) error { return errCacheDown }

func TestClientCacheFailuresAreNotFatal(t *testing.T) {
	stub := newVendorStub(t)
	env := newClientEnv(t, stub, ClientConfig{Cache: failingCache{}})
	if cred := env.mustGet(t, vendorURL); cred.Token != "tok-1" {
		t.Fatalf("Get: %+v", cred)
	}
	env.c.Invalidate(vendorURL, "tok-1")
	if cred := env.mustGet(t, vendorURL); cred.Token != "tok-2" {
		t.Fatalf("Get after Invalidate: %+v", cred)
	}
	if logs := env.logs.String(); strings.Count(logs, "cache down") != 4 {
		t.Errorf("want the load, two stores and the delete failure logged:\n%s", logs)
	}
}

func TestClientCachedCredentialValidated(t *testing.T) {
	stub := newVendorStub(t)
	cache := &MemoryCache{}
	now := newClientClock().Now()
	cache.StoreCredential(context.Background(), cacheKey(vendorURL), Credential{Type: "bogus", Token: "x", Expires: 60}, now.Add(time.Minute))
	env := newClientEnv(t, stub, ClientConfig{Cache: cache})
	if cred := env.mustGet(t, vendorURL); cred.Token != "tok-1" {
		t.Fatalf("an invalid cached credential was used: %+v", cred)
	}
}
