package registry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

var _ Audits = (*Badger)(nil)

// AppendAudit implements Audits. The record is encoded on the caller's goroutine; the committer
// picks the first free same-nanosecond counter, so concurrent appends never overwrite each other.
func (b *Badger) AppendAudit(ctx context.Context, a PushAudit, expires time.Time) error {
	a, err := validateAudit(a)
	if err != nil {
		return err
	}
	at := nanos(a.Time)
	if at == 0 {
		at = b.now().UnixNano()
	}
	exp := nanos(expires)
	v, err := encodeAudit(a, exp)
	if err != nil {
		return wrap("append audit", err)
	}
	err = b.submit(ctx, func(txn *badger.Txn) ([]write, error) {
		for n := 0; n <= 0xFFFF; n++ {
			k := auditKey(a.Terminal, at, uint16(n))
			_, err := txn.Get(k)
			if errors.Is(err, badger.ErrKeyNotFound) {
				ws := []write{{key: k, value: v}}
				if exp != 0 {
					ws = append(ws, write{key: auditExpiryKey(exp, k)})
				}
				return ws, nil
			}
			if err != nil {
				return nil, err
			}
		}
		return nil, fmt.Errorf("%w: more than 65536 audit records of terminal %d in one nanosecond", ErrInvalid, a.Terminal)
	})
	return wrap("append audit", err)
}

// ListAudit implements Audits: a reverse walk of the terminal's 'h' keys from before.
func (b *Badger) ListAudit(ctx context.Context, terminal uint32, before time.Time, limit int) ([]PushAudit, error) {
	if limit < 1 || limit > MaxPageSize {
		return nil, fmt.Errorf("%w: limit %d outside 1..%d", ErrInvalid, limit, MaxPageSize)
	}
	prefix := auditPrefix(terminal)
	// In reverse, Seek finds the last key <= seek. Every key at exactly before is longer than
	// prefix|time, so it sorts after it: before is exclusive.
	seek := append(append([]byte(nil), prefix...), 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF)
	if !before.IsZero() {
		seek = auditKey(terminal, before.UnixNano(), 0)[:auditKeyLen-2]
	}
	var out []PushAudit
	err := b.view(ctx, func(txn *badger.Txn) error {
		now := nanos(b.now())
		opts := badger.DefaultIteratorOptions
		opts.Prefix = prefix
		opts.Reverse = true
		opts.PrefetchSize = min(limit, 100)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(seek); it.ValidForPrefix(prefix) && len(out) < limit; it.Next() {
			item := it.Item()
			var (
				a       PushAudit
				expires int64
			)
			err := item.Value(func(v []byte) (err error) {
				a, expires, err = decodeAudit(item.Key(), v)
				return err
			})
			if err != nil {
				return err
			}
			if expires != 0 && now >= expires {
				continue
			}
			out = append(out, a)
		}
		return nil
	})
	if err != nil {
		return nil, wrap("list audit", err)
	}
	return out, nil
}

// ExpireAudits implements Audits. It walks the expiry index ('H' keys, ordered by expiry) up to
// now, in jobs of at most deleteChunk records.
func (b *Badger) ExpireAudits(ctx context.Context, now time.Time) (int, error) {
	limit := nanos(now)
	total := 0
	for {
		n := 0
		err := b.submit(ctx, func(txn *badger.Txn) ([]write, error) {
			n = 0
			opts := badger.DefaultIteratorOptions
			opts.Prefix = []byte{prefixAuditExp}
			opts.PrefetchValues = false
			it := txn.NewIterator(opts)
			defer it.Close()
			var ws []write
			for it.Rewind(); it.Valid() && n < deleteChunk; it.Next() {
				k := it.Item().KeyCopy(nil)
				exp, key, ok := parseAuditExpiryKey(k)
				if !ok {
					return nil, fmt.Errorf("%w: audit expiry key %x", ErrCorrupt, k)
				}
				if exp > limit {
					break
				}
				n++
				ws = append(ws, write{key: k, del: true}, write{key: key, del: true})
			}
			return ws, nil
		})
		if err != nil {
			return total, wrap("expire audits", err)
		}
		total += n
		if n < deleteChunk {
			return total, nil
		}
	}
}
