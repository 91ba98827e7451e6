// Package storetest is the contract suite for implementations of
// registry.Store, registry.Outbox, registry.Attaches and registry.Blobs:
// Run and RunPersistent, RunOutbox, RunAttaches and RunBlobs. Every
// implementation runs the suites of the interfaces it implements from its
// own tests:
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) registry.Store { return openFresh(t) })
//	}
//
// The suite checks behaviour through the interfaces only, so an
// implementation that passes it can replace another one.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rewind-broker/rewind/registry"
)

// Run runs the Store contract. open must return a new, empty store that
// uses the real clock (time.Now); the suite closes every store it opens
// (open may also register its own cleanup: a second Close must return nil).
//
// Paging contract checked here: a limit outside 1..registry.MaxPageSize is
// refused with registry.ErrInvalid.
func Run(t *testing.T, open func(t *testing.T) registry.Store) {
	t.Helper()
	openClosing := func(t *testing.T) registry.Store {
		s := open(t)
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return s
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, s registry.Store)
	}{
		{"CreateUpdate", testCreateUpdate},
		{"Validation", testValidation},
		{"NotFound", testNotFound},
		{"Paging", testPaging},
		{"UserIndex", testUserIndex},
		{"Touch", testTouch},
		{"ConcurrentReadModifyWrite", testConcurrentRMW},
		{"ContextCancelled", testContextCancelled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, openClosing(t)) })
	}
	t.Run("Closed", func(t *testing.T) { testClosed(t, open(t)) })
}

// Opener opens one storage location (a directory, a bucket …). Every call
// opens the same location, so a store opened after the previous one was
// closed sees everything that one wrote.
type Opener func(t *testing.T) registry.Store

// RunPersistent checks that a store keeps terminals, their index and their
// times across Close and reopen. fresh returns an Opener for a new, empty
// location; the suite closes every store it opens.
func RunPersistent(t *testing.T, fresh func(t *testing.T) Opener) {
	t.Helper()
	ctx := context.Background()
	open := fresh(t)

	s := open(t)
	ids := []uint32{2620001, 262000101, 262000102, 3100001}
	for _, id := range ids {
		mustPut(t, s, registry.Terminal{ID: id, Password: fmt.Sprintf("pw-%d", id), Name: "dev ✓"})
	}
	seen := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	if err := s.TouchTerminal(ctx, 262000101, seen); err != nil {
		t.Fatalf("TouchTerminal: %v", err)
	}
	if err := s.DeleteTerminal(ctx, 262000102); err != nil {
		t.Fatalf("DeleteTerminal: %v", err)
	}
	before := listAll(t, s)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = open(t)
	defer func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	after := listAll(t, s)
	if len(after) != len(before) || len(after) != 3 {
		t.Fatalf("after reopen: %d terminals, before: %d; want 3", len(after), len(before))
	}
	for i := range after {
		sameTerminal(t, after[i], before[i])
	}
	got, err := s.GetTerminal(ctx, 262000101)
	if err != nil {
		t.Fatalf("GetTerminal after reopen: %v", err)
	}
	if !got.LastSeen.Equal(seen) {
		t.Errorf("LastSeen after reopen = %v, want %v", got.LastSeen, seen)
	}
	if _, err := s.GetTerminal(ctx, 262000102); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("deleted terminal after reopen: err = %v, want ErrNotFound", err)
	}
	wantIDs(t, "UserTerminals(2620001) after reopen", userTerminals(t, s, 2620001), 2620001, 262000101)
}

func mustPut(t *testing.T, s registry.Store, term registry.Terminal) bool {
	t.Helper()
	created, err := s.PutTerminal(context.Background(), term)
	if err != nil {
		t.Fatalf("PutTerminal(%d): %v", term.ID, err)
	}
	return created
}

func mustGet(t *testing.T, s registry.Store, id uint32) registry.Terminal {
	t.Helper()
	got, err := s.GetTerminal(context.Background(), id)
	if err != nil {
		t.Fatalf("GetTerminal(%d): %v", id, err)
	}
	return got
}

func listAll(t *testing.T, s registry.Store) []registry.Terminal {
	t.Helper()
	var all []registry.Terminal
	var after uint32
	for {
		page, err := s.ListTerminals(context.Background(), after, 2)
		if err != nil {
			t.Fatalf("ListTerminals(%d, 2): %v", after, err)
		}
		all = append(all, page...)
		if len(page) < 2 {
			return all
		}
		after = page[len(page)-1].ID
	}
}

func userTerminals(t *testing.T, s registry.Store, user uint32) []registry.Terminal {
	t.Helper()
	ts, err := s.UserTerminals(context.Background(), user)
	if err != nil {
		t.Fatalf("UserTerminals(%d): %v", user, err)
	}
	return ts
}

