package registry

import (
	"context"
	"fmt"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// Limits of a blob, enforced by every implementation.
const (
	// MaxBlobKeyBytes bounds a blob key: room for a namespace and a hash
	// or URL-derived name.
	MaxBlobKeyBytes = 256
	// MaxBlobBytes bounds a blob value: small state (a cached credential,
	// a JWT), like a datagram well within one transaction.
	MaxBlobBytes = 64 << 10
)

// Blobs is a small key/value store with expiry for state the broker wants
// to survive a restart, such as its cache of token-service credentials.
// Implementations are safe for concurrent use; every mutation is durable
// when the call returns. Values are copied in and out; keys may appear in
// error messages, values never do.
//
// Expiry is exact and explicit, as in the Outbox: a blob is expired from its
// expires instant on (by the store's clock), GetBlob treats an expired blob
// as absent, and ExpireBlobs removes expired blobs, so the broker calls it
// periodically. A zero expires never expires.
type Blobs interface {
	// PutBlob stores value under key, replacing the value and expiry of any
	// blob already there. key must hold 1..MaxBlobKeyBytes bytes (any
	// bytes), value at most MaxBlobBytes (empty is allowed); else
	// ErrInvalid. An expires not after now is accepted and is expired at
	// once.
	PutBlob(ctx context.Context, key string, value []byte, expires time.Time) error
	// GetBlob returns the value and expiry of key, or ErrNotFound when it is
	// absent or expired.
	GetBlob(ctx context.Context, key string) (value []byte, expires time.Time, err error)
	// DeleteBlob removes key; an absent key is no error.
	DeleteBlob(ctx context.Context, key string) error
	// ExpireBlobs removes every blob whose expires is not after now and
	// returns how many it removed.
	ExpireBlobs(ctx context.Context, now time.Time) (removed int, err error)
}

func validateBlobKey(key string) error {
	if len(key) == 0 || len(key) > MaxBlobKeyBytes {
		return fmt.Errorf("%w: blob key of %d bytes outside 1..%d", ErrInvalid, len(key), MaxBlobKeyBytes)
	}
	return nil
}

// blobRecord is the stored form of a blob; the key is the badger key.
type blobRecord struct {
	Version int       `msgpack:"v"`
	Value   blobBytes `msgpack:"d"`
	Expires int64     `msgpack:"e,omitempty"` // Unix ns, 0: never
}

// blobBytes decodes with a length check before allocating.
type blobBytes []byte

// DecodeMsgpack implements msgpack.CustomDecoder.
func (d *blobBytes) DecodeMsgpack(dec *msgpack.Decoder) error {
	b, err := decodeBoundedBytes(dec, MaxBlobBytes)
	*d = b
	return err
}

func encodeBlob(value []byte, expires int64) ([]byte, error) {
	return msgpack.Marshal(&blobRecord{Version: recordVersion, Value: value, Expires: expires})
}

// decodeBlob decodes the stored record of blob key. Any malformed input
// gives an error wrapping ErrCorrupt. The value is never nil.
func decodeBlob(key string, b []byte) (value []byte, expires int64, err error) {
	var rec blobRecord
	if err := decodeStrict(b, &rec); err != nil {
		return nil, 0, fmt.Errorf("%w: blob %q: %v", ErrCorrupt, key, err)
	}
	if rec.Version != recordVersion {
		return nil, 0, fmt.Errorf("%w: blob %q: record version %d", ErrCorrupt, key, rec.Version)
	}
	if rec.Value == nil {
		rec.Value = []byte{}
	}
	return rec.Value, rec.Expires, nil
}
