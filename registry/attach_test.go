package registry_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rewind-broker/rewind/registry"
	"github.com/rewind-broker/rewind/registry/storetest"
)

func TestBadgerAttachContract(t *testing.T) {
	storetest.RunAttaches(t, func(t *testing.T) storetest.AttachOpener {
		dir := t.TempDir()
		return func(t *testing.T, now func() time.Time) storetest.AttachStore {
			return openBadger(t, registry.BadgerConfig{Dir: dir, Now: now})
		}
	})
}

func TestBadgerAttachContractEncryptedSmallBatches(t *testing.T) {
	storetest.RunAttaches(t, func(t *testing.T) storetest.AttachOpener {
		dir := t.TempDir()
		return func(t *testing.T, now func() time.Time) storetest.AttachStore {
			return openBadger(t, registry.BadgerConfig{Dir: dir, Now: now, EncryptionKey: testKey(16), MaxBatch: 2, QueueSize: 1})
		}
	})
}

// TestDeleteTerminalAll checks the count DeleteTerminalAll reports, across
// more than one internal deletion chunk and with none.
func TestDeleteTerminalAll(t *testing.T) {
	ctx := context.Background()
	b := openBadger(t, registry.BadgerConfig{InMemory: true})
	defer b.Close()
	for _, tc := range []struct {
		id      uint32
		entries int
	}{{262000101, 0}, {262000102, 3}, {262000103, 1300}} {
		if _, err := b.PutTerminal(ctx, registry.Terminal{ID: tc.id, Password: "pw"}); err != nil {
			t.Fatal(err)
		}
		for i := range tc.entries {
			if _, err := b.Append(ctx, tc.id, fmt.Appendf(nil, "%d", i), time.Hour); err != nil {
				t.Fatal(err)
			}
		}
		n, err := b.DeleteTerminalAll(ctx, tc.id)
		if err != nil || n != tc.entries {
			t.Errorf("DeleteTerminalAll(%d) = %d, %v; want %d", tc.id, n, err, tc.entries)
		}
		if n, _, _ := b.Depth(ctx, tc.id); n != 0 {
			t.Errorf("Depth(%d) after DeleteTerminalAll = %d", tc.id, n)
		}
	}
	if _, err := b.DeleteTerminalAll(ctx, 262000101); err == nil {
		t.Error("DeleteTerminalAll of an absent terminal: no error")
	}
}
