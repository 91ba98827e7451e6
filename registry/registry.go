// Package registry holds the durable state of the broker: registered
// terminals and, per terminal, an outbox of datagrams waiting to be delivered
// and the push channel it attached; and small blobs with an expiry for
// whatever else the broker keeps across restarts.
//
// Interfaces describe it: [Store] (terminals), [Outbox] (stored datagrams),
// [Attaches] (push channels) and [Blobs]. [Badger] implements them all on an
// embedded badger database, the single-node default; other implementations
// must pass the contract suites in package registry/storetest.
//
// # What is stored
//
// A [Terminal] record holds the terminal's password in clear, because the
// broker needs it to check challenge/response answers. Configure
// [BadgerConfig.EncryptionKey] to keep it encrypted at rest. An [Entry] is
// one datagram in a terminal's outbox with its sequence number and expiry.
// An [Attach] holds a terminal's push channel: the token-service URL and
// device token (secrets: [Attach] redacts them when printed or logged) and
// the terminal's public keys. Deleting a terminal deletes its attach and
// outbox with it, but not its outbox sequence counter (see
// [Store.DeleteTerminal]). A blob is a value of up to [MaxBlobBytes] under
// a key of up to [MaxBlobKeyBytes], with an optional expiry.
//
// # Key layout (badger)
//
// Every key starts with a one-byte prefix; numbers are big-endian so that
// badger's byte order is numeric order.
//
//	't' id:4                         terminal record (msgpack)
//	'u' user:4 id:4                  user index: the terminals of a DMR user (empty value)
//	'o' terminal:4 seq:8             outbox entry (msgpack)
//	'e' expires:8 terminal:4 seq:8   outbox expiry index (empty value); expires is
//	                                 Unix ns with the sign bit flipped, so it sorts as signed
//	's' terminal:4                   last sequence number assigned to the terminal (8 bytes)
//	'a' terminal:4                   attach record (msgpack)
//	'b' key:1..256                   blob record (msgpack)
//	'x' expires:8 key:1..256         blob expiry index (empty value), as 'e'; only
//	                                 for blobs that expire
//
// # Durability
//
// Every mutating call returns only after its change is on disk (badger
// SyncWrites: the write-ahead log is msynced before the commit returns);
// InMemory mode, for tests, keeps nothing. All mutations go through one
// committer goroutine that gathers whatever is queued into one synced
// transaction, so concurrent callers share the cost of one sync; see
// [Badger.Append].
//
// Outbox and blob expiry is exact to the nanosecond and explicit: Pending,
// Depth and GetBlob hide what has expired, but only [Outbox.Expire] and
// [Blobs.ExpireBlobs] remove it, so the broker calls them periodically.
// Badger's own TTL (whole seconds) is not used.
package registry

import (
	"context"
	"errors"
	"time"
)

// Limits enforced by every implementation.
const (
	// MaxPasswordBytes bounds a terminal password. 256 bytes is far beyond any
	// password a terminal is provisioned with and keeps records small.
	MaxPasswordBytes = 256
	// MaxNameRunes bounds a terminal's device name, counted in runes.
	MaxNameRunes = 64
	// MaxPageSize is the largest limit accepted by paging calls
	// (ListTerminals, Pending). A limit outside 1..MaxPageSize is refused
	// with ErrInvalid rather than silently changed, so that "a short page
	// means the end" stays true.
	MaxPageSize = 1000
	// MaxDatagramBytes bounds one outbox datagram. Rewind datagrams travel in
	// UDP packets, so 64 KiB exceeds any real one while keeping a single
	// batch of appends well within one badger transaction.
	MaxDatagramBytes = 64 << 10
)

