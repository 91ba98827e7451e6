package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rewind-broker/rewind/registry"
)

// AttachStore is a Store that also keeps attaches.
type AttachStore interface {
	registry.Store
	registry.Attaches
}

// AttachOpener opens one storage location with the given clock, which the
// store must use for Attach.Attached and TokenUpdated. Every call opens the
// same location, so a store opened after the previous one was closed sees
// everything that one wrote.
type AttachOpener func(t *testing.T, now func() time.Time) AttachStore

// RunAttaches runs the Attaches contract, and the part of the Store
// contract that concerns attaches: DeleteTerminal removes the terminal's
// attach. If the store is also a registry.Outbox, the suite checks that
// DeleteTerminal empties the terminal's outbox too and keeps its sequence
// counter. fresh returns an AttachOpener for a new, empty location; the
// suite closes every store it opens (a second Close must return nil).
func RunAttaches(t *testing.T, fresh func(t *testing.T) AttachOpener) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, f *attachFixture)
	}{
		{"PutGet", testAttachPutGet},
		{"Validation", testAttachValidation},
		{"NotFound", testAttachNotFound},
		{"Reattach", testReattach},
		{"MarkInvalid", testMarkInvalid},
		{"SetPushToken", testSetPushToken},
		{"Delete", testAttachDelete},
		{"DeleteTerminal", testDeleteTerminalCascade},
		{"Persistent", testAttachPersistent},
		{"ConcurrentMarkInvalid", testConcurrentMarkInvalid},
		{"Closed", testAttachClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &attachFixture{open: fresh(t), clock: &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 678901234, time.UTC)}}
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

type attachFixture struct {
	open  AttachOpener
	clock *clock
	s     AttachStore
}

func (f *attachFixture) reopen(t *testing.T) {
	t.Helper()
	if f.s != nil {
		if err := f.s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	f.s = f.open(t, f.clock.Now)
}

func (f *attachFixture) terminal(t *testing.T, id uint32) {
	t.Helper()
	if _, err := f.s.PutTerminal(context.Background(), registry.Terminal{ID: id, Password: "pw"}); err != nil {
		t.Fatalf("PutTerminal(%d): %v", id, err)
	}
}

func (f *attachFixture) put(t *testing.T, a registry.Attach) {
	t.Helper()
	if err := f.s.PutAttach(context.Background(), a); err != nil {
		t.Fatalf("PutAttach(%d): %v", a.Terminal, err)
	}
}

func (f *attachFixture) get(t *testing.T, terminal uint32) registry.Attach {
	t.Helper()
	a, err := f.s.GetAttach(context.Background(), terminal)
	if err != nil {
		t.Fatalf("GetAttach(%d): %v", terminal, err)
	}
	return a
}

func (f *attachFixture) mark(t *testing.T, terminal uint32, token, reason string, at time.Time) bool {
	t.Helper()
	changed, err := f.s.MarkAttachInvalid(context.Background(), terminal, token, reason, at)
	if err != nil {
		t.Fatalf("MarkAttachInvalid(%d): %v", terminal, err)
	}
	return changed
}

func (f *attachFixture) absent(t *testing.T, what string, terminal uint32) {
	t.Helper()
	if a, err := f.s.GetAttach(context.Background(), terminal); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("%s: GetAttach(%d) = %v, %v; want ErrNotFound", what, terminal, a, err)
	}
}

// testKey returns n bytes derived from seed.
func testKey(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i)
	}
	return b
}

// fullAttach is an attach with every caller-controlled field set.
func fullAttach(terminal uint32) registry.Attach {
	return registry.Attach{
		Terminal: terminal,
		Platform: registry.PlatformAPNs,
		URL:      "https://tokens.example.com/v1/apns?key=s3cr3t",
		Token:    strings.Repeat("ab01", 16),
		Topic:    "com.example.rewind",
		P256DH:   append([]byte{4}, testKey(64, 1)...),
		Auth:     testKey(16, 100),
		SigKey:   testKey(32, 200),
		Name:     "iPhone ✓",
	}
}

