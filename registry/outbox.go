package registry

import (
	"context"
	"fmt"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// Entry is one datagram stored in a terminal's outbox.
type Entry struct {
	Terminal uint32    // recipient terminal id
	Seq      uint64    // per-terminal sequence number, from 1, strictly increasing, never reused
	Datagram []byte    // the stored Rewind datagram
	Stored   time.Time // when Append stored it
	Expires  time.Time // Stored + ttl; the entry is expired from this instant on
}

// Outbox is the durable per-terminal queue of datagrams that could not be
// delivered directly (push fallback). Implementations are safe for concurrent
// use. Entries are removed only by Ack, DeleteAll or Expire: nothing is
// deleted before it is acknowledged or expired.
type Outbox interface {
	// Append stores datagram for terminal durably and returns the new entry.
	// Sequence numbers are per terminal, strictly increasing from 1 and never
	// reused, even after Ack, DeleteAll or a restart. ttl must be positive;
	// datagram must hold 1..MaxDatagramBytes bytes (it is copied).
	Append(ctx context.Context, terminal uint32, datagram []byte, ttl time.Duration) (Entry, error)
	// Pending returns up to limit unexpired entries with Seq > after in
	// ascending Seq order. limit must be in 1..MaxPageSize.
	Pending(ctx context.Context, terminal uint32, after uint64, limit int) ([]Entry, error)
	// Ack deletes every entry with Seq <= upTo (cumulative acknowledgement)
	// and returns how many it deleted.
	Ack(ctx context.Context, terminal uint32, upTo uint64) (deleted int, err error)
	// Depth returns the number of unexpired entries and the Stored time of
	// the oldest of them (zero when count is 0).
	Depth(ctx context.Context, terminal uint32) (count int, oldest time.Time, err error)
	// DeleteAll deletes every entry of terminal and returns how many. The
	// sequence counter is kept, so later appends continue after it.
	DeleteAll(ctx context.Context, terminal uint32) (int, error)
	// Expire removes every entry whose Expires is not after now and returns
	// them ordered by Expires, so that the caller can count or audit them.
	Expire(ctx context.Context, now time.Time) (expired []Entry, err error)
}

// entryRecord is the stored form of an Entry; terminal and seq are the key.
type entryRecord struct {
	Version  int           `msgpack:"v"`
	Datagram datagramBytes `msgpack:"d"`
	Stored   int64         `msgpack:"s"`
	Expires  int64         `msgpack:"e"`
}

// datagramBytes decodes with a length check before allocating: msgpack's
// own []byte decoding allocates whatever length the input claims.
type datagramBytes []byte

// DecodeMsgpack implements msgpack.CustomDecoder.
func (d *datagramBytes) DecodeMsgpack(dec *msgpack.Decoder) error {
	n, err := dec.DecodeBytesLen()
	if err != nil {
		return err
	}
	if n > MaxDatagramBytes {
		return fmt.Errorf("datagram of %d bytes, limit %d", n, MaxDatagramBytes)
	}
	if n < 0 {
		*d = nil
		return nil
	}
	b := make([]byte, n)
	if err := dec.ReadFull(b); err != nil {
		return err
	}
	*d = b
	return nil
}

func encodeEntry(e Entry) ([]byte, error) {
	return msgpack.Marshal(&entryRecord{
		Version:  recordVersion,
		Datagram: e.Datagram,
		Stored:   nanos(e.Stored),
		Expires:  nanos(e.Expires),
	})
}

// decodeEntry decodes the stored record of an outbox entry. Any malformed
// input gives an error wrapping ErrCorrupt.
func decodeEntry(terminal uint32, seq uint64, b []byte) (Entry, error) {
	var rec entryRecord
	if err := decodeStrict(b, &rec); err != nil {
		return Entry{}, fmt.Errorf("%w: entry %d/%d: %v", ErrCorrupt, terminal, seq, err)
	}
	if rec.Version != recordVersion {
		return Entry{}, fmt.Errorf("%w: entry %d/%d: record version %d", ErrCorrupt, terminal, seq, rec.Version)
	}
	if len(rec.Datagram) == 0 || rec.Expires == 0 {
		return Entry{}, fmt.Errorf("%w: entry %d/%d: empty datagram or no expiry", ErrCorrupt, terminal, seq)
	}
	return Entry{
		Terminal: terminal,
		Seq:      seq,
		Datagram: rec.Datagram,
		Stored:   fromNanos(rec.Stored),
		Expires:  fromNanos(rec.Expires),
	}, nil
}