// Errors returned by implementations; check them with errors.Is.
var (
	// ErrNotFound means the terminal does not exist.
	ErrNotFound = errors.New("registry: not found")
	// ErrInvalid means an argument was refused (bad id, password too long,
	// limit out of range …); the wrapping error says which and why.
	ErrInvalid = errors.New("registry: invalid argument")
	// ErrClosed is returned by every call made after Close.
	ErrClosed = errors.New("registry: closed")
	// ErrKeyMismatch means the encryption key (or its absence) does not fit
	// the data directory, which was created with another key or none.
	ErrKeyMismatch = errors.New("registry: encryption key does not match the data directory")
	// ErrCorrupt means a stored record could not be decoded.
	ErrCorrupt = errors.New("registry: corrupt record")
)

// Terminal is a registered terminal.
type Terminal struct {
	// ID is the Rewind terminal id (e.g. 262000101). Never 0.
	ID uint32
	// Password is the shared secret used for challenge/response:
	// 1..MaxPasswordBytes bytes. The broker needs it in clear; it is
	// protected at rest by the store's encryption.
	Password string
	// Name is the optional device name: at most MaxNameRunes printable runes.
	Name string
	// Created is set by the store when the terminal is first put; Updated
	// on every put; LastSeen only by TouchTerminal. PutTerminal ignores the
	// values passed in these fields.
	Created, Updated, LastSeen time.Time
}

// UserID returns the DMR user owning the terminal; see [UserOf].
func (t Terminal) UserID() uint32 { return UserOf(t.ID) }

// UserOf returns the DMR user id owning terminal id: a 9-digit id
// (100000000..999999999) is a 7-digit user id followed by a 2-digit device
// suffix, so it belongs to id/100; any other id is a user id itself.
func UserOf(id uint32) uint32 {
	if id >= 100000000 && id <= 999999999 {
		return id / 100
	}
	return id
}

// Store keeps the registered terminals. Implementations are safe for
// concurrent use; every mutation is durable when the call returns.
type Store interface {
	// PutTerminal creates or replaces terminal t.ID and reports whether it
	// was created. On update Created and LastSeen are kept; Updated is set
	// to the current time on every put. A terminal that fails validation
	// (ID 0, empty password or one longer than MaxPasswordBytes, name longer
	// than MaxNameRunes runes or not printable UTF-8) is refused with an
	// error wrapping ErrInvalid.
	PutTerminal(ctx context.Context, t Terminal) (created bool, err error)
	// GetTerminal returns terminal id, or ErrNotFound.
	GetTerminal(ctx context.Context, id uint32) (Terminal, error)
	// DeleteTerminal removes terminal id, or returns ErrNotFound. Everything
	// kept for the terminal goes with it: its attach (Attaches) and, in a
	// store that is also an Outbox, its outbox entries, as DeleteAll would.
	// The outbox's sequence counter is kept, so a terminal re-created with
	// the same id continues its numbering and no sequence number is ever
	// given twice to one id. An Append for the id that races with the delete
	// may leave an entry behind; it goes at its expiry.
	DeleteTerminal(ctx context.Context, id uint32) error
	// ListTerminals returns up to limit terminals with ID > after in
	// ascending id order; pass the last ID of a page as the next after, and
	// stop at a page shorter than limit. limit must be in 1..MaxPageSize,
	// else ErrInvalid.
	ListTerminals(ctx context.Context, after uint32, limit int) ([]Terminal, error)
	// UserTerminals returns all terminals whose UserID() is user, in
	// ascending id order (at most 101: the 7-digit id itself and its 100
	// 9-digit devices). Unknown user: empty result, no error.
	UserTerminals(ctx context.Context, user uint32) ([]Terminal, error)
	// TouchTerminal records that terminal id was seen at seen. Only
	// LastSeen changes, and it never moves backwards: an earlier seen than
	// the stored one is a no-op. ErrNotFound when the terminal is absent.
	TouchTerminal(ctx context.Context, id uint32, seen time.Time) error
	// Close waits for calls in flight, then releases the store. Later calls
	// return ErrClosed; a second Close returns nil.
	Close() error
}