// sameAttach compares every field; times with Equal.
func sameAttach(t *testing.T, what string, got, want registry.Attach) {
	t.Helper()
	if got.Terminal != want.Terminal || got.Platform != want.Platform || got.URL != want.URL ||
		got.Token != want.Token || got.Topic != want.Topic || !bytes.Equal(got.P256DH, want.P256DH) ||
		!bytes.Equal(got.Auth, want.Auth) || !bytes.Equal(got.SigKey, want.SigKey) || got.Name != want.Name ||
		got.Legacy != want.Legacy || !got.Attached.Equal(want.Attached) || !got.TokenUpdated.Equal(want.TokenUpdated) ||
		got.Invalid != want.Invalid || got.InvalidReason != want.InvalidReason || !got.InvalidAt.Equal(want.InvalidAt) ||
		(got.P256DH == nil) != (want.P256DH == nil) || (got.Auth == nil) != (want.Auth == nil) || (got.SigKey == nil) != (want.SigKey == nil) {
		// %#v would redact; show what differs without printing secrets twice.
		t.Errorf("%s: attach differs:\n got  %+v url-match=%v token-match=%v\n want %+v",
			what, got, got.URL == want.URL, got.Token == want.Token, want)
	}
}

func testAttachPutGet(t *testing.T, f *attachFixture) {
	f.terminal(t, 262000101)
	now := f.clock.Now()
	in := fullAttach(262000101)
	bogus := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	in.Attached, in.TokenUpdated = bogus, bogus
	in.Invalid, in.InvalidReason, in.InvalidAt = true, "caller's", bogus
	f.put(t, in)
	in.P256DH[1], in.Auth[0], in.SigKey[0] = 0xFF, 0xFF, 0xFF // the store must have copied them

	want := fullAttach(262000101)
	want.Attached, want.TokenUpdated = now, now // caller's times and Invalid ignored
	got := f.get(t, 262000101)
	sameAttach(t, "after put", got, want)
	got.P256DH[1], got.SigKey[0] = 0xEE, 0xEE // a returned key is the caller's
	sameAttach(t, "after mutating a result", f.get(t, 262000101), want)

	// A minimal FCM attach, and a legacy one: keys stay nil, not empty.
	f.terminal(t, 262000102)
	minimal := registry.Attach{Terminal: 262000102, Platform: registry.PlatformFCM, URL: "https://t.example/x", Token: "tok:en"}
	f.put(t, minimal)
	minimal.Attached, minimal.TokenUpdated = now, now
	sameAttach(t, "minimal", f.get(t, 262000102), minimal)

	f.terminal(t, 262000103)
	legacy := registry.Attach{Terminal: 262000103, Platform: registry.PlatformFCM, URL: "https://t.example/y?k=1", Token: "fcm-token", Legacy: true}
	f.put(t, legacy)
	legacy.Attached, legacy.TokenUpdated = now, now
	sameAttach(t, "legacy", f.get(t, 262000103), legacy)

	// An ECDSA P-256 signature key.
	p256 := fullAttach(262000101)
	p256.SigKey = append([]byte{4}, testKey(64, 50)...)
	f.put(t, p256)
	p256.Attached, p256.TokenUpdated = now, now
	sameAttach(t, "P-256 signature key", f.get(t, 262000101), p256)

	// Printing an attach does not reveal its secrets.
	for _, s := range []string{fmt.Sprint(got), fmt.Sprintf("%+v", got), fmt.Sprintf("%#v", got)} {
		if strings.Contains(s, "s3cr3t") || strings.Contains(s, got.Token) {
			t.Errorf("formatted attach reveals URL query or token: %s", s)
		}
	}
}

