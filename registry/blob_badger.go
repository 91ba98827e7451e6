package registry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// getBlob reads blob key in txn: its value (a copy) and expiry in Unix ns
// (0: never). ErrNotFound when absent, expired or not.
func getBlob(txn *badger.Txn, key string) ([]byte, int64, error) {
	item, err := txn.Get(blobKey(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, 0, ErrNotFound
	}
	if err != nil {
		return nil, 0, err
	}
	var (
		value   []byte
		expires int64
	)
	err = item.Value(func(v []byte) (err error) {
		value, expires, err = decodeBlob(key, v) // copies the value out of v
		return err
	})
	return value, expires, err
}

// blobIndexDelete returns the write that removes the expiry index key of
// the blob stored under key, if it has one. A corrupt record has none to
// find; ExpireBlobs drops such an orphan index key when its time comes.
func blobIndexDelete(txn *badger.Txn, key string) ([]write, error) {
	_, expires, err := getBlob(txn, key)
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrCorrupt):
		return nil, nil
	case err != nil:
		return nil, err
	case expires == 0:
		return nil, nil
	}
	return []write{{key: blobExpiryKey(expires, key), del: true}}, nil
}

// PutBlob implements Blobs. The record is encoded on the caller's goroutine.
func (b *Badger) PutBlob(ctx context.Context, key string, value []byte, expires time.Time) error {
	if err := validateBlobKey(key); err != nil {
		return err
	}
	if len(value) > MaxBlobBytes {
		return fmt.Errorf("%w: blob of %d bytes, limit %d", ErrInvalid, len(value), MaxBlobBytes)
	}
	exp := nanos(expires)
	v, err := encodeBlob(value, exp)
	if err != nil {
		return wrap("put blob", err)
	}
	err = b.submit(ctx, func(txn *badger.Txn) ([]write, error) {
		ws, err := blobIndexDelete(txn, key)
		if err != nil {
			return nil, err
		}
		// Deleting then setting the same index key in one transaction
		// leaves it set: the writes apply in order.
		ws = append(ws, write{key: blobKey(key), value: v})
		if exp != 0 {
			ws = append(ws, write{key: blobExpiryKey(exp, key)})
		}
		return ws, nil
	})
	return wrap("put blob", err)
}

// GetBlob implements Blobs.
func (b *Badger) GetBlob(ctx context.Context, key string) ([]byte, time.Time, error) {
	if err := validateBlobKey(key); err != nil {
		return nil, time.Time{}, err
	}
	var (
		value   []byte
		expires int64
	)
	err := b.view(ctx, func(txn *badger.Txn) (err error) {
		value, expires, err = getBlob(txn, key)
		if err == nil && expires != 0 && !b.now().Before(fromNanos(expires)) {
			return ErrNotFound
		}
		return err
	})
	if err != nil {
		return nil, time.Time{}, wrap("get blob", err)
	}
	return value, fromNanos(expires), nil
}

// DeleteBlob implements Blobs.
func (b *Badger) DeleteBlob(ctx context.Context, key string) error {
	if err := validateBlobKey(key); err != nil {
		return err
	}
	err := b.submit(ctx, func(txn *badger.Txn) ([]write, error) {
		ws, err := blobIndexDelete(txn, key)
		if err != nil {
			return nil, err
		}
		return append(ws, write{key: blobKey(key), del: true}), nil
	})
	return wrap("delete blob", err)
}

// ExpireBlobs implements Blobs. It walks the expiry index ('x' keys,
// ordered by expiry) up to now, in jobs of at most deleteChunk blobs.
func (b *Badger) ExpireBlobs(ctx context.Context, now time.Time) (int, error) {
	limit := nanos(now)
	total := 0
	for {
		n, removed := 0, 0
		err := b.submit(ctx, func(txn *badger.Txn) ([]write, error) {
			n, removed = 0, 0
			opts := badger.DefaultIteratorOptions
			opts.Prefix = []byte{prefixBlobExp}
			opts.PrefetchValues = false
			it := txn.NewIterator(opts)
			defer it.Close()
			var ws []write
			for it.Rewind(); it.Valid() && n < deleteChunk; it.Next() {
				k := it.Item().KeyCopy(nil)
				exp, key, ok := parseBlobExpiryKey(k)
				if !ok {
					return nil, fmt.Errorf("%w: blob expiry key %x", ErrCorrupt, k)
				}
				if exp > limit {
					break
				}
				n++
				ws = append(ws, write{key: k, del: true})
				_, stored, err := getBlob(txn, key)
				switch {
				case errors.Is(err, ErrNotFound):
					continue // orphan index key
				case errors.Is(err, ErrCorrupt):
					stored = exp // an unreadable blob whose index says it is expired
				case err != nil:
					return nil, err
				}
				if stored != exp {
					continue // orphan: the blob was put again with another expiry
				}
				ws = append(ws, write{key: blobKey(key), del: true})
				removed++
			}
			return ws, nil
		})
		total += removed
		if err != nil {
			return total, wrap("expire blobs", err)
		}
		if n < deleteChunk {
			return total, nil
		}
	}
}
