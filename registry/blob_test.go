package registry_test

import (
	"testing"
	"time"

	"github.com/rewind-broker/rewind/registry"
	"github.com/rewind-broker/rewind/registry/storetest"
)

func TestBadgerBlobContract(t *testing.T) {
	storetest.RunBlobs(t, func(t *testing.T) storetest.BlobOpener {
		dir := t.TempDir()
		return func(t *testing.T, now func() time.Time) storetest.BlobStore {
			return openBadger(t, registry.BadgerConfig{Dir: dir, Now: now})
		}
	})
}

func TestBadgerBlobContractEncryptedSmallBatches(t *testing.T) {
	storetest.RunBlobs(t, func(t *testing.T) storetest.BlobOpener {
		dir := t.TempDir()
		return func(t *testing.T, now func() time.Time) storetest.BlobStore {
			return openBadger(t, registry.BadgerConfig{Dir: dir, Now: now, EncryptionKey: testKey(24), MaxBatch: 2, QueueSize: 1})
		}
	})
}
