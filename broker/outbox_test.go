package broker

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rewind-broker/rewind/registry"
	"github.com/rewind-broker/rewind/tokensvc"
)

func TestOutboxExpiry(t *testing.T) {
	w := newPushWorld(t, func(c *PushConfig) { c.OutboxTTL = time.Minute })
	w.addTerminal(bob, "b")
	w.publishText(t, bob, 2620009, "stale soon")
	w.publishText(t, bob, 2620009, "stale too")
	if n := w.srv.expireOnce(time.Now().Add(59 * time.Second)); n != 0 {
		t.Fatalf("%d expired before their TTL", n)
	}
	if n := w.srv.expireOnce(time.Now().Add(61 * time.Second)); n != 2 {
		t.Fatalf("%d expired after the TTL, want 2", n)
	}
	if n, _, _ := w.store.Depth(context.Background(), bob); n != 0 {
		t.Fatalf("depth %d after expiry", n)
	}
	_, body := w.adminDo("GET", "/metrics", testAdminKey, "")
	if !strings.Contains(body, "rewind_outbox_expired_total 2") {
		t.Fatal("expiries not counted")
	}
	if !strings.Contains(w.logs.String(), "outbox entry expired unacknowledged") {
		t.Fatal("expiry not logged")
	}
}

// TestTokenCachePersists: a broker restarted on the same registry does not refetch a credential
// it already holds.
func TestTokenCachePersists(t *testing.T) {
	w := newPushWorld(t)
	cache := TokenCache{Blobs: w.store}
	url := w.tokenURL("fcm")
	c1, err := tokensvc.NewClient(tokensvc.ClientConfig{Policy: tokensvc.URLPolicy{AllowInsecure: true}, Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	first, err := c1.Get(context.Background(), url)
	c1.Close()
	if err != nil {
		t.Fatal(err)
	}
	before := w.vendorReq.Load()
	c2, err := tokensvc.NewClient(tokensvc.ClientConfig{Policy: tokensvc.URLPolicy{AllowInsecure: true}, Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	second, err := c2.Get(context.Background(), url)
	if err != nil || second.Token != first.Token {
		t.Fatalf("second client: %v %v", second, err)
	}
	if w.vendorReq.Load() != before {
		t.Fatal("the restarted client refetched a cached credential")
	}
	// The URL's secret is not a database key.
	if _, _, err := w.store.GetBlob(context.Background(), tokenCachePrefix+url); err == nil {
		t.Fatal("credential stored under the clear URL")
	}
}

// TestDeliveryWindowAfterOldAcks: sequence numbers far above the window (a terminal that has
// received and acknowledged many datagrams before) do not stall new deliveries on a fresh
// session that has not acknowledged anything yet.
func TestDeliveryWindowAfterOldAcks(t *testing.T) {
	w := newPushWorld(t, func(c *PushConfig) { c.DeliveryWindow = 4 })
	w.addTerminal(bob, "b")
	for i := 0; i < 10; i++ {
		w.publishText(t, bob, 2620009, "old")
	}
	if _, err := w.store.Ack(context.Background(), bob, 10); err != nil {
		t.Fatal(err)
	}
	w.publishText(t, bob, 2620009, "eleven") // pending: 11
	b := w.dial(bob, "b")                    // no AutoAck: nothing is acknowledged on this session
	if _, d, err := b.RecvText(ctx(t)); err != nil || d.Number != 11 {
		t.Fatalf("replay: %v %v", d, err)
	}
	for i := 12; i <= 14; i++ { // live deliveries within the window of 4 unacknowledged
		w.publishText(t, bob, 2620009, "new")
		if _, d, err := b.RecvText(ctx(t)); err != nil || d.Number != uint32(i) {
			t.Fatalf("live delivery %d: %v %v", i, d, err)
		}
	}
	// The window is full (11..14 unacknowledged): the next one waits for an ack.
	w.publishText(t, bob, 2620009, "fifteen")
	if err := b.KeepAliveNow(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if d, ok := b.TryRecv(); ok {
		t.Fatalf("delivered beyond the window: %v", d)
	}
	if err := b.Ack(ctx(t), 14); err != nil {
		t.Fatal(err)
	}
	if _, d, err := b.RecvText(ctx(t)); err != nil || d.Number != 15 {
		t.Fatalf("after the ack: %v %v", d, err)
	}
}

// TestWakesResumeAfterRestart: datagrams stored while no broker could push (here: appended
// behind its back, as a crash between store and push would leave them) are pushed by the next
// broker on the same store when it starts.
func TestWakesResumeAfterRestart(t *testing.T) {
	w := newPushWorld(t)
	device := w.attachDirect(t, bob, "fcm")
	w.attachDirect(t, bob2, "fcm")
	if _, err := w.store.MarkAttachInvalid(context.Background(), bob2, mustAttach(t, w, bob2).Token, "gone", time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, id := range []uint32{bob, bob2} {
		if _, err := w.store.Append(context.Background(), id, []byte("REWIND01\x10\x0a\x00\x00\x00\x00\x00\x00\x00\x00"), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	cfg := w.srv.pushCfg
	restarted, err := New(Config{Clock: w.clock, Logger: w.srv.log, Push: &cfg}, w.store)
	if err != nil {
		t.Fatal(err)
	}
	defer restarted.Shutdown(context.Background())
	p, err := w.providers.Next(ctx(t))
	if err != nil || p.DeviceToken != device {
		t.Fatalf("no resumed wake for the owed terminal: %v %v", p, err)
	}
	restarted.Shutdown(context.Background()) // waits for the resume and the wake workers
	if n := len(w.providers.Pushes()); n != 1 {
		t.Fatalf("%d pushes: the terminal with an invalid attach must not be pushed", n)
	}
}

func mustAttach(t *testing.T, w *pushWorld, id uint32) registry.Attach {
	t.Helper()
	a, err := w.store.GetAttach(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestBacklogDrainsThroughWindow: a backlog five windows deep reaches a terminal that
// acknowledges one datagram at a time (each ack must bring the next one, as the pump stops on a
// full window), in order, and every acknowledged entry is deleted; a live text follows.
func TestBacklogDrainsThroughWindow(t *testing.T) {
	w := newPushWorld(t, func(c *PushConfig) { c.DeliveryWindow = 4 })
	w.addTerminal(bob, "b")
	const n = 20
	for range n {
		w.publishText(t, bob, 2620009, "queued")
	}
	b := w.dial(bob, "b") // no AutoAck
	for i := 1; i <= n; i++ {
		if _, d, err := b.RecvText(ctx(t)); err != nil || d.Number != uint32(i) {
			t.Fatalf("datagram %d: %v %v", i, d, err)
		}
		if err := b.Ack(ctx(t), uint32(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.KeepAliveNow(ctx(t)); err != nil { // the last ack has been handled
		t.Fatal(err)
	}
	if count, _, err := w.store.Depth(context.Background(), bob); err != nil || count != 0 {
		t.Fatalf("after acknowledging everything: %d stored, %v", count, err)
	}
	w.publishText(t, bob, 2620009, "live")
	if _, d, err := b.RecvText(ctx(t)); err != nil || d.Number != n+1 {
		t.Fatalf("live delivery: %v %v", d, err)
	}
}

// TestStoreContext checks storeContext against what context.WithTimeout would do: not done
// before the deadline, DeadlineExceeded from it on (whether or not Done was called first),
// cancelled by release, and a timer only once Done is called.
func TestStoreContext(t *testing.T) {
	ctx := newStoreContext(time.Hour)
	if err := ctx.Err(); err != nil {
		t.Errorf("fresh: Err = %v", err)
	}
	if d, ok := ctx.Deadline(); !ok || time.Until(d) < 59*time.Minute {
		t.Errorf("Deadline = %v, %v", d, ok)
	}
	if ctx.started.Load() {
		t.Error("timer started without Done")
	}
	ctx.release()
	if err := ctx.Err(); err != context.Canceled {
		t.Errorf("released before use: Err = %v, want Canceled", err)
	}
	select {
	case <-ctx.Done():
	default:
		t.Error("released before use: Done not closed")
	}

	// Past the deadline without Done: the error still says so.
	ctx = newStoreContext(time.Millisecond)
	time.Sleep(5 * time.Millisecond)
	if err := ctx.Err(); err != context.DeadlineExceeded {
		t.Errorf("past the deadline, Done never called: Err = %v", err)
	}
	ctx.release()

	// Done, then the deadline: closed at (not before) the deadline.
	ctx = newStoreContext(30 * time.Millisecond)
	start := time.Now()
	done := ctx.Done()
	if !ctx.started.Load() {
		t.Error("Done did not start the timer")
	}
	select {
	case <-done:
		t.Fatal("Done closed at once")
	default:
	}
	<-done
	if e := time.Since(start); e < 25*time.Millisecond {
		t.Errorf("Done closed after %v, want 30 ms", e)
	}
	if err := ctx.Err(); err != context.DeadlineExceeded {
		t.Errorf("after the deadline: Err = %v", err)
	}
	ctx.release()
	if err := ctx.Err(); err != context.DeadlineExceeded {
		t.Errorf("release after the deadline: Err = %v, want DeadlineExceeded kept", err)
	}

	// Done, then release before the deadline: cancelled.
	ctx = newStoreContext(time.Hour)
	done = ctx.Done()
	ctx.release()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("release did not close Done")
	}
	if err := ctx.Err(); err != context.Canceled {
		t.Errorf("released: Err = %v, want Canceled", err)
	}

	// A real store call with it.
	store, err := registry.OpenBadger(registry.BadgerConfig{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx = newStoreContext(DefaultStoreTimeout)
	if _, err := store.Append(ctx, 262000001, []byte{1}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if ctx.started.Load() {
		t.Error("an append with room in the queue started a timer")
	}
	ctx.release()
	expired := newStoreContext(time.Nanosecond)
	time.Sleep(time.Millisecond)
	if _, err := store.Append(expired, 262000001, []byte{2}, time.Hour); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("append with an expired context: %v", err)
	}
	expired.release()
}
