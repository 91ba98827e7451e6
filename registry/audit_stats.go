package registry

import (
	"context"
	"errors"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// OutboxStats is implemented by outboxes that can size all their outboxes together cheaply, for
// the operator's gauges (rewind_outbox_depth, rewind_outbox_oldest_age_seconds).
type OutboxStats interface {
	// OutboxStats returns the number of entries stored for all terminals (expired ones that
	// Expire has not removed yet included) and the Stored time of the entry that expires first
	// (with one TTL for all, the oldest; zero when there is none).
	OutboxStats(ctx context.Context) (count int, firstStored time.Time, err error)
}

var _ OutboxStats = (*Badger)(nil)

// OutboxStats implements OutboxStats by walking the outbox expiry index ('e' keys) without
// reading values: one key-only scan of every stored entry, so call it once per expiry sweep,
// not per request.
func (b *Badger) OutboxStats(ctx context.Context) (count int, firstStored time.Time, err error) {
	err = b.view(ctx, func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte{prefixExpiry}
		opts.PrefetchValues = false
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if count == 0 {
				if _, terminal, seq, ok := parseExpiryKey(it.Item().Key()); ok {
					item, err := txn.Get(entryKey(terminal, seq))
					if err == nil {
						if e, err := readEntry(item); err == nil {
							firstStored = e.Stored
						}
					} else if !errors.Is(err, badger.ErrKeyNotFound) {
						return err
					}
				}
			}
			count++
			if count%4096 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
		}
		return nil
	})
	if err != nil {
		return 0, time.Time{}, wrap("outbox stats", err)
	}
	return count, firstStored, nil
}
