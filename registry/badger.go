package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Defaults of BadgerConfig, and the badger options chosen for a small
// footprint: badger's defaults reserve a 64 MB memtable arena and a 256 MB
// block cache, which count in the Go heap (GC pacing, GOMEMLIMIT) long before
// they show in RSS. The registry holds small records, so 4 MB each is plenty.
const (
	// DefaultMaxBatch is the default BadgerConfig.MaxBatch. A sync costs
	// about the same for 10 jobs or 2 000, and when syncs are slow the batch
	// bounds throughput: at 256, a shared VM whose syncs took ≈ 18 ms capped
	// durable texts (an append and an ack each) at ≈ 7 000/s. 2 048 jobs of
	// texts (≈ 270 bytes of keys and values per text) still fit one badger
	// transaction (15% of the memtable); larger datagrams split the batch
	// into a few.
	DefaultMaxBatch = 2048
	// DefaultQueueSize is the default BadgerConfig.QueueSize: four batches.
	DefaultQueueSize = 4 * DefaultMaxBatch

	memTableSize   = 4 << 20 // badger allows 15% of it (600 KiB) per transaction
	cacheSize      = 4 << 20 // block cache and index cache (the index cache is needed when encrypted)
	valueLogSize   = 16 << 20
	baseTableSize  = 1 << 20
	valueThreshold = 128 << 10 // keeps every record (at most MaxDatagramBytes) in the LSM tree
)

// BadgerConfig configures OpenBadger.
type BadgerConfig struct {
	// Dir is the data directory, created if missing. Required unless
	// InMemory is set, and then it must be empty.
	Dir string
	// EncryptionKey, when set, encrypts everything at rest with AES-128,
	// -192 or -256 (16, 24 or 32 bytes; see ParseEncryptionKey). nil: no
	// encryption. A directory can only be opened with the key it was created
	// with, or without one if it was created without: anything else fails
	// with ErrKeyMismatch.
	EncryptionKey []byte
	// InMemory keeps all data in memory, for tests: nothing survives Close.
	InMemory bool
	// Logger receives badger's warnings and errors; INFO and DEBUG are
	// dropped. nil: slog.Default().
	Logger *slog.Logger
	// Now is the clock for Created/Updated, Stored/Expires and for deciding
	// what Pending and Depth consider expired. nil: time.Now.
	Now func() time.Time
	// MaxBatch is the most mutations committed in one synced transaction.
	// Zero: DefaultMaxBatch.
	MaxBatch int
	// MaxLinger is the longest the committer waits for more mutations
	// before a commit, and it waits only while mutations arrive at eight or
	// more per MaxLinger (committer.go). Zero: DefaultMaxLinger; negative:
	// never wait.
	MaxLinger time.Duration
	// QueueSize is the capacity of the committer's queue; a mutation waits
	// for room when it is full (backpressure). Zero: DefaultQueueSize.
	QueueSize int
}

// Badger is the embedded implementation of Store, Outbox, Attaches and
// Blobs. It is safe for concurrent use.
type Badger struct {
	// Static after OpenBadger.
	db       *badger.DB
	now      func() time.Time
	maxBatch int

	// mu guards closed and sends on queue: every call holds it for reading
	// for its whole duration, Close for writing, so that Close finds no call
	// in flight and may close queue.
	mu     sync.RWMutex
	closed bool
	queue  chan *job

	// Owned by the committer goroutine (read and written only in job
	// prepare steps) once OpenBadger has filled it: the last sequence
	// number assigned per terminal, as persisted under the 's' keys.
	seqs map[uint32]uint64
	// Also owned by the committer: the known stored entries of terminals
	// (outbox_tails.go), and the terminals appended to in the current batch.
	tails           map[uint32]*outboxTail
	appendedInBatch map[uint32]struct{}

	// Also owned by the committer: whether and how long to wait for more
	// jobs before a commit, and the timer it waits with.
	linger      lingerState
	lingerTimer *time.Timer

	committerDone chan struct{} // closed when commitLoop returns
	commits       atomic.Uint64 // transactions committed, for tests
	lingers       atomic.Uint64 // batches that waited for more jobs, for tests
}

var (
	_ Store    = (*Badger)(nil)
	_ Outbox   = (*Badger)(nil)
	_ Attaches = (*Badger)(nil)
	_ Blobs    = (*Badger)(nil)
)

