package registry_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rewind-broker/rewind/registry"
	"github.com/rewind-broker/rewind/registry/storetest"
)

func openBadger(t testing.TB, cfg registry.BadgerConfig) *registry.Badger {
	t.Helper()
	b, err := registry.OpenBadger(cfg)
	if err != nil {
		t.Fatalf("OpenBadger: %v", err)
	}
	return b
}

func TestBadgerContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) registry.Store {
		return openBadger(t, registry.BadgerConfig{Dir: t.TempDir()})
	})
}

func TestBadgerContractInMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) registry.Store {
		return openBadger(t, registry.BadgerConfig{InMemory: true})
	})
}

func TestBadgerContractEncrypted(t *testing.T) {
	storetest.Run(t, func(t *testing.T) registry.Store {
		return openBadger(t, registry.BadgerConfig{Dir: t.TempDir(), EncryptionKey: testKey(32)})
	})
}

func TestBadgerPersistent(t *testing.T) {
	storetest.RunPersistent(t, func(t *testing.T) storetest.Opener {
		dir := t.TempDir()
		return func(t *testing.T) registry.Store {
			return openBadger(t, registry.BadgerConfig{Dir: dir, EncryptionKey: testKey(16)})
		}
	})
}

func testKey(n int) []byte {
	k := make([]byte, n)
	for i := range k {
		k[i] = byte(i*7 + 1)
	}
	return k
}

// dirContains reports whether any file under dir contains needle.
func dirContains(t *testing.T, dir string, needle []byte) bool {
	t.Helper()
	found := false
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, needle) {
			t.Logf("found in %s", filepath.Base(path))
			found = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func TestBadgerEncryptionAtRest(t *testing.T) {
	ctx := context.Background()
	const password = "Sup3r-Secret-Passw0rd-XYZZY"
	write := func(dir string, key []byte) {
		b := openBadger(t, registry.BadgerConfig{Dir: dir, EncryptionKey: key})
		if _, err := b.PutTerminal(ctx, registry.Terminal{ID: 262000101, Password: password, Name: "phone"}); err != nil {
			t.Fatalf("PutTerminal: %v", err)
		}
		if err := b.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}

	// Without a key the password is in the files: the grep below means something.
	plainDir := t.TempDir()
	write(plainDir, nil)
	if !dirContains(t, plainDir, []byte(password)) {
		t.Fatal("password not found in an unencrypted directory; the at-rest check would prove nothing")
	}

	dir := t.TempDir()
	key := testKey(32)
	write(dir, key)
	if dirContains(t, dir, []byte(password)) {
		t.Error("password found in clear in an encrypted data directory")
	}

	for _, tc := range []struct {
		what string
		dir  string
		key  []byte
	}{
		{"wrong key", dir, testKey(16)},
		{"same length, other key", dir, append(testKey(31), 0)},
		{"no key", dir, nil},
		{"key for an unencrypted directory", plainDir, key},
	} {
		_, err := registry.OpenBadger(registry.BadgerConfig{Dir: tc.dir, EncryptionKey: tc.key, Logger: discardLogger()})
		if !errors.Is(err, registry.ErrKeyMismatch) {
			t.Errorf("%s: OpenBadger err = %v, want ErrKeyMismatch", tc.what, err)
		}
	}

	b := openBadger(t, registry.BadgerConfig{Dir: dir, EncryptionKey: key})
	defer b.Close()
	got, err := b.GetTerminal(ctx, 262000101)
	if err != nil || got.Password != password {
		t.Errorf("reopened with the right key: %+v, %v", got, err)
	}
}

func TestOpenBadgerConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		what string
		cfg  registry.BadgerConfig
	}{
		{"no dir", registry.BadgerConfig{}},
		{"dir and in-memory", registry.BadgerConfig{Dir: t.TempDir(), InMemory: true}},
		{"key of 15 bytes", registry.BadgerConfig{Dir: t.TempDir(), EncryptionKey: testKey(15)}},
		{"empty key", registry.BadgerConfig{Dir: t.TempDir(), EncryptionKey: []byte{}}},
		{"negative batch", registry.BadgerConfig{Dir: t.TempDir(), MaxBatch: -1}},
	} {
		if _, err := registry.OpenBadger(tc.cfg); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", tc.what, err)
		}
	}
}

// recordingHandler keeps every slog record it is given.
type recordingHandler struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r)
	return nil
}
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler      { return h }

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestBadgerLogsNoInfo checks badger's own logging end to end: opening,
// writing and closing make badger log several INFO lines (tables opened,
// memtable replay, …); none of them may reach slog. That WARN and ERROR do
// reach it is checked on the adapter itself (logger_internal_test.go): the
// one easy way to make badger log an error, a failed Open, leaks badger
// goroutines.
func TestBadgerLogsNoInfo(t *testing.T) {
	h := &recordingHandler{}
	dir := t.TempDir()
	for range 2 { // create, then reopen and replay
		b := openBadger(t, registry.BadgerConfig{Dir: dir, EncryptionKey: testKey(16), Logger: slog.New(h)})
		if _, err := b.PutTerminal(context.Background(), registry.Terminal{ID: 1, Password: "pw"}); err != nil {
			t.Fatal(err)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range h.records {
		t.Errorf("badger logged %v %q; want nothing below WARN", r.Level, r.Message)
	}
}

func TestBadgerOutboxContract(t *testing.T) {
	storetest.RunOutbox(t, func(t *testing.T) storetest.OutboxOpener {
		dir := t.TempDir()
		return func(t *testing.T, now func() time.Time) storetest.OutboxStore {
			return openBadger(t, registry.BadgerConfig{Dir: dir, Now: now})
		}
	})
}

func TestBadgerOutboxContractEncryptedSmallBatches(t *testing.T) {
	storetest.RunOutbox(t, func(t *testing.T) storetest.OutboxOpener {
		dir := t.TempDir()
		return func(t *testing.T, now func() time.Time) storetest.OutboxStore {
			return openBadger(t, registry.BadgerConfig{Dir: dir, Now: now, EncryptionKey: testKey(32), MaxBatch: 3, QueueSize: 1})
		}
	})
}
