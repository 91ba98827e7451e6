package tokensvc

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"
)

// CredentialCache persists the client's credentials so that a restarted
// broker does not refetch every vendor's token. The broker's registry
// implements it; MemoryCache is an in-memory implementation for tests.
//
// Keys are the lowercase hex SHA-256 of the token-service URL: the URL holds
// secrets in its query, so it never becomes a database key in clear.
// Implementations must be safe for concurrent use. Errors are logged by the
// client and otherwise ignored: the cache saves requests, it is never needed
// for correctness.
type CredentialCache interface {
	// LoadCredential returns the credential stored under key and the time
	// it expires; ok is false when there is none. A credential past its
	// expiry may be returned; the client ignores it.
	LoadCredential(ctx context.Context, key string) (c Credential, expiry time.Time, ok bool, err error)
	// StoreCredential stores c under key, replacing any previous one.
	StoreCredential(ctx context.Context, key string, c Credential, expiry time.Time) error
	// DeleteCredential removes the credential stored under key; deleting a
	// missing key is not an error.
	DeleteCredential(ctx context.Context, key string) error
}

// cacheKey is the CredentialCache key of a token-service URL.
func cacheKey(url string) string {
	sum := sha256.Sum256([]byte(url))
	return hex.EncodeToString(sum[:])
}

// MemoryCache is a CredentialCache held in memory: it survives a Client,
// not a process. The zero value is ready to use.
type MemoryCache struct {
	mu      sync.Mutex
	entries map[string]memoryCacheEntry // guarded by mu
}

type memoryCacheEntry struct {
	cred   Credential
	expiry time.Time
}

// LoadCredential implements CredentialCache.
func (m *MemoryCache) LoadCredential(_ context.Context, key string) (Credential, time.Time, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[key]
	return e.cred, e.expiry, ok, nil
}

// StoreCredential implements CredentialCache.
func (m *MemoryCache) StoreCredential(_ context.Context, key string, c Credential, expiry time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.entries == nil {
		m.entries = make(map[string]memoryCacheEntry)
	}
	m.entries[key] = memoryCacheEntry{cred: c, expiry: expiry}
	return nil
}

// DeleteCredential implements CredentialCache.
func (m *MemoryCache) DeleteCredential(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.entries, key)
	return nil
}

// Keys returns the keys currently stored, in no particular order.
func (m *MemoryCache) Keys() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	keys := make([]string, 0, len(m.entries))
	for k := range m.entries {
		keys = append(keys, k)
	}
	return keys
}