func testAttachValidation(t *testing.T, f *attachFixture) {
	ctx := context.Background()
	f.terminal(t, 1)
	f.put(t, fullAttach(1))
	before := f.get(t, 1)
	with := func(change func(a *registry.Attach)) registry.Attach {
		a := fullAttach(1)
		change(&a)
		return a
	}
	for _, tc := range []struct {
		what  string
		a     registry.Attach
		valid bool
	}{
		{"terminal 0", with(func(a *registry.Attach) { a.Terminal = 0 }), false},
		{"platform empty", with(func(a *registry.Attach) { a.Platform = "" }), false},
		{"platform unknown", with(func(a *registry.Attach) { a.Platform = "webpush" }), false},
		{"platform upper case", with(func(a *registry.Attach) { a.Platform = "FCM" }), false},
		{"fcm", with(func(a *registry.Attach) { a.Platform = registry.PlatformFCM }), true},
		{"URL empty", with(func(a *registry.Attach) { a.URL = "" }), false},
		{"URL at limit", with(func(a *registry.Attach) {
			a.URL = "https://t.example/?" + strings.Repeat("q", registry.MaxAttachURLBytes-19)
		}), true},
		{"URL past limit", with(func(a *registry.Attach) {
			a.URL = "https://t.example/?" + strings.Repeat("q", registry.MaxAttachURLBytes-18)
		}), false},
		{"URL with space", with(func(a *registry.Attach) { a.URL = "https://t.example/ x" }), false},
		{"token empty", with(func(a *registry.Attach) { a.Token = "" }), false},
		{"token at limit", with(func(a *registry.Attach) { a.Token = strings.Repeat("t", registry.MaxPushTokenBytes) }), true},
		{"token past limit", with(func(a *registry.Attach) { a.Token = strings.Repeat("t", registry.MaxPushTokenBytes+1) }), false},
		{"token with space", with(func(a *registry.Attach) { a.Token = "to ken" }), false},
		{"token with newline", with(func(a *registry.Attach) { a.Token = "token\n" }), false},
		{"token not UTF-8", with(func(a *registry.Attach) { a.Token = "tok\xffen" }), false},
		{"topic empty", with(func(a *registry.Attach) { a.Topic = "" }), true},
		{"topic at limit", with(func(a *registry.Attach) { a.Topic = strings.Repeat("c", registry.MaxTopicBytes) }), true},
		{"topic past limit", with(func(a *registry.Attach) { a.Topic = strings.Repeat("c", registry.MaxTopicBytes+1) }), false},
		{"p256dh 64 bytes", with(func(a *registry.Attach) { a.P256DH = testKey(64, 4) }), false},
		{"p256dh 66 bytes", with(func(a *registry.Attach) { a.P256DH = testKey(66, 4) }), false},
		{"p256dh empty, not nil", with(func(a *registry.Attach) { a.P256DH = []byte{} }), false},
		{"auth 15 bytes", with(func(a *registry.Attach) { a.Auth = testKey(15, 1) }), false},
		{"auth 17 bytes", with(func(a *registry.Attach) { a.Auth = testKey(17, 1) }), false},
		{"p256dh without auth", with(func(a *registry.Attach) { a.Auth = nil }), false},
		{"auth without p256dh", with(func(a *registry.Attach) { a.P256DH = nil }), false},
		{"no encryption keys", with(func(a *registry.Attach) { a.P256DH, a.Auth = nil, nil }), true},
		{"sigkey nil", with(func(a *registry.Attach) { a.SigKey = nil }), true},
		{"sigkey 65 bytes", with(func(a *registry.Attach) { a.SigKey = testKey(65, 4) }), true},
		{"sigkey 31 bytes", with(func(a *registry.Attach) { a.SigKey = testKey(31, 1) }), false},
		{"sigkey 33 bytes", with(func(a *registry.Attach) { a.SigKey = testKey(33, 1) }), false},
		{"sigkey 64 bytes", with(func(a *registry.Attach) { a.SigKey = testKey(64, 1) }), false},
		{"sigkey 66 bytes", with(func(a *registry.Attach) { a.SigKey = testKey(66, 1) }), false},
		{"name 64 runes", with(func(a *registry.Attach) { a.Name = strings.Repeat("é", registry.MaxNameRunes) }), true},
		{"name 65 runes", with(func(a *registry.Attach) { a.Name = strings.Repeat("é", registry.MaxNameRunes+1) }), false},
		{"name with control char", with(func(a *registry.Attach) { a.Name = "bad\x07" }), false},
		{"legacy apns", with(func(a *registry.Attach) { a.Legacy, a.P256DH, a.Auth, a.SigKey = true, nil, nil, nil }), false},
		{"legacy with keys", with(func(a *registry.Attach) { a.Legacy, a.Platform = true, registry.PlatformFCM }), false},
	} {
		err := f.s.PutAttach(ctx, tc.a)
		switch {
		case tc.valid && err != nil:
			t.Errorf("%s: PutAttach: %v, want success", tc.what, err)
		case tc.valid:
			got := f.get(t, 1)
			if got.URL != tc.a.URL || got.Token != tc.a.Token || got.Topic != tc.a.Topic ||
				!bytes.Equal(got.P256DH, tc.a.P256DH) || !bytes.Equal(got.SigKey, tc.a.SigKey) || got.Name != tc.a.Name {
				t.Errorf("%s: stored attach differs from the one put", tc.what)
			}
			f.put(t, fullAttach(1))
			before = f.get(t, 1)
		case !errors.Is(err, registry.ErrInvalid):
			t.Errorf("%s: PutAttach: err = %v, want ErrInvalid", tc.what, err)
		default:
			if strings.Contains(err.Error(), "s3cr3t") || (len(tc.a.Token) > 4 && strings.Contains(err.Error(), tc.a.Token)) {
				t.Errorf("%s: error reveals a secret: %v", tc.what, err)
			}
			sameAttach(t, tc.what+": refused attach changed the stored one", f.get(t, 1), before)
		}
	}
}

