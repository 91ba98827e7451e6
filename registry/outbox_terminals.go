package registry

import (
	"context"

	"github.com/dgraph-io/badger/v4"
)

// PendingTerminals lists the terminals whose outbox holds at least one entry (expired ones
// included until Expire removes them), in ascending order. It reads keys only and skips from
// one terminal's entries to the next terminal's, so its cost grows with the number of
// terminals, not entries. The broker calls it at start to resume wakes a restart interrupted.
func (b *Badger) PendingTerminals(ctx context.Context) ([]uint32, error) {
	var out []uint32
	err := b.view(ctx, func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte{prefixEntry}
		opts.PrefetchValues = false
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); {
			terminal, _, ok := parseEntryKey(it.Item().Key())
			if !ok {
				it.Next()
				continue
			}
			out = append(out, terminal)
			if terminal == ^uint32(0) || ctx.Err() != nil {
				break
			}
			it.Seek(entryPrefix(terminal + 1))
		}
		return ctx.Err()
	})
	return out, wrap("pending terminals", err)
}
