package registry

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
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

// encodeEntry encodes the stored record of e: byte for byte what msgpack.Marshal of its
// entryRecord gives (TestEntryRecordEncoding), in one allocation and without reflection, as
// it runs once per durable datagram.
func encodeEntry(e Entry) ([]byte, error) {
	n := len(e.Datagram)
	if n > MaxDatagramBytes {
		return nil, fmt.Errorf("datagram of %d bytes, limit %d", n, MaxDatagramBytes)
	}
	b := make([]byte, 0, 34+n)
	b = append(b, 0x84, 0xa1, 'v', recordVersion, 0xa1, 'd') // map of 4; "v": positive fixint
	switch {
	case n <= math.MaxUint8:
		b = append(b, 0xc4, byte(n))
	case n <= math.MaxUint16:
		b = binary.BigEndian.AppendUint16(append(b, 0xc5), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xc6), uint32(n))
	}
	b = append(b, e.Datagram...)
	b = binary.BigEndian.AppendUint64(append(b, 0xa1, 's', 0xd3), uint64(nanos(e.Stored)))
	b = binary.BigEndian.AppendUint64(append(b, 0xa1, 'e', 0xd3), uint64(nanos(e.Expires)))
	return b, nil
}

// encodedDatagram returns the datagram of n bytes inside v, an encodeEntry result (the two
// timestamps, 11 bytes each, follow it), with its capacity limited to it.
func encodedDatagram(v []byte, n int) []byte {
	end := len(v) - 22
	return v[end-n : end : end]
}

// recordVersion is written as a msgpack positive fixint by encodeEntry.
const _ = uint8(0x7f - recordVersion)

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
