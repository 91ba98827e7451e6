package registry

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// deleteChunk bounds the entries one Ack, DeleteAll or Expire job removes
// (two keys each), so that one job always fits in a badger transaction;
// larger removals take several jobs, each atomic.
const deleteChunk = 512

// loadSeqs fills b.seqs from the 's' keys; called by OpenBadger before the
// committer starts.
func (b *Badger) loadSeqs() error {
	return b.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte{prefixSeq}
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			k := item.Key()
			if len(k) != seqKeyLen {
				return fmt.Errorf("%w: sequence key %x", ErrCorrupt, k)
			}
			terminal := binary.BigEndian.Uint32(k[1:])
			err := item.Value(func(v []byte) error {
				if len(v) != 8 {
					return fmt.Errorf("%w: sequence of terminal %d: %d bytes", ErrCorrupt, terminal, len(v))
				}
				b.seqs[terminal] = binary.BigEndian.Uint64(v)
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
}

func validOutboxTerminal(terminal uint32) error {
	if terminal == 0 {
		return fmt.Errorf("%w: terminal id 0", ErrInvalid)
	}
	return nil
}

func validPageLimit(limit int) error {
	if limit < 1 || limit > MaxPageSize {
		return fmt.Errorf("%w: limit %d outside 1..%d", ErrInvalid, limit, MaxPageSize)
	}
	return nil
}

// expired reports whether e is expired at now: from its Expires instant on.
func expired(e Entry, now time.Time) bool { return !now.Before(e.Expires) }

// readEntry decodes the entry an iterator or Get positioned on.
func readEntry(item *badger.Item) (Entry, error) {
	terminal, seq, ok := parseEntryKey(item.Key())
	if !ok {
		return Entry{}, fmt.Errorf("%w: entry key %x", ErrCorrupt, item.Key())
	}
	var e Entry
	err := item.Value(func(v []byte) (err error) {
		e, err = decodeEntry(terminal, seq, v) // copies the datagram out of v
		return err
	})
	return e, err
}

// Append implements Outbox. The record is encoded on the caller's goroutine;
// the committer assigns the sequence number, so sequence order is commit
// order, and answers once the batch holding the record is synced. ctx
// bounds only the wait for room in the committer's queue: once queued, the
// append completes or fails for real before Append returns, so that an
// error never hides a stored datagram.
func (b *Badger) Append(ctx context.Context, terminal uint32, datagram []byte, ttl time.Duration) (Entry, error) {
	switch {
	case terminal == 0:
		return Entry{}, validOutboxTerminal(terminal)
	case len(datagram) == 0 || len(datagram) > MaxDatagramBytes:
		return Entry{}, fmt.Errorf("%w: datagram of %d bytes outside 1..%d", ErrInvalid, len(datagram), MaxDatagramBytes)
	case ttl <= 0:
		return Entry{}, fmt.Errorf("%w: ttl %v not positive", ErrInvalid, ttl)
	}
	now := b.now()
	e := Entry{
		Terminal: terminal,
		Datagram: datagram,
		Stored:   fromNanos(nanos(now)),
		Expires:  fromNanos(nanos(now.Add(ttl))),
	}
	v, err := encodeEntry(e)
	if err != nil {
		return Entry{}, wrap("append", err)
	}
	e.Datagram = encodedDatagram(v, len(datagram)) // the copy: shared with the stored value, both read-only
	expires := nanos(e.Expires)
	err = b.submit(ctx, func(*badger.Txn) ([]write, error) {
		seq := b.seqs[terminal] + 1
		b.seqs[terminal] = seq // advanced even if the commit fails: never reuse
		e.Seq = seq
		b.tailAppended(terminal, seq, expires)
		return []write{
			{key: entryKey(terminal, seq), value: v},
			{key: expiryKey(expires, terminal, seq)},
			{key: seqKey(terminal), value: binary.BigEndian.AppendUint64(nil, seq)},
		}, nil
	})
	if err != nil {
		return Entry{}, wrap(fmt.Sprintf("append for terminal %d", terminal), err)
	}
	return e, nil
}

// Pending implements Outbox.
func (b *Badger) Pending(ctx context.Context, terminal uint32, after uint64, limit int) ([]Entry, error) {
	if err := validOutboxTerminal(terminal); err != nil {
		return nil, err
	}
	if err := validPageLimit(limit); err != nil {
		return nil, err
	}
	var out []Entry
	err := b.view(ctx, func(txn *badger.Txn) error {
		if after == math.MaxUint64 {
			return nil
		}
		now := b.now()
		opts := badger.DefaultIteratorOptions
		opts.Prefix = entryPrefix(terminal)
		opts.PrefetchSize = min(limit, opts.PrefetchSize)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(entryKey(terminal, after+1)); it.Valid() && len(out) < limit; it.Next() {
			e, err := readEntry(it.Item())
			if err != nil {
				return err
			}
			if !expired(e, now) {
				out = append(out, e)
			}
		}
		return nil
	})
	if err != nil {
		return nil, wrap(fmt.Sprintf("pending for terminal %d", terminal), err)
	}
	return out, nil
}

// Depth implements Outbox. It reads every entry of the terminal.
func (b *Badger) Depth(ctx context.Context, terminal uint32) (count int, oldest time.Time, err error) {
	if err := validOutboxTerminal(terminal); err != nil {
		return 0, time.Time{}, err
	}
	err = b.view(ctx, func(txn *badger.Txn) error {
		now := b.now()
		opts := badger.DefaultIteratorOptions
		opts.Prefix = entryPrefix(terminal)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			e, err := readEntry(it.Item())
			if err != nil {
				return err
			}
			if expired(e, now) {
				continue
			}
			if count == 0 || e.Stored.Before(oldest) {
				oldest = e.Stored
			}
			count++
		}
		return nil
	})
	if err != nil {
		return 0, time.Time{}, wrap(fmt.Sprintf("depth of terminal %d", terminal), err)
	}
	return count, oldest, nil
}

// Ack implements Outbox. A terminal whose stored entries the committer knows (outbox_tails.go)
// is served from memory; otherwise its entries are scanned.
func (b *Badger) Ack(ctx context.Context, terminal uint32, upTo uint64) (deleted int, err error) {
	if err := validOutboxTerminal(terminal); err != nil {
		return 0, err
	}
	n, err := b.deleteEntries(ctx, terminal, upTo, true)
	return n, wrap(fmt.Sprintf("ack %d for terminal %d", upTo, terminal), err)
}

// DeleteAll implements Outbox.
func (b *Badger) DeleteAll(ctx context.Context, terminal uint32) (int, error) {
	if err := validOutboxTerminal(terminal); err != nil {
		return 0, err
	}
	n, err := b.deleteEntries(ctx, terminal, math.MaxUint64, false)
	return n, wrap(fmt.Sprintf("delete all of terminal %d", terminal), err)
}

// deleteEntries deletes the entries of terminal with Seq <= upTo, in jobs
// of at most deleteChunk entries, and returns how many it deleted. With
// useTail it uses and learns the terminal's tail; without, it forgets it.
func (b *Badger) deleteEntries(ctx context.Context, terminal uint32, upTo uint64, useTail bool) (int, error) {
	total := 0
	for {
		n := 0
		err := b.submit(ctx, func(*badger.Txn) (ws []write, err error) {
			if useTail {
				var known bool
				if ws, n, known = b.tailDeletes(terminal, upTo); known {
					return ws, nil
				}
			} else {
				b.forgetTail(terminal)
			}
			// Scan a read-only snapshot, not the batch transaction: an iterator over a
			// transaction with pending writes makes badger sort all of them first, which
			// made every acknowledgement in a busy batch cost O(batch log batch). The
			// committer is the only writer and an acknowledged entry was committed before it
			// was delivered, so the snapshot holds every entry this job must delete. (Two
			// deletes of one terminal in one batch may both count the same entry; a session
			// acknowledges sequentially, so only DeleteAll racing Ack can do that.)
			rtxn := b.db.NewTransaction(false)
			defer rtxn.Discard()
			ws, n, err = b.entryDeletes(rtxn, terminal, upTo, useTail)
			return ws, err
		})
		if err != nil {
			return total, err
		}
		total += n
		if n < deleteChunk {
			return total, nil
		}
	}
}

// entryDeletes returns the writes that delete the first deleteChunk
// entries of terminal with Seq <= upTo (and their expiry index keys), and
// how many entries that is. With learn, when the scan ends within
// maxTailEntries of the terminal's last sequence number, it goes on to the
// end of the terminal's entries and establishes the terminal's tail.
func (b *Badger) entryDeletes(txn *badger.Txn, terminal uint32, upTo uint64, learn bool) ([]write, int, error) {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = entryPrefix(terminal)
	it := txn.NewIterator(opts)
	defer it.Close()
	var ws []write
	n := 0
	it.Rewind()
	for ; it.Valid() && n < deleteChunk; it.Next() {
		item := it.Item()
		_, seq, ok := parseEntryKey(item.Key())
		if !ok {
			return nil, 0, fmt.Errorf("%w: entry key %x", ErrCorrupt, item.Key())
		}
		if seq > upTo {
			break
		}
		ws = append(ws, write{key: item.KeyCopy(nil), del: true})
		// A corrupt record loses its expiry index key; Expire
		// drops such orphans when their time comes.
		if e, err := readEntry(item); err == nil {
			ws = append(ws, write{key: expiryKey(nanos(e.Expires), terminal, seq), del: true})
		}
		n++
	}
	last := b.seqs[terminal]
	if !learn || n == deleteChunk || last > upTo && last-upTo > maxTailEntries {
		return ws, n, nil
	}
	// Learn what remains after upTo: contiguous entries with readable expiries only.
	first, expires := last+1, []int64(nil)
	for ; it.Valid(); it.Next() {
		item := it.Item()
		_, seq, ok := parseEntryKey(item.Key())
		if !ok || len(expires) == maxTailEntries {
			return ws, n, nil
		}
		if len(expires) == 0 {
			first = seq
		} else if seq != first+uint64(len(expires)) {
			return ws, n, nil
		}
		e, err := readEntry(item)
		if err != nil {
			return ws, n, nil
		}
		expires = append(expires, nanos(e.Expires))
	}
	b.establishTail(terminal, first, expires)
	return ws, n, nil
}

// Expire implements Outbox. It walks the expiry index ('e' keys, ordered by
// Expires) up to now, in jobs of at most deleteChunk entries.
func (b *Badger) Expire(ctx context.Context, now time.Time) ([]Entry, error) {
	limit := nanos(now)
	var out []Entry
	for {
		var got []Entry
		n := 0
		err := b.submit(ctx, func(txn *badger.Txn) ([]write, error) {
			opts := badger.DefaultIteratorOptions
			opts.Prefix = []byte{prefixExpiry}
			opts.PrefetchValues = false
			it := txn.NewIterator(opts)
			defer it.Close()
			var ws []write
			for it.Rewind(); it.Valid() && n < deleteChunk; it.Next() {
				k := it.Item().KeyCopy(nil)
				exp, terminal, seq, ok := parseExpiryKey(k)
				if !ok {
					return nil, fmt.Errorf("%w: expiry key %x", ErrCorrupt, k)
				}
				if exp > limit {
					break
				}
				n++
				ws = append(ws, write{key: k, del: true})
				b.forgetTail(terminal)
				ek := entryKey(terminal, seq)
				item, err := txn.Get(ek)
				if errors.Is(err, badger.ErrKeyNotFound) {
					continue // orphan index key (its entry's record was corrupt)
				}
				if err != nil {
					return nil, err
				}
				ws = append(ws, write{key: ek, del: true})
				if e, err := readEntry(item); err == nil {
					got = append(got, e)
				}
			}
			return ws, nil
		})
		if err != nil {
			return out, wrap("expire", err)
		}
		out = append(out, got...)
		if n < deleteChunk {
			return out, nil
		}
	}
}
