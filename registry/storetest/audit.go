package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rewind-broker/rewind/registry"
)

// AuditStore is an Audits that can be closed; the suite closes and reopens it to check
// durability.
type AuditStore interface {
	registry.Audits
	Close() error
}

// AuditOpener opens one storage location with the given clock, which the store must use to
// decide what ListAudit treats as expired and to time records with a zero Time. Every call opens
// the same location.
type AuditOpener func(t *testing.T, now func() time.Time) AuditStore

// RunAudits runs the Audits contract. fresh returns an AuditOpener for a new, empty location;
// the suite closes every store it opens.
func RunAudits(t *testing.T, fresh func(t *testing.T) AuditOpener) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, f *auditFixture)
	}{
		{"AppendList", testAuditAppendList},
		{"Paging", testAuditPaging},
		{"SameInstant", testAuditSameInstant},
		{"Validation", testAuditValidation},
		{"Expiry", testAuditExpiry},
		{"Persistent", testAuditPersistent},
		{"Concurrent", testAuditConcurrent},
		{"Closed", testAuditClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &auditFixture{open: fresh(t), clock: &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 678901234, time.UTC)}}
			f.reopen(t)
			t.Cleanup(func() {
				if err := f.s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, f)
		})
	}
}

type auditFixture struct {
	open  AuditOpener
	clock *clock
	s     AuditStore
}

func (f *auditFixture) reopen(t *testing.T) {
	t.Helper()
	if f.s != nil {
		if err := f.s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	f.s = f.open(t, f.clock.Now)
}

func (f *auditFixture) add(t *testing.T, a registry.PushAudit, expires time.Time) {
	t.Helper()
	if err := f.s.AppendAudit(context.Background(), a, expires); err != nil {
		t.Fatalf("AppendAudit(%+v): %v", a, err)
	}
}

func (f *auditFixture) list(t *testing.T, terminal uint32, before time.Time, limit int) []registry.PushAudit {
	t.Helper()
	out, err := f.s.ListAudit(context.Background(), terminal, before, limit)
	if err != nil {
		t.Fatalf("ListAudit(%d, %v, %d): %v", terminal, before, limit, err)
	}
	return out
}

func outcomes(as []registry.PushAudit) string {
	var b []string
	for _, a := range as {
		b = append(b, a.Outcome)
	}
	return strings.Join(b, ",")
}

func testAuditAppendList(t *testing.T, f *auditFixture) {
	base := f.clock.Now()
	never := time.Time{}
	full := registry.PushAudit{Terminal: 262000101, Time: base.Add(time.Second), Platform: "fcm",
		MessageID: "projects/p/messages/0:1", Outcome: "sent", Latency: 123456789 * time.Nanosecond, Kind: "data"}
	f.add(t, registry.PushAudit{Terminal: 262000101, Time: base, Platform: "fcm", Outcome: "retrying", Reason: "503 unavailable"}, never)
	f.add(t, full, never)
	f.add(t, registry.PushAudit{Terminal: 262000101, Time: base.Add(2 * time.Second), Outcome: "no_push_channel", Reason: "no attach"}, never)
	f.add(t, registry.PushAudit{Terminal: 262000102, Time: base.Add(3 * time.Second), Platform: "apns", Outcome: "token_invalid"}, never)
	f.add(t, registry.PushAudit{Terminal: 1, Time: base.Add(-time.Hour), Outcome: "sent"}, never)

	got := f.list(t, 262000101, time.Time{}, 10)
	if outcomes(got) != "no_push_channel,sent,retrying" {
		t.Fatalf("ListAudit newest first: %s", outcomes(got))
	}
	if got[1] != full {
		t.Errorf("round trip: %+v, want %+v", got[1], full)
	}
	if got[2].Reason != "503 unavailable" || got[2].Platform != "fcm" || !got[2].Time.Equal(base) {
		t.Errorf("oldest: %+v", got[2])
	}
	if got := f.list(t, 262000102, time.Time{}, 10); outcomes(got) != "token_invalid" || got[0].Terminal != 262000102 {
		t.Errorf("other terminal: %+v", got)
	}
	if got := f.list(t, 262000103, time.Time{}, 10); len(got) != 0 {
		t.Errorf("terminal without records: %+v", got)
	}
	// Terminals whose ids share a byte prefix do not see each other's records.
	if got := f.list(t, 1, time.Time{}, 10); len(got) != 1 {
		t.Errorf("terminal 1: %+v", got)
	}

	// A zero Time is the store's now.
	f.clock.Advance(time.Minute)
	f.add(t, registry.PushAudit{Terminal: 262000101, Outcome: "rejected"}, never)
	if got := f.list(t, 262000101, time.Time{}, 1); len(got) != 1 || got[0].Outcome != "rejected" || !got[0].Time.Equal(f.clock.Now()) {
		t.Errorf("zero Time: %+v, want the store's now %v", got, f.clock.Now())
	}
}

func testAuditPaging(t *testing.T, f *auditFixture) {
	base := f.clock.Now()
	for i := 0; i < 25; i++ {
		f.add(t, registry.PushAudit{Terminal: 7, Time: base.Add(time.Duration(i) * time.Millisecond), Outcome: fmt.Sprint("o", i)}, time.Time{})
	}
	var all []registry.PushAudit
	before := time.Time{}
	for {
		page := f.list(t, 7, before, 10)
		all = append(all, page...)
		if len(page) < 10 {
			break
		}
		before = page[len(page)-1].Time
	}
	if len(all) != 25 {
		t.Fatalf("paged %d records, want 25", len(all))
	}
	for i, a := range all {
		if want := fmt.Sprint("o", 24-i); a.Outcome != want {
			t.Fatalf("record %d: %s, want %s", i, a.Outcome, want)
		}
	}
	// before is exclusive.
	if got := f.list(t, 7, base.Add(10*time.Millisecond), 3); outcomes(got) != "o9,o8,o7" {
		t.Errorf("before an exact record time: %s", outcomes(got))
	}
	if got := f.list(t, 7, base, 3); len(got) != 0 {
		t.Errorf("before the first record: %s", outcomes(got))
	}
	for _, limit := range []int{0, -1, registry.MaxPageSize + 1} {
		if _, err := f.s.ListAudit(context.Background(), 7, time.Time{}, limit); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("ListAudit(limit %d): %v, want ErrInvalid", limit, err)
		}
	}
}

