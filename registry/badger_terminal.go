package registry

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// getTerminal reads terminal id in txn.
func getTerminal(txn *badger.Txn, id uint32) (Terminal, error) {
	item, err := txn.Get(terminalKey(id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return Terminal{}, ErrNotFound
	}
	if err != nil {
		return Terminal{}, err
	}
	var t Terminal
	err = item.Value(func(v []byte) error {
		t, err = decodeTerminal(id, v)
		return err
	})
	return t, err
}

// PutTerminal implements Store.
func (b *Badger) PutTerminal(ctx context.Context, t Terminal) (created bool, err error) {
	if err := validateTerminal(t); err != nil {
		return false, err
	}
	now := b.now()
	err = b.submit(ctx, func(txn *badger.Txn) ([]write, error) {
		rec := t
		rec.Created, rec.Updated, rec.LastSeen = now, now, time.Time{}
		old, err := getTerminal(txn, t.ID)
		switch {
		case errors.Is(err, ErrNotFound):
			created = true
		case err != nil:
			return nil, err
		default:
			rec.Created, rec.LastSeen = old.Created, old.LastSeen
			if rec.Updated.Before(old.Updated) { // the clock went back
				rec.Updated = old.Updated
			}
		}
		v, err := encodeTerminal(rec)
		if err != nil {
			return nil, err
		}
		return []write{
			{key: terminalKey(t.ID), value: v},
			{key: userKey(t.UserID(), t.ID)},
		}, nil
	})
	return created, wrap(fmt.Sprintf("put terminal %d", t.ID), err)
}

// GetTerminal implements Store.
func (b *Badger) GetTerminal(ctx context.Context, id uint32) (Terminal, error) {
	var t Terminal
	err := b.view(ctx, func(txn *badger.Txn) (err error) {
		t, err = getTerminal(txn, id)
		return err
	})
	return t, wrap(fmt.Sprintf("get terminal %d", id), err)
}

// DeleteTerminal implements Store; see DeleteTerminalAll.
func (b *Badger) DeleteTerminal(ctx context.Context, id uint32) error {
	_, err := b.DeleteTerminalAll(ctx, id)
	return err
}

// DeleteTerminalAll is DeleteTerminal that also reports how many outbox
// entries it deleted. One job removes the terminal, its user index key, its
// attach and the first deleteChunk outbox entries atomically; the rest of
// the outbox follows in further jobs, which ctx no longer cancels (the
// terminal is already gone). Should the process stop in between, the
// remaining entries are removed by Expire when their time comes. The
// outbox's last sequence number ('s' key) is kept, as with DeleteAll.
func (b *Badger) DeleteTerminalAll(ctx context.Context, id uint32) (outboxDeleted int, err error) {
	var n int
	err = b.submit(ctx, func(txn *badger.Txn) ([]write, error) {
		_, err := txn.Get(terminalKey(id))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil, ErrNotFound
		}
		if err != nil {
			return nil, err
		}
		b.forgetTail(id)
		ws, count, err := b.entryDeletes(txn, id, math.MaxUint64, false)
		if err != nil {
			return nil, err
		}
		n = count
		return append(ws,
			write{key: terminalKey(id), del: true},
			write{key: userKey(UserOf(id), id), del: true},
			write{key: attachKey(id), del: true},
		), nil
	})
	if err == nil && n == deleteChunk {
		var more int
		more, err = b.deleteEntries(context.WithoutCancel(ctx), id, math.MaxUint64, false)
		n += more
	}
	return n, wrap(fmt.Sprintf("delete terminal %d", id), err)
}

// ListTerminals implements Store.
func (b *Badger) ListTerminals(ctx context.Context, after uint32, limit int) ([]Terminal, error) {
	if limit < 1 || limit > MaxPageSize {
		return nil, fmt.Errorf("%w: limit %d outside 1..%d", ErrInvalid, limit, MaxPageSize)
	}
	if after == ^uint32(0) {
		return nil, nil
	}
	var out []Terminal
	err := b.view(ctx, func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte{prefixTerminal}
		opts.PrefetchSize = min(limit, opts.PrefetchSize)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(terminalKey(after + 1)); it.Valid() && len(out) < limit; it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			t, err := decodeTerminalItem(it.Item())
			if err != nil {
				return err
			}
			out = append(out, t)
		}
		return nil
	})
	if err != nil {
		return nil, wrap("list terminals", err)
	}
	return out, nil
}

func decodeTerminalItem(item *badger.Item) (Terminal, error) {
	k := item.Key()
	if len(k) != terminalKeyLen {
		return Terminal{}, fmt.Errorf("%w: terminal key %x", ErrCorrupt, k)
	}
	id := uint32(k[1])<<24 | uint32(k[2])<<16 | uint32(k[3])<<8 | uint32(k[4])
	var t Terminal
	err := item.Value(func(v []byte) (err error) {
		t, err = decodeTerminal(id, v)
		return err
	})
	return t, err
}

// UserTerminals implements Store. It reads the user index ('u' keys), then
// each terminal.
func (b *Badger) UserTerminals(ctx context.Context, user uint32) ([]Terminal, error) {
	var out []Terminal
	err := b.view(ctx, func(txn *badger.Txn) error {
		prefix := userPrefix(user)
		opts := badger.DefaultIteratorOptions
		opts.Prefix = prefix
		opts.PrefetchValues = false
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if len(k) != userKeyLen {
				return fmt.Errorf("%w: user index key %x", ErrCorrupt, k)
			}
			id := uint32(k[5])<<24 | uint32(k[6])<<16 | uint32(k[7])<<8 | uint32(k[8])
			t, err := getTerminal(txn, id)
			if errors.Is(err, ErrNotFound) {
				continue // cannot happen: the index changes with the record
			}
			if err != nil {
				return err
			}
			out = append(out, t)
		}
		return nil
	})
	if err != nil {
		return nil, wrap(fmt.Sprintf("terminals of user %d", user), err)
	}
	return out, nil
}

// TouchTerminal implements Store.
func (b *Badger) TouchTerminal(ctx context.Context, id uint32, seen time.Time) error {
	err := b.submit(ctx, func(txn *badger.Txn) ([]write, error) {
		t, err := getTerminal(txn, id)
		if err != nil {
			return nil, err
		}
		if !seen.After(t.LastSeen) {
			return nil, nil
		}
		t.LastSeen = seen
		v, err := encodeTerminal(t)
		if err != nil {
			return nil, err
		}
		return []write{{key: terminalKey(id), value: v}}, nil
	})
	return wrap(fmt.Sprintf("touch terminal %d", id), err)
}