func testAttachNotFound(t *testing.T, f *attachFixture) {
	ctx := context.Background()
	if err := f.s.PutAttach(ctx, fullAttach(7)); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("PutAttach(unregistered terminal): err = %v, want ErrNotFound", err)
	}
	f.absent(t, "after refused PutAttach", 7)
	f.terminal(t, 7)
	f.absent(t, "registered terminal without attach", 7)
	if err := f.s.DeleteAttach(ctx, 7); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("DeleteAttach(absent): err = %v, want ErrNotFound", err)
	}
	if err := f.s.SetPushToken(ctx, 7, "token", f.clock.Now()); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("SetPushToken(absent): err = %v, want ErrNotFound", err)
	}
	if changed := f.mark(t, 7, "token", "gone", f.clock.Now()); changed {
		t.Error("MarkAttachInvalid(absent) = true, want false")
	}
	f.absent(t, "after SetPushToken and MarkAttachInvalid on absent", 7)
	if err := f.s.DeleteAttach(ctx, 0); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("DeleteAttach(0): err = %v, want ErrInvalid", err)
	}
}

func testReattach(t *testing.T, f *attachFixture) {
	f.terminal(t, 262000101)
	f.put(t, fullAttach(262000101))
	f.clock.Advance(time.Minute)
	if !f.mark(t, 262000101, fullAttach(262000101).Token, "Unregistered", f.clock.Now()) {
		t.Fatal("MarkAttachInvalid = false, want true")
	}
	f.clock.Advance(time.Minute)
	// A re-attach with other keys and no signature key replaces everything.
	again := fullAttach(262000101)
	again.P256DH = append([]byte{4}, testKey(64, 77)...)
	again.Auth = testKey(16, 77)
	again.SigKey = nil
	again.Name = ""
	f.put(t, again)
	again.Attached, again.TokenUpdated = f.clock.Now(), f.clock.Now()
	sameAttach(t, "after re-attach with the same token", f.get(t, 262000101), again)
}

func testMarkInvalid(t *testing.T, f *attachFixture) {
	f.terminal(t, 262000101)
	old := fullAttach(262000101)
	f.put(t, old)
	renewed := old
	renewed.Token = "new-token-after-reinstall"
	f.clock.Advance(time.Second)
	f.put(t, renewed)
	renewed.Attached, renewed.TokenUpdated = f.clock.Now(), f.clock.Now()

	at := f.clock.Now().Add(time.Second)
	if f.mark(t, 262000101, old.Token, "Unregistered", at) {
		t.Error("MarkAttachInvalid with the replaced token = true, want false")
	}
	sameAttach(t, "after a late answer about the old token", f.get(t, 262000101), renewed)

	if !f.mark(t, 262000101, renewed.Token, "BadDeviceToken", at) {
		t.Error("MarkAttachInvalid with the current token = false, want true")
	}
	want := renewed
	want.Invalid, want.InvalidReason, want.InvalidAt = true, "BadDeviceToken", at
	sameAttach(t, "after invalidation", f.get(t, 262000101), want)

	if f.mark(t, 262000101, renewed.Token, "Unregistered", at.Add(time.Hour)) {
		t.Error("second MarkAttachInvalid = true, want false")
	}
	sameAttach(t, "after second invalidation (first reason and time kept)", f.get(t, 262000101), want)

	// A long reason is truncated, on a rune boundary, not refused.
	f.terminal(t, 262000102)
	f.put(t, fullAttach(262000102))
	long := strings.Repeat("é", registry.MaxInvalidReasonBytes) // 2 bytes each
	if !f.mark(t, 262000102, fullAttach(262000102).Token, long, at) {
		t.Fatal("MarkAttachInvalid with a long reason = false, want true")
	}
	got := f.get(t, 262000102).InvalidReason
	if len(got) > registry.MaxInvalidReasonBytes || !strings.HasPrefix(long, got) || len(got) < registry.MaxInvalidReasonBytes-1 {
		t.Errorf("long reason stored as %d bytes (prefix: %v), want a prefix of at most %d",
			len(got), strings.HasPrefix(long, got), registry.MaxInvalidReasonBytes)
	}
}