func ids(ts []registry.Terminal) []uint32 {
	out := make([]uint32, len(ts))
	for i, t := range ts {
		out[i] = t.ID
	}
	return out
}

func wantIDs(t *testing.T, what string, got []registry.Terminal, want ...uint32) {
	t.Helper()
	if g := ids(got); !slices.Equal(g, want) {
		t.Errorf("%s = %v, want %v", what, g, want)
	}
}

func sameTerminal(t *testing.T, got, want registry.Terminal) {
	t.Helper()
	if got.ID != want.ID || got.Password != want.Password || got.Name != want.Name ||
		!got.Created.Equal(want.Created) || !got.Updated.Equal(want.Updated) || !got.LastSeen.Equal(want.LastSeen) {
		t.Errorf("terminal = %+v, want %+v", got, want)
	}
}

func testCreateUpdate(t *testing.T, s registry.Store) {
	start := time.Now().Truncate(time.Millisecond)
	bogus := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	in := registry.Terminal{ID: 262000101, Password: "secret", Name: "Pixel 8",
		Created: bogus, Updated: bogus, LastSeen: bogus}
	if !mustPut(t, s, in) {
		t.Error("first PutTerminal: created = false, want true")
	}
	first := mustGet(t, s, in.ID)
	if first.ID != in.ID || first.Password != "secret" || first.Name != "Pixel 8" {
		t.Errorf("after create: %+v", first)
	}
	if first.Created.Before(start) || !first.Updated.Equal(first.Created) {
		t.Errorf("after create: Created %v, Updated %v; want Created = Updated >= %v (caller's times ignored)",
			first.Created, first.Updated, start)
	}
	if !first.LastSeen.IsZero() {
		t.Errorf("after create: LastSeen = %v, want zero (caller's value ignored)", first.LastSeen)
	}

	mid := time.Now().Truncate(time.Millisecond)
	in.Password, in.Name = "other", ""
	if mustPut(t, s, in) {
		t.Error("second PutTerminal: created = true, want false")
	}
	second := mustGet(t, s, in.ID)
	if second.Password != "other" || second.Name != "" {
		t.Errorf("after update: %+v", second)
	}
	if !second.Created.Equal(first.Created) {
		t.Errorf("update changed Created: %v -> %v", first.Created, second.Created)
	}
	if !second.Updated.After(first.Updated) || second.Updated.Before(mid) {
		t.Errorf("after update: Updated %v; want after %v and not before %v", second.Updated, first.Updated, mid)
	}
}

func testValidation(t *testing.T, s registry.Store) {
	ok := func(id uint32, pw, name string) registry.Terminal {
		return registry.Terminal{ID: id, Password: pw, Name: name}
	}
	name64 := strings.Repeat("é", 32) + strings.Repeat("x", 31) + "日" // 64 runes, 98 bytes
	for _, tc := range []struct {
		what  string
		term  registry.Terminal
		valid bool
	}{
		{"id 0", ok(0, "pw", ""), false},
		{"empty password", ok(1, "", ""), false},
		{"password 256 bytes", ok(2, strings.Repeat("p", registry.MaxPasswordBytes), ""), true},
		{"password 257 bytes", ok(3, strings.Repeat("p", registry.MaxPasswordBytes+1), ""), false},
		{"name 64 runes", ok(4, "pw", name64), true},
		{"name 65 runes", ok(5, "pw", name64+"x"), false},
		{"name with control char", ok(6, "pw", "bad\x07name"), false},
		{"name with newline", ok(7, "pw", "two\nlines"), false},
		{"name not UTF-8", ok(8, "pw", "bad\xffname"), false},
		{"empty name", ok(9, "pw", ""), true},
		{"max id", ok(^uint32(0), "pw", "max"), true},
	} {
		_, err := s.PutTerminal(context.Background(), tc.term)
		switch {
		case tc.valid && err != nil:
			t.Errorf("%s: PutTerminal: %v, want success", tc.what, err)
		case tc.valid:
			if got := mustGet(t, s, tc.term.ID); got.Password != tc.term.Password || got.Name != tc.term.Name {
				t.Errorf("%s: stored %+v", tc.what, got)
			}
		case !errors.Is(err, registry.ErrInvalid):
			t.Errorf("%s: PutTerminal: err = %v, want ErrInvalid", tc.what, err)
		case tc.term.ID != 0:
			if _, err := s.GetTerminal(context.Background(), tc.term.ID); !errors.Is(err, registry.ErrNotFound) {
				t.Errorf("%s: refused terminal stored anyway (GetTerminal err = %v)", tc.what, err)
			}
		}
	}
}

