package registry

// Acknowledgements without reads. Deleting an acknowledged entry takes two keys: the entry and
// its expiry index key, which holds the entry's Expires. Finding them by scanning the store (an
// iterator over the terminal's entries, reading each value for its expiry) was the largest cost
// of a durable text. The committer therefore remembers, per terminal, the exact set of stored
// entries when it is small and known: a tail. Ack then builds its deletes from memory.
//
// A tail is known only while the committer can prove it:
//   - a terminal that never had a sequence number has no entries: its first Append starts an
//     empty tail;
//   - an Ack that scans the store (no tail) and sees every entry left after upTo establishes one,
//     when few remain and nothing for the terminal was appended earlier in the same batch (the
//     scan reads a snapshot that does not hold the batch's own writes);
//   - every Append of a terminal with a tail extends it (sequence numbers are contiguous);
//   - Expire and DeleteAll forget the tails of the terminals they touch, a tail that grows past
//     maxTailEntries is forgotten, and a failed commit forgets them all (the writes the tails
//     describe may not have happened).
//
// Forgetting is always safe: the next Ack scans the store as before. Memory is bounded by
// maxTails terminals of at most maxTailEntries expiries each.

const (
	// maxTailEntries bounds one tail: a terminal that keeps up has a few unacknowledged entries
	// (the broker's delivery window); one that falls further behind is served by scans.
	maxTailEntries = 256
	// maxTails bounds the terminals with a tail (≈ 100 bytes each when empty).
	maxTails = 1 << 20
)

// outboxTail is the exact set of stored entries of one terminal: sequence numbers first …
// first+len(expires)-1, all present, the last one the terminal's last assigned sequence
// number (first is that number + 1 when the outbox is empty). expires[i] is the Expires, in
// Unix nanoseconds, of entry first+i.
type outboxTail struct {
	first   uint64
	expires []int64
}

// tailAppended records the append of seq (the terminal's new last sequence number). Runs on the
// committer.
func (b *Badger) tailAppended(terminal uint32, seq uint64, expires int64) {
	b.appendedInBatch[terminal] = struct{}{}
	t := b.tails[terminal]
	if t == nil {
		if seq != 1 || len(b.tails) >= maxTails {
			return // entries before seq may exist: unknown
		}
		t = &outboxTail{first: 1}
		b.tails[terminal] = t
	}
	if len(t.expires) >= maxTailEntries || t.first+uint64(len(t.expires)) != seq {
		delete(b.tails, terminal)
		return
	}
	t.expires = append(t.expires, expires)
}

// tailDeletes returns the writes that delete the first deleteChunk entries with Seq <= upTo
// from a known tail, and how many entries that is; ok is false when terminal has no tail.
// Runs on the committer.
func (b *Badger) tailDeletes(terminal uint32, upTo uint64) (ws []write, n int, ok bool) {
	t := b.tails[terminal]
	if t == nil {
		return nil, 0, false
	}
	if upTo >= t.first {
		n = int(min(upTo-t.first+1, uint64(len(t.expires)), deleteChunk))
	}
	ws = make([]write, 0, 2*n)
	for i := range n {
		seq := t.first + uint64(i)
		ws = append(ws,
			write{key: entryKey(terminal, seq), del: true},
			write{key: expiryKey(t.expires[i], terminal, seq), del: true})
	}
	t.first += uint64(n)
	t.expires = t.expires[n:]
	if len(t.expires) == 0 {
		t.expires = nil // let the backing array go
	}
	return ws, n, true
}

// establishTail records what an Ack's scan of a snapshot saw after its deletes: the entries
// first … first+len(expires)-1 (contiguous; first is upTo+1 when none), complete up to the end
// of the terminal's entries. Runs on the committer.
func (b *Badger) establishTail(terminal uint32, first uint64, expires []int64) {
	if _, ok := b.appendedInBatch[terminal]; ok || len(b.tails) >= maxTails {
		return
	}
	if first+uint64(len(expires)) != b.seqs[terminal]+1 {
		return // entries the snapshot does not show, or a gap
	}
	b.tails[terminal] = &outboxTail{first: first, expires: expires}
}

// forgetTail drops what is known of terminal's entries. Runs on the committer.
func (b *Badger) forgetTail(terminal uint32) { delete(b.tails, terminal) }