func testSetPushToken(t *testing.T, f *attachFixture) {
	ctx := context.Background()
	f.terminal(t, 262000101)
	a := fullAttach(262000101)
	f.put(t, a)
	a.Attached = f.clock.Now()
	if !f.mark(t, 262000101, a.Token, "Unregistered", f.clock.Now()) {
		t.Fatal("MarkAttachInvalid = false, want true")
	}
	at := f.clock.Now().Add(90 * time.Second)
	if err := f.s.SetPushToken(ctx, 262000101, "rotated-token", at); err != nil {
		t.Fatalf("SetPushToken: %v", err)
	}
	want := a
	want.Token, want.TokenUpdated = "rotated-token", at
	sameAttach(t, "after SetPushToken (only token changed, Invalid cleared)", f.get(t, 262000101), want)

	if f.mark(t, 262000101, a.Token, "Unregistered", at) {
		t.Error("MarkAttachInvalid with the token SetPushToken replaced = true, want false")
	}
	for _, bad := range []string{"", "with space", strings.Repeat("t", registry.MaxPushTokenBytes+1)} {
		if err := f.s.SetPushToken(ctx, 262000101, bad, at); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("SetPushToken(%d-byte bad token): err = %v, want ErrInvalid", len(bad), err)
		}
	}
	if err := f.s.SetPushToken(ctx, 0, "token", at); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("SetPushToken(terminal 0): err = %v, want ErrInvalid", err)
	}
	sameAttach(t, "after refused SetPushToken", f.get(t, 262000101), want)
}

func testAttachDelete(t *testing.T, f *attachFixture) {
	ctx := context.Background()
	f.terminal(t, 262000101)
	f.terminal(t, 262000102)
	f.put(t, fullAttach(262000101))
	f.put(t, fullAttach(262000102))
	if err := f.s.DeleteAttach(ctx, 262000101); err != nil {
		t.Fatalf("DeleteAttach: %v", err)
	}
	f.absent(t, "after DeleteAttach", 262000101)
	if err := f.s.DeleteAttach(ctx, 262000101); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("second DeleteAttach: err = %v, want ErrNotFound", err)
	}
	if _, err := f.s.GetTerminal(ctx, 262000101); err != nil {
		t.Errorf("DeleteAttach removed the terminal: %v", err)
	}
	f.get(t, 262000102) // the other attach stays
}

// testDeleteTerminalCascade checks that deleting a terminal deletes its
// attach and, for an Outbox, its entries (more than one internal chunk),
// while the sequence counter goes on.
func testDeleteTerminalCascade(t *testing.T, f *attachFixture) {
	ctx := context.Background()
	f.terminal(t, 262000101)
	f.terminal(t, 262000102)
	f.put(t, fullAttach(262000101))
	f.put(t, fullAttach(262000102))
	outbox, isOutbox := f.s.(registry.Outbox)
	const many = 1100
	if isOutbox {
		for i := range many {
			if _, err := outbox.Append(ctx, 262000101, fmt.Appendf(nil, "m%d", i), time.Hour); err != nil {
				t.Fatalf("Append: %v", err)
			}
		}
		if _, err := outbox.Append(ctx, 262000102, []byte("other"), time.Hour); err != nil {
			t.Fatalf("Append: %v", err)
		}
	}
	if err := f.s.DeleteTerminal(ctx, 262000101); err != nil {
		t.Fatalf("DeleteTerminal: %v", err)
	}
	f.absent(t, "after DeleteTerminal", 262000101)
	f.get(t, 262000102)
	f.terminal(t, 262000101)
	f.absent(t, "after re-creating the terminal", 262000101)
	if !isOutbox {
		return
	}
	if es, err := outbox.Pending(ctx, 262000101, 0, 10); err != nil || len(es) != 0 {
		t.Errorf("Pending after DeleteTerminal = %d entries, %v; want none", len(es), err)
	}
	if n, _, err := outbox.Depth(ctx, 262000102); err != nil || n != 1 {
		t.Errorf("other terminal's Depth after DeleteTerminal = %d, %v; want 1", n, err)
	}
	if e, err := outbox.Append(ctx, 262000101, []byte("after"), time.Hour); err != nil || e.Seq != many+1 {
		t.Errorf("Append after re-creating the terminal: seq %d, %v; want %d (numbering continues)", e.Seq, err, many+1)
	}
	if expired, err := outbox.Expire(ctx, f.clock.Now().Add(2*time.Hour)); err != nil || len(expired) != 2 {
		t.Errorf("Expire after DeleteTerminal = %d entries, %v; want 2 (no leftovers of the deleted ones)", len(expired), err)
	}
}