func testNotFound(t *testing.T, s registry.Store) {
	ctx := context.Background()
	if _, err := s.GetTerminal(ctx, 7); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("GetTerminal(absent): err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteTerminal(ctx, 7); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("DeleteTerminal(absent): err = %v, want ErrNotFound", err)
	}
	if err := s.TouchTerminal(ctx, 7, time.Now()); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("TouchTerminal(absent): err = %v, want ErrNotFound", err)
	}
	mustPut(t, s, registry.Terminal{ID: 7, Password: "pw"})
	if err := s.DeleteTerminal(ctx, 7); err != nil {
		t.Fatalf("DeleteTerminal: %v", err)
	}
	if _, err := s.GetTerminal(ctx, 7); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("GetTerminal after delete: err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteTerminal(ctx, 7); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("second DeleteTerminal: err = %v, want ErrNotFound", err)
	}
	if mustPut(t, s, registry.Terminal{ID: 7, Password: "pw"}) != true {
		t.Error("PutTerminal after delete: created = false, want true")
	}
}

func testPaging(t *testing.T, s registry.Store) {
	ctx := context.Background()
	for _, limit := range []int{0, -1, registry.MaxPageSize + 1} {
		if _, err := s.ListTerminals(ctx, 0, limit); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("ListTerminals(limit %d): err = %v, want ErrInvalid", limit, err)
		}
	}
	if page, err := s.ListTerminals(ctx, 0, registry.MaxPageSize); err != nil || len(page) != 0 {
		t.Errorf("ListTerminals on empty store = %v, %v; want empty", ids(page), err)
	}
	// Ids whose byte order differs from their decimal string order.
	for _, id := range []uint32{300, 5, 262000101, ^uint32(0), 1, 262000100, 42, 256} {
		mustPut(t, s, registry.Terminal{ID: id, Password: "pw"})
	}
	page := func(after uint32, limit int) []registry.Terminal {
		t.Helper()
		p, err := s.ListTerminals(ctx, after, limit)
		if err != nil {
			t.Fatalf("ListTerminals(%d, %d): %v", after, limit, err)
		}
		return p
	}
	wantIDs(t, "ListTerminals(0, 3)", page(0, 3), 1, 5, 42)
	wantIDs(t, "ListTerminals(42, 3)", page(42, 3), 256, 300, 262000100)
	wantIDs(t, "ListTerminals(262000100, 3)", page(262000100, 3), 262000101, ^uint32(0))
	wantIDs(t, "ListTerminals(2, 1)", page(2, 1), 5)
	wantIDs(t, "ListTerminals(max, 3)", page(^uint32(0), 3))
	wantIDs(t, "ListTerminals(0, max)", page(0, registry.MaxPageSize), 1, 5, 42, 256, 300, 262000100, 262000101, ^uint32(0))
	wantIDs(t, "all pages of 2", listAll(t, s), 1, 5, 42, 256, 300, 262000100, 262000101, ^uint32(0))
}

func testUserIndex(t *testing.T, s registry.Store) {
	ctx := context.Background()
	for id, user := range map[uint32]uint32{
		262000101: 2620001, 100000000: 1000000, 999999999: 9999999,
		2620001: 2620001, 99999999: 99999999, 1000000000: 1000000000, 1: 1,
	} {
		if got := registry.UserOf(id); got != user {
			t.Errorf("UserOf(%d) = %d, want %d", id, got, user)
		}
		if got := (registry.Terminal{ID: id}).UserID(); got != user {
			t.Errorf("Terminal{ID: %d}.UserID() = %d, want %d", id, got, user)
		}
	}

	for _, id := range []uint32{262000199, 262000101, 2620001, 262000100, 2620002, 262000201, 26200010} {
		mustPut(t, s, registry.Terminal{ID: id, Password: "pw", Name: fmt.Sprint("d", id)})
	}
	wantIDs(t, "UserTerminals(2620001)", userTerminals(t, s, 2620001), 2620001, 262000100, 262000101, 262000199)
	wantIDs(t, "UserTerminals(2620002)", userTerminals(t, s, 2620002), 2620002, 262000201)
	wantIDs(t, "UserTerminals(26200010) (8 digits: its own user)", userTerminals(t, s, 26200010), 26200010)
	wantIDs(t, "UserTerminals(262000101) (a terminal, not a user)", userTerminals(t, s, 262000101))
	wantIDs(t, "UserTerminals(unknown)", userTerminals(t, s, 3100001))

	mustPut(t, s, registry.Terminal{ID: 262000101, Password: "new", Name: "renamed"})
	got := userTerminals(t, s, 2620001)
	wantIDs(t, "UserTerminals(2620001) after re-put", got, 2620001, 262000100, 262000101, 262000199)
	if len(got) == 4 && (got[2].Name != "renamed" || got[2].Password != "new") {
		t.Errorf("UserTerminals after re-put returned stale record %+v", got[2])
	}
	if err := s.DeleteTerminal(ctx, 262000100); err != nil {
		t.Fatalf("DeleteTerminal: %v", err)
	}
	if err := s.DeleteTerminal(ctx, 2620001); err != nil {
		t.Fatalf("DeleteTerminal: %v", err)
	}
	wantIDs(t, "UserTerminals(2620001) after deletes", userTerminals(t, s, 2620001), 262000101, 262000199)
}