func testAuditSameInstant(t *testing.T, f *auditFixture) {
	at := f.clock.Now()
	for i := 0; i < 5; i++ {
		f.add(t, registry.PushAudit{Terminal: 9, Time: at, Outcome: fmt.Sprint("o", i)}, time.Time{})
	}
	if got := f.list(t, 9, time.Time{}, 10); len(got) != 5 {
		t.Fatalf("records at one instant: %s, want all 5 kept", outcomes(got))
	}
}

func testAuditValidation(t *testing.T, f *auditFixture) {
	for _, a := range []registry.PushAudit{
		{Terminal: 0, Outcome: "sent"},
		{Terminal: 1},
		{Terminal: 1, Outcome: strings.Repeat("o", registry.MaxAuditLabelBytes+1)},
		{Terminal: 1, Outcome: "sent", Platform: strings.Repeat("p", registry.MaxAuditLabelBytes+1)},
		{Terminal: 1, Outcome: "sent", Kind: strings.Repeat("k", registry.MaxAuditLabelBytes+1)},
		{Terminal: 1, Outcome: "sent", Latency: -1},
	} {
		if err := f.s.AppendAudit(context.Background(), a, time.Time{}); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("AppendAudit(%+v): %v, want ErrInvalid", a, err)
		}
	}
	if got := f.list(t, 1, time.Time{}, 10); len(got) != 0 {
		t.Fatalf("refused records stored: %+v", got)
	}
	// Long provider texts are cut, at a rune boundary, not refused.
	long := strings.Repeat("é", registry.MaxAuditReasonBytes) // 2 bytes a rune
	f.add(t, registry.PushAudit{Terminal: 1, Outcome: "rejected", Reason: "x" + long, MessageID: strings.Repeat("m", 1000)}, time.Time{})
	got := f.list(t, 1, time.Time{}, 1)
	if len(got) != 1 {
		t.Fatal("long record not stored")
	}
	if r := got[0].Reason; len(r) > registry.MaxAuditReasonBytes || len(r) < registry.MaxAuditReasonBytes-1 || !strings.HasPrefix(r, "xé") || strings.ContainsRune(r, '\uFFFD') {
		t.Errorf("reason cut to %d bytes: %q…", len(r), r[:min(len(r), 8)])
	}
	if len(got[0].MessageID) != registry.MaxAuditMessageIDBytes {
		t.Errorf("message id of %d bytes", len(got[0].MessageID))
	}
}

