package broker

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/rewind-broker/rewind/registry"
	"github.com/rewind-broker/rewind/tokensvc"
)

// TokenCache persists the token-service client's credentials in the registry, so a restarted
// broker does not refetch them. Keys are already hashes of the URL (the URL's secret never
// becomes a database key); values are encrypted at rest with the registry when it is.
type TokenCache struct{ Blobs registry.Blobs }

const tokenCachePrefix = "tokencache/"

// LoadCredential implements tokensvc.CredentialCache.
func (c TokenCache) LoadCredential(ctx context.Context, key string) (tokensvc.Credential, time.Time, bool, error) {
	b, expires, err := c.Blobs.GetBlob(ctx, tokenCachePrefix+key)
	if errors.Is(err, registry.ErrNotFound) {
		return tokensvc.Credential{}, time.Time{}, false, nil
	} else if err != nil {
		return tokensvc.Credential{}, time.Time{}, false, err
	}
	var cred tokensvc.Credential
	if err := json.Unmarshal(b, &cred); err != nil {
		return tokensvc.Credential{}, time.Time{}, false, nil // unreadable: refetch
	}
	return cred, expires, true, nil
}

// StoreCredential implements tokensvc.CredentialCache.
func (c TokenCache) StoreCredential(ctx context.Context, key string, cred tokensvc.Credential, expiry time.Time) error {
	b, err := json.Marshal(cred)
	if err != nil {
		return err
	}
	return c.Blobs.PutBlob(ctx, tokenCachePrefix+key, b, expiry)
}

// DeleteCredential implements tokensvc.CredentialCache.
func (c TokenCache) DeleteCredential(ctx context.Context, key string) error {
	return c.Blobs.DeleteBlob(ctx, tokenCachePrefix+key)
}

var _ tokensvc.CredentialCache = TokenCache{}
