package registry

import (
	"context"
	"reflect"
	"testing"
	"time"
)

func TestPendingTerminals(t *testing.T) {
	b, err := OpenBadger(BadgerConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	if got, err := b.PendingTerminals(ctx); err != nil || len(got) != 0 {
		t.Fatalf("empty store: %v %v", got, err)
	}
	for _, id := range []uint32{262000301, 5, 262000101, 262000101, 5, 4294967295} {
		if _, err := b.Append(ctx, id, []byte("REWIND01 datagram"), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Ack(ctx, 262000301, 1); err != nil { // its only entry: no longer pending
		t.Fatal(err)
	}
	got, err := b.PendingTerminals(ctx)
	if want := []uint32{5, 262000101, 4294967295}; err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("pending terminals %v (%v), want %v", got, err, want)
	}
}