// OpenBadger opens (creating if needed) the badger database described by cfg
// and starts its committer goroutine. Close it when done.
func OpenBadger(cfg BadgerConfig) (*Badger, error) {
	switch {
	case cfg.InMemory && cfg.Dir != "":
		return nil, fmt.Errorf("%w: badger: Dir must be empty with InMemory", ErrInvalid)
	case !cfg.InMemory && cfg.Dir == "":
		return nil, fmt.Errorf("%w: badger: no Dir", ErrInvalid)
	case cfg.EncryptionKey != nil && !validKeyLen(len(cfg.EncryptionKey)):
		return nil, fmt.Errorf("%w: badger: encryption key of %d bytes; want 16, 24 or 32", ErrInvalid, len(cfg.EncryptionKey))
	case cfg.MaxBatch < 0 || cfg.QueueSize < 0:
		return nil, fmt.Errorf("%w: badger: negative MaxBatch or QueueSize", ErrInvalid)
	}
	b := &Badger{
		now:             cfg.Now,
		maxBatch:        cfg.MaxBatch,
		seqs:            make(map[uint32]uint64),
		tails:           make(map[uint32]*outboxTail),
		appendedInBatch: make(map[uint32]struct{}),
		committerDone:   make(chan struct{}),
	}
	if b.now == nil {
		b.now = time.Now
	}
	if b.maxBatch == 0 {
		b.maxBatch = DefaultMaxBatch
	}
	switch {
	case cfg.MaxLinger == 0:
		b.linger.max = DefaultMaxLinger
	case cfg.MaxLinger > 0:
		b.linger.max = cfg.MaxLinger
	}
	b.lingerTimer = time.NewTimer(time.Hour)
	b.lingerTimer.Stop()
	queueSize := cfg.QueueSize
	if queueSize == 0 {
		queueSize = DefaultQueueSize
	}
	b.queue = make(chan *job, queueSize)

	opt := badger.DefaultOptions(cfg.Dir).
		WithInMemory(cfg.InMemory).
		WithLogger(newBadgerLogger(cfg.Logger)).
		WithSyncWrites(true).
		WithMetricsEnabled(false).  // they live in global expvar; the broker has its own metrics
		WithDetectConflicts(false). // the committer is the only writer
		WithMemTableSize(memTableSize).
		WithNumMemtables(2).
		WithBlockCacheSize(cacheSize).
		WithIndexCacheSize(cacheSize).
		WithNumCompactors(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(4).
		WithValueLogFileSize(valueLogSize).
		WithBaseTableSize(baseTableSize).
		WithValueThreshold(valueThreshold)
	if cfg.EncryptionKey != nil {
		opt = opt.WithEncryptionKey(cfg.EncryptionKey)
	}
	if !cfg.InMemory {
		if err := checkKey(cfg.Dir, cfg.EncryptionKey); err != nil {
			return nil, err
		}
	}
	db, err := badger.Open(opt)
	if err != nil {
		if errors.Is(err, badger.ErrEncryptionKeyMismatch) {
			return nil, fmt.Errorf("%w (%s)", ErrKeyMismatch, cfg.Dir)
		}
		return nil, fmt.Errorf("registry: open badger %s: %w", cfg.Dir, err)
	}
	b.db = db
	if err := b.loadSeqs(); err != nil {
		db.Close()
		return nil, fmt.Errorf("registry: open badger %s: %w", cfg.Dir, err)
	}
	go b.commitLoop()
	return b, nil
}

// checkKey reports ErrKeyMismatch if dir holds a database created with
// another key (or none). badger.Open reports the same, but a failed Open
// leaves two of badger's goroutines running (badger v4.9.6: its cleanup does
// not stop monitorCache nor the allocator pool), so the key is checked first
// by reading the key registry file alone, without starting anything.
func checkKey(dir string, key []byte) error {
	kr, err := badger.OpenKeyRegistry(badger.KeyRegistryOptions{Dir: dir, ReadOnly: true, EncryptionKey: key})
	if errors.Is(err, badger.ErrEncryptionKeyMismatch) {
		return fmt.Errorf("%w (%s)", ErrKeyMismatch, dir)
	}
	if err != nil {
		return nil // a missing or unreadable directory: let badger.Open report it
	}
	return kr.Close()
}

// Close waits for calls in flight (and so for the committer to answer all
// queued mutations), stops the committer and closes the database. Later
// calls return ErrClosed; a second Close returns nil.
func (b *Badger) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	close(b.queue)
	b.mu.Unlock()
	<-b.committerDone
	if err := b.db.Close(); err != nil {
		return fmt.Errorf("registry: close badger: %w", err)
	}
	return nil
}

// view runs fn in a read-only transaction unless the store is closed.
func (b *Badger) view(ctx context.Context, fn func(txn *badger.Txn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return ErrClosed
	}
	return b.db.View(fn)
}

// wrap adds the operation to unexpected (storage) errors; the project's
// sentinel errors and context errors already say what happened.
func wrap(op string, err error) error {
	switch {
	case err == nil,
		errors.Is(err, ErrNotFound), errors.Is(err, ErrInvalid), errors.Is(err, ErrClosed),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return fmt.Errorf("registry: %s: %w", op, err)
}
