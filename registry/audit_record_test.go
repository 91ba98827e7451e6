package registry

import (
	"errors"
	"testing"
	"time"
)

// TestAuditPrefixes keeps the audit trail's key prefixes apart from every other one.
func TestAuditPrefixes(t *testing.T) {
	seen := map[byte]bool{}
	for _, p := range []byte{prefixTerminal, prefixUser, prefixEntry, prefixExpiry, prefixSeq, prefixAttach,
		prefixBlob, prefixBlobExp, prefixAudit, prefixAuditExp} {
		if seen[p] {
			t.Fatalf("key prefix %q used twice", p)
		}
		seen[p] = true
	}
	k := auditKey(262000101, -5, 3)
	exp, back, ok := parseAuditExpiryKey(auditExpiryKey(42, k))
	if !ok || exp != 42 || string(back) != string(k) {
		t.Fatalf("expiry key round trip: %v %d %x", ok, exp, back)
	}
	if term, at, ok := parseAuditKey(k); !ok || term != 262000101 || at != -5 {
		t.Fatalf("audit key: %v %d %d", ok, term, at)
	}
}

// FuzzDecodeAudit checks that stored audit bytes either decode into a record that survives a
// round trip or give ErrCorrupt; claimed string lengths are checked before allocating.
func FuzzDecodeAudit(f *testing.F) {
	key := auditKey(262000101, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano(), 0)
	for _, a := range []PushAudit{
		{Terminal: 262000101, Platform: "fcm", MessageID: "projects/p/messages/1", Outcome: "sent", Latency: time.Second, Kind: "data"},
		{Terminal: 262000101, Outcome: "no_push_channel", Reason: "no attach"},
	} {
		b, err := encodeAudit(a, 1700000000000000001)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("\x82\xa1v\x01\xa1o\xdb\xff\xff\xff\xff")) // str32 of 4 GiB claimed
	f.Fuzz(func(t *testing.T, b []byte) {
		a, exp, err := decodeAudit(key, b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
			return
		}
		again, err := encodeAudit(a, exp)
		if err != nil {
			t.Fatal(err)
		}
		back, backExp, err := decodeAudit(key, again)
		if err != nil || back != a || backExp != exp {
			t.Fatalf("round trip: %+v %v", back, err)
		}
	})
}