func testAuditExpiry(t *testing.T, f *auditFixture) {
	ctx := context.Background()
	now := f.clock.Now()
	f.add(t, registry.PushAudit{Terminal: 5, Time: now, Outcome: "soon"}, now.Add(time.Hour))
	f.add(t, registry.PushAudit{Terminal: 5, Time: now.Add(time.Second), Outcome: "later"}, now.Add(2*time.Hour))
	f.add(t, registry.PushAudit{Terminal: 6, Time: now, Outcome: "never"}, time.Time{})

	if n, err := f.s.ExpireAudits(ctx, now.Add(time.Hour-time.Nanosecond)); err != nil || n != 0 {
		t.Fatalf("ExpireAudits just before: %d, %v", n, err)
	}
	// Expired from the expires instant on, for ListAudit too, before ExpireAudits runs.
	f.clock.Advance(time.Hour)
	if got := f.list(t, 5, time.Time{}, 10); outcomes(got) != "later" {
		t.Errorf("ListAudit at the expiry instant: %s", outcomes(got))
	}
	if n, err := f.s.ExpireAudits(ctx, f.clock.Now()); err != nil || n != 1 {
		t.Fatalf("ExpireAudits at the instant: %d, %v; want 1", n, err)
	}
	f.clock.Advance(time.Hour)
	if n, err := f.s.ExpireAudits(ctx, f.clock.Now().Add(1000*time.Hour)); err != nil || n != 1 {
		t.Fatalf("ExpireAudits later: %d, %v; want 1 (the record that never expires stays)", n, err)
	}
	if got := f.list(t, 6, time.Time{}, 10); outcomes(got) != "never" {
		t.Errorf("record without expiry: %s", outcomes(got))
	}

	// Many at once: more than one job's worth.
	const many = 2500
	for i := 0; i < many; i++ {
		f.add(t, registry.PushAudit{Terminal: 8, Time: now.Add(time.Duration(i)), Outcome: "sent"}, f.clock.Now().Add(time.Minute))
	}
	if n, err := f.s.ExpireAudits(ctx, f.clock.Now().Add(time.Minute)); err != nil || n != many {
		t.Fatalf("ExpireAudits(many): %d, %v; want %d", n, err, many)
	}
}

func testAuditPersistent(t *testing.T, f *auditFixture) {
	now := f.clock.Now()
	a := registry.PushAudit{Terminal: 3, Time: now, Platform: "apns", MessageID: "apns-id", Outcome: "sent", Latency: time.Millisecond, Kind: "wake"}
	f.add(t, a, now.Add(time.Hour))
	f.reopen(t)
	if got := f.list(t, 3, time.Time{}, 10); len(got) != 1 || got[0] != a {
		t.Fatalf("after reopen: %+v", got)
	}
	if n, err := f.s.ExpireAudits(context.Background(), now.Add(time.Hour)); err != nil || n != 1 {
		t.Fatalf("expiry index after reopen: %d, %v", n, err)
	}
}

func testAuditConcurrent(t *testing.T, f *auditFixture) {
	at := f.clock.Now()
	var wg sync.WaitGroup
	for i := 0; i < 32; i++ {
		wg.Go(func() {
			if err := f.s.AppendAudit(context.Background(), registry.PushAudit{Terminal: 4, Time: at, Outcome: fmt.Sprint("o", i)}, time.Time{}); err != nil {
				t.Errorf("AppendAudit: %v", err)
			}
		})
	}
	wg.Wait()
	if got := f.list(t, 4, time.Time{}, 100); len(got) != 32 {
		t.Fatalf("%d records after 32 concurrent appends at one instant", len(got))
	}
}

func testAuditClosed(t *testing.T, f *auditFixture) {
	ctx := context.Background()
	if err := f.s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.s.AppendAudit(ctx, registry.PushAudit{Terminal: 1, Outcome: "sent"}, time.Time{}); !errors.Is(err, registry.ErrClosed) {
		t.Errorf("AppendAudit after Close: %v", err)
	}
	if _, err := f.s.ListAudit(ctx, 1, time.Time{}, 1); !errors.Is(err, registry.ErrClosed) {
		t.Errorf("ListAudit after Close: %v", err)
	}
	if _, err := f.s.ExpireAudits(ctx, time.Now()); !errors.Is(err, registry.ErrClosed) {
		t.Errorf("ExpireAudits after Close: %v", err)
	}
}
