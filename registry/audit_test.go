package registry_test

import (
	"context"
	"testing"
	"time"

	"github.com/rewind-broker/rewind/registry"
	"github.com/rewind-broker/rewind/registry/storetest"
)

func TestBadgerAuditContract(t *testing.T) {
	storetest.RunAudits(t, func(t *testing.T) storetest.AuditOpener {
		dir := t.TempDir()
		return func(t *testing.T, now func() time.Time) storetest.AuditStore {
			return openBadger(t, registry.BadgerConfig{Dir: dir, Now: now})
		}
	})
}

func TestBadgerAuditContractEncryptedSmallBatches(t *testing.T) {
	storetest.RunAudits(t, func(t *testing.T) storetest.AuditOpener {
		dir := t.TempDir()
		return func(t *testing.T, now func() time.Time) storetest.AuditStore {
			return openBadger(t, registry.BadgerConfig{Dir: dir, Now: now, EncryptionKey: testKey(32), MaxBatch: 2, QueueSize: 1})
		}
	})
}

// TestOutboxStats: the count of every stored entry and the Stored time of the first to expire,
// expired-but-not-removed entries included; audit records and other keys are not counted.
func TestOutboxStats(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	b := openBadger(t, registry.BadgerConfig{InMemory: true, Now: clock})
	defer b.Close()
	if n, first, err := b.OutboxStats(ctx); err != nil || n != 0 || !first.IsZero() {
		t.Fatalf("empty: %d %v %v", n, first, err)
	}
	if _, err := b.Append(ctx, 7, []byte("late"), 2*time.Hour); err != nil {
		t.Fatal(err)
	}
	stored := now
	now = now.Add(time.Minute)
	for i := 0; i < 3; i++ {
		if _, err := b.Append(ctx, uint32(8+i), []byte("x"), 5*time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.AppendAudit(ctx, registry.PushAudit{Terminal: 7, Outcome: "sent"}, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	n, first, err := b.OutboxStats(ctx)
	if err != nil || n != 4 || !first.Equal(stored) {
		t.Fatalf("stats: %d, %v, %v; want 4, %v", n, first, err, stored)
	}
	if _, err := b.Ack(ctx, 7, 1); err != nil {
		t.Fatal(err)
	}
	if n, first, _ := b.OutboxStats(ctx); n != 3 || !first.Equal(stored.Add(time.Minute)) {
		t.Fatalf("after ack: %d, %v", n, first)
	}
}
