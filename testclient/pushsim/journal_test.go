package pushsim

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func receive[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-testContext(t).Done():
		t.Fatal("nothing received")
		panic("unreachable")
	}
}

func TestOnPushDoesNotHoldUpTheAnswer(t *testing.T) {
	f := startFCM(t)
	bearer := f.Issue("p")
	device := f.RegisterDevice("p")
	handled := make(chan Push, 3)
	release := make(chan struct{})
	f.OnPush(device, func(p Push) {
		handled <- p
		<-release // a terminal that takes its time to reconnect
	})

	// Both pushes are answered while the handler is still busy with the first one.
	for _, ty := range []string{"first", "second"} {
		if got := fcmSend(t, f, "p", bearer, fcmBody(device, map[string]string{"type": ty})); got.status != 200 {
			t.Fatalf("answer %d %s", got.status, got.body)
		}
	}
	if p := receive(t, handled); p.Data["type"] != "first" {
		t.Errorf("handled %v first", p.Data)
	}
	select {
	case p := <-handled:
		t.Fatalf("handler ran for %v while busy with the first push", p.Data)
	default:
	}
	close(release)
	if p := receive(t, handled); p.Data["type"] != "second" {
		t.Errorf("handled %v second", p.Data)
	}
}

func TestOnPushPerDevice(t *testing.T) {
	a := startAPNs(t)
	bearer := a.Issue("TEAM")
	one, two, silent := a.RegisterDevice(bundle), a.RegisterDevice(bundle), a.RegisterDevice(bundle)
	got := make(chan string, 4)
	for _, d := range []string{one, two, silent} {
		a.OnPush(d, func(p Push) { got <- p.DeviceToken })
	}
	a.OnPush(silent, nil) // removed

	for _, d := range []string{silent, two, one} {
		if ans := apnsSend(t, a, d, apnsHeaders(bearer), `{"aps":{}}`); ans.status != 200 {
			t.Fatalf("answer %d %s", ans.status, ans.body)
		}
	}
	seen := map[string]bool{receive(t, got): true, receive(t, got): true}
	if !seen[one] || !seen[two] {
		t.Errorf("handled %v, want %s and %s", seen, one, two)
	}
	if len(a.Pushes()) != 3 {
		t.Errorf("%d pushes recorded, want 3 (a push without handler is still recorded)", len(a.Pushes()))
	}
}

func TestNextWaitsAndEnds(t *testing.T) {
	f := NewFCM()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := f.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Next with cancelled ctx: %v", err)
	}

	bearer := f.Issue("p")
	device := f.RegisterDevice("p")
	next := make(chan Push)
	go func() {
		p, err := f.Next(testContext(t))
		if err != nil {
			t.Error(err)
		}
		next <- p
	}()
	fcmSend(t, f, "p", bearer, fcmBody(device, nil))
	if p := receive(t, next); p.DeviceToken != device {
		t.Errorf("Next = %+v", p)
	}

	errc := make(chan error)
	go func() {
		_, err := f.Next(testContext(t))
		errc <- err
	}()
	f.Close()
	if err := receive(t, errc); !errors.Is(err, ErrClosed) {
		t.Errorf("Next after Close: %v, want ErrClosed", err)
	}
}

func TestProvidersShareOneJournal(t *testing.T) {
	p := New()
	defer p.Close()
	fcmDevice := p.RegisterDevice(PlatformFCM, "proj")
	apnsDevice := p.RegisterDevice(PlatformAPNs, bundle)
	handled := make(chan Push, 2)
	p.OnPush(fcmDevice, func(x Push) { handled <- x })
	p.OnPush(apnsDevice, func(x Push) { handled <- x })

	if got := fcmSend(t, p.FCM, "proj", p.FCM.Issue("proj"), fcmBody(fcmDevice, nil)); got.status != 200 {
		t.Fatalf("FCM answer %d %s", got.status, got.body)
	}
	if got := apnsSend(t, p.APNs, apnsDevice, apnsHeaders(p.APNs.Issue("TEAM")), `{"aps":{}}`); got.status != 200 {
		t.Fatalf("APNs answer %d %s", got.status, got.body)
	}
	ctx := testContext(t)
	first, _ := p.Next(ctx)
	second, _ := p.Next(ctx)
	if first.Platform != PlatformFCM || second.Platform != PlatformAPNs {
		t.Errorf("Next gave %s then %s", first.Platform, second.Platform)
	}
	platforms := map[Platform]bool{receive(t, handled).Platform: true, receive(t, handled).Platform: true}
	if !platforms[PlatformFCM] || !platforms[PlatformAPNs] || len(p.Pushes()) != 2 {
		t.Errorf("handled %v, %d pushes", platforms, len(p.Pushes()))
	}

	if !p.Unregister(apnsDevice) || !p.Unregister(fcmDevice) || p.Unregister("nobody") {
		t.Error("Unregister reports wrongly")
	}
	if got := apnsSend(t, p.APNs, apnsDevice, apnsHeaders(p.APNs.Issue("TEAM")), `{"aps":{}}`); got.status != 410 {
		t.Errorf("unregistered APNs device: answer %d", got.status)
	}

	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "webpush") {
			t.Errorf("RegisterDevice(webpush) did not panic naming it: %v", r)
		}
	}()
	p.RegisterDevice("webpush", "x")
}

func TestCloseWaitsForRunningHandlers(t *testing.T) {
	f := NewFCM()
	bearer := f.Issue("p")
	device := f.RegisterDevice("p")
	started, finished := make(chan struct{}), make(chan struct{})
	release := make(chan struct{})
	f.OnPush(device, func(Push) {
		close(started)
		<-release
		close(finished)
	})
	fcmSend(t, f, "p", bearer, fcmBody(device, nil))
	receive(t, started)

	closed := make(chan struct{})
	go func() {
		f.Close()
		close(closed)
	}()
	close(release)
	receive(t, closed)
	select {
	case <-finished:
	default:
		t.Error("Close returned before the running handler")
	}
}

// Settle returns once every recorded push has been handled, where Close would drop what is
// still queued behind a slow handler.
func TestSettleHandsEveryPushToItsHandler(t *testing.T) {
	j := newJournal()
	defer j.close()
	var mu sync.Mutex
	var got []string
	j.onPush("device", func(p Push) {
		time.Sleep(time.Millisecond) // slower than the pushes arrive: they queue
		mu.Lock()
		got = append(got, p.Data["n"])
		mu.Unlock()
	})
	for i := range 20 {
		j.record(Push{DeviceToken: "device", Data: map[string]string{"n": strconv.Itoa(i)}})
	}
	j.settle()
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 20 || got[0] != "0" || got[19] != "19" {
		t.Fatalf("handled %v, want 0…19 in order", got)
	}
}