func testAttachPersistent(t *testing.T, f *attachFixture) {
	f.terminal(t, 262000101)
	f.terminal(t, 262000102)
	f.terminal(t, 262000103)
	f.put(t, fullAttach(262000101))
	f.put(t, fullAttach(262000102))
	f.put(t, fullAttach(262000103))
	f.mark(t, 262000101, fullAttach(262000101).Token, "Unregistered", f.clock.Now().Add(time.Second))
	if err := f.s.DeleteAttach(context.Background(), 262000102); err != nil {
		t.Fatalf("DeleteAttach: %v", err)
	}
	if err := f.s.DeleteTerminal(context.Background(), 262000103); err != nil {
		t.Fatalf("DeleteTerminal: %v", err)
	}
	before := f.get(t, 262000101)
	f.reopen(t)
	sameAttach(t, "after reopen", f.get(t, 262000101), before)
	f.absent(t, "deleted attach after reopen", 262000102)
	f.absent(t, "attach of deleted terminal after reopen", 262000103)
}

// testConcurrentMarkInvalid has many goroutines report the same token gone
// while others re-attach: exactly one report per token changes anything.
func testConcurrentMarkInvalid(t *testing.T, f *attachFixture) {
	f.terminal(t, 262000101)
	a := fullAttach(262000101)
	f.put(t, a)
	var changed atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			ok, err := f.s.MarkAttachInvalid(context.Background(), 262000101, a.Token, "Unregistered", f.clock.Now())
			if err != nil {
				t.Errorf("MarkAttachInvalid: %v", err)
			}
			if ok {
				changed.Add(1)
			}
		})
	}
	wg.Wait()
	if n := changed.Load(); n != 1 {
		t.Errorf("%d concurrent MarkAttachInvalid reported a change, want 1", n)
	}
	if got := f.get(t, 262000101); !got.Invalid {
		t.Error("attach not invalid after concurrent MarkAttachInvalid")
	}
}

func testAttachClosed(t *testing.T, f *attachFixture) {
	ctx := context.Background()
	f.terminal(t, 9)
	f.put(t, fullAttach(9))
	if err := f.s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := f.s.GetAttach(ctx, 9); !errors.Is(err, registry.ErrClosed) {
		t.Errorf("GetAttach after Close: err = %v, want ErrClosed", err)
	}
	if err := f.s.PutAttach(ctx, fullAttach(9)); !errors.Is(err, registry.ErrClosed) {
		t.Errorf("PutAttach after Close: err = %v, want ErrClosed", err)
	}
	if _, err := f.s.MarkAttachInvalid(ctx, 9, "t", "r", time.Now()); !errors.Is(err, registry.ErrClosed) {
		t.Errorf("MarkAttachInvalid after Close: err = %v, want ErrClosed", err)
	}
	if err := f.s.DeleteAttach(ctx, 9); !errors.Is(err, registry.ErrClosed) {
		t.Errorf("DeleteAttach after Close: err = %v, want ErrClosed", err)
	}
	if err := f.s.SetPushToken(ctx, 9, "t", time.Now()); !errors.Is(err, registry.ErrClosed) {
		t.Errorf("SetPushToken after Close: err = %v, want ErrClosed", err)
	}
}