func testTouch(t *testing.T, s registry.Store) {
	ctx := context.Background()
	mustPut(t, s, registry.Terminal{ID: 262000101, Password: "pw", Name: "n"})
	before := mustGet(t, s, 262000101)
	seen := time.Date(2031, 5, 6, 7, 8, 9, 123456789, time.UTC)
	if err := s.TouchTerminal(ctx, 262000101, seen); err != nil {
		t.Fatalf("TouchTerminal: %v", err)
	}
	after := mustGet(t, s, 262000101)
	if !after.LastSeen.Equal(seen) {
		t.Errorf("LastSeen = %v, want %v", after.LastSeen, seen)
	}
	after.LastSeen = before.LastSeen
	sameTerminal(t, after, before) // nothing else changed, not even Updated

	if err := s.TouchTerminal(ctx, 262000101, seen.Add(-time.Hour)); err != nil {
		t.Fatalf("TouchTerminal(earlier): %v", err)
	}
	if got := mustGet(t, s, 262000101); !got.LastSeen.Equal(seen) {
		t.Errorf("earlier touch moved LastSeen back to %v", got.LastSeen)
	}
	mustPut(t, s, registry.Terminal{ID: 262000101, Password: "pw2"})
	if got := mustGet(t, s, 262000101); !got.LastSeen.Equal(seen) {
		t.Errorf("PutTerminal changed LastSeen to %v, want %v kept", got.LastSeen, seen)
	}
}

// testConcurrentRMW checks that concurrent touches and puts of one terminal
// lose no update.
func testConcurrentRMW(t *testing.T, s registry.Store) {
	ctx := context.Background()
	mustPut(t, s, registry.Terminal{ID: 262000101, Password: "old"})
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	const touchers = 16
	var wg sync.WaitGroup
	for i := range touchers {
		wg.Go(func() {
			if err := s.TouchTerminal(ctx, 262000101, base.Add(time.Duration(i)*time.Second)); err != nil {
				t.Errorf("TouchTerminal: %v", err)
			}
		})
	}
	wg.Go(func() {
		if _, err := s.PutTerminal(ctx, registry.Terminal{ID: 262000101, Password: "new"}); err != nil {
			t.Errorf("PutTerminal: %v", err)
		}
	})
	wg.Wait()
	got := mustGet(t, s, 262000101)
	if want := base.Add((touchers - 1) * time.Second); !got.LastSeen.Equal(want) || got.Password != "new" {
		t.Errorf("after concurrent updates: LastSeen %v, password %q; want %v, %q", got.LastSeen, got.Password, want, "new")
	}
}

func testContextCancelled(t *testing.T, s registry.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.PutTerminal(ctx, registry.Terminal{ID: 9, Password: "pw"}); !errors.Is(err, context.Canceled) {
		t.Errorf("PutTerminal(cancelled ctx): err = %v, want context.Canceled", err)
	}
	if _, err := s.GetTerminal(ctx, 9); !errors.Is(err, context.Canceled) {
		t.Errorf("GetTerminal(cancelled ctx): err = %v, want context.Canceled", err)
	}
	if _, err := s.GetTerminal(context.Background(), 9); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("PutTerminal with a cancelled ctx stored the terminal (GetTerminal err = %v)", err)
	}
}

func testClosed(t *testing.T, s registry.Store) {
	ctx := context.Background()
	mustPut(t, s, registry.Terminal{ID: 9, Password: "pw"})
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v, want nil", err)
	}
	if _, err := s.GetTerminal(ctx, 9); !errors.Is(err, registry.ErrClosed) {
		t.Errorf("GetTerminal after Close: err = %v, want ErrClosed", err)
	}
	if _, err := s.PutTerminal(ctx, registry.Terminal{ID: 9, Password: "pw"}); !errors.Is(err, registry.ErrClosed) {
		t.Errorf("PutTerminal after Close: err = %v, want ErrClosed", err)
	}
	if _, err := s.ListTerminals(ctx, 0, 10); !errors.Is(err, registry.ErrClosed) {
		t.Errorf("ListTerminals after Close: err = %v, want ErrClosed", err)
	}
}
