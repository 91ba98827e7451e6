package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rewind-broker/rewind/protocol"
	"github.com/rewind-broker/rewind/registry"
	"github.com/rewind-broker/rewind/testclient"
	"github.com/rewind-broker/rewind/testclient/pushsim"
	"github.com/rewind-broker/rewind/tokensvc"
)

// attachDirect registers terminal id with an attach for platform, without a session.
func (w *pushWorld) attachDirect(t *testing.T, id uint32, platform string) string {
	t.Helper()
	w.addTerminal(id, "pw")
	target, pf := fcmProject, pushsim.PlatformFCM
	if platform == "apns" {
		target, pf = apnsTopic, pushsim.PlatformAPNs
	}
	device := w.providers.RegisterDevice(pf, target)
	a := registry.Attach{Terminal: id, Platform: platform, URL: w.tokenURL(platform), Token: device}
	if platform == "apns" {
		a.Topic = apnsTopic
	}
	if err := w.store.PutAttach(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	return device
}

func TestConcurrentWakesShareOneTokenFetch(t *testing.T) {
	w := newPushWorld(t)
	const n = 1000
	for i := 0; i < n; i++ {
		w.attachDirect(t, uint32(262100000+i), "fcm")
	}
	var wg sync.WaitGroup
	outcomes := make(chan string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(id uint32) {
			defer wg.Done()
			res := w.publishText(t, id, 2620009, "wake up")
			outcomes <- res["push"].(string)
		}(uint32(262100000 + i))
	}
	wg.Wait()
	close(outcomes)
	sent := 0
	for o := range outcomes {
		if o == WakeSent {
			sent++
		} else {
			t.Errorf("outcome %q", o)
		}
	}
	if got := w.vendorReq.Load(); got != 1 {
		t.Fatalf("%d wakes caused %d token-service requests, want 1", n, got)
	}
	if sent != n || len(w.providers.Pushes()) != n {
		t.Fatalf("sent %d, pushes %d, want %d", sent, len(w.providers.Pushes()), n)
	}
}

func TestProviderAuthRefetchesOnce(t *testing.T) {
	for _, platform := range []string{"fcm", "apns"} {
		t.Run(platform, func(t *testing.T) {
			w := newPushWorld(t)
			w.attachDirect(t, bob, platform)
			// The broker's cache holds the vendor's current credential...
			if _, err := w.tokens.Get(context.Background(), w.tokenURL(platform)); err != nil {
				t.Fatal(err)
			}
			// ...which the provider then refuses.
			if platform == "fcm" {
				w.providers.FCM.Revoke(w.fcmToken)
				w.mu.Lock()
				w.fcmToken = w.providers.FCM.Issue(fcmProject)
				w.mu.Unlock()
			} else {
				w.providers.APNs.FailNext(1, pushsim.APNsFault(403, "ExpiredProviderToken"))
			}
			res := w.publishText(t, bob, 2620009, "after rotation")
			if res["push"] != WakeSent {
				t.Fatalf("outcome %v", res)
			}
			if got := w.vendorReq.Load(); got != 2 {
				t.Fatalf("token-service requests %d, want 2 (one fetch, one refetch)", got)
			}
			reqs := w.providers.FCM.Requests()
			if platform == "apns" {
				reqs = w.providers.APNs.Requests()
			}
			if reqs != 2 || len(w.providers.Pushes()) != 1 {
				t.Fatalf("provider requests %d, pushes %d; want 2 and 1", reqs, len(w.providers.Pushes()))
			}
		})
	}
}

func TestTokenServiceDownNothingLost(t *testing.T) {
	w := newPushWorld(t)
	w.addTerminal(bob, "b")
	w.down.Store(true)
	w.phoneGoneIdle(t, bob, "b", "fcm", nil)
	res := w.publishText(t, bob, 2620009, "first")
	if res["push"] != WakeRetrying {
		t.Fatalf("outcome with the token service down: %v", res)
	}
	// More texts while it is down: stored, no new token request until the backoff passes.
	for i := 0; i < 3; i++ {
		if res := w.publishText(t, bob, 2620009, fmt.Sprintf("more %d", i)); res["push"] != WakeAlreadyPending {
			t.Fatalf("outcome %v", res)
		}
	}
	if got := w.vendorReq.Load(); got != 1 {
		t.Fatalf("token requests while backing off: %d, want 1", got)
	}
	w.down.Store(false)
	// Time passes: the waker retries after its backoff; the push goes out.
	for i := 0; i < 20 && len(w.providers.Pushes()) == 0; i++ {
		w.clock.Advance(time.Second)
		waitCtx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		w.providers.Next(waitCtx)
		cancel()
	}
	if len(w.providers.Pushes()) != 1 {
		t.Fatalf("pushes after recovery: %d", len(w.providers.Pushes()))
	}
	if got := w.vendorReq.Load(); got < 2 || got > 4 {
		t.Fatalf("token requests %d: want a few, spaced by backoff", got)
	}
	b := w.dial(bob, "b")
	for _, want := range []string{"first", "more 0", "more 1", "more 2"} {
		if m, _, err := b.RecvText(ctx(t)); err != nil || m.Text != want {
			t.Fatalf("got %q %v, want %q", m.Text, err, want)
		}
	}
}

func TestAttachURLPolicy(t *testing.T) {
	w := newPushWorld(t, func(c *PushConfig) { c.Policy = tokensvc.URLPolicy{AllowedHosts: []string{"vendor.example"}} })
	w.addTerminal(bob, "b")
	b := w.dial(bob, "b")
	for _, url := range []string{
		"http://127.0.0.1/token", "https://10.1.2.3/token", "file:///etc/passwd",
		"https://user:pw@vendor.example/token", "http://vendor.example/token", "https://evil.example/token",
	} {
		err := b.Attach(ctx(t), testclient.AttachOptions{URL: url, Token: "device-token", Platform: "fcm"})
		var be protocol.BrokerError
		if !errors.As(err, &be) || be.Code != protocol.CodeForbidden {
			t.Errorf("%s: want BROKER_ERROR 403, got %v", url, err)
		}
	}
	if _, err := w.store.GetAttach(context.Background(), bob); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("a refused attach changed the registry: %v", err)
	}
	if err := b.Attach(ctx(t), testclient.AttachOptions{URL: "https://vendor.example/token?code=1", Token: "device-token", Platform: "fcm"}); err != nil {
		t.Fatalf("allowed URL: %v", err)
	}
	// Malformed attaches: 400, nothing changes.
	err := b.Attach(ctx(t), testclient.AttachOptions{URL: "https://vendor.example/t", Token: "tok", Platform: "apns"}) // no topic
	var be protocol.BrokerError
	if !errors.As(err, &be) || be.Code != protocol.CodeMalformed {
		t.Fatalf("apns without topic: %v", err)
	}
	if a, _ := w.store.GetAttach(context.Background(), bob); a.Platform != "fcm" {
		t.Fatalf("attach changed by a refused one: %+v", a)
	}
}

func TestProviderErrorMatrix(t *testing.T) {
	apns410 := func(at time.Time) pushsim.Fault {
		return pushsim.Fault{Status: 410, Body: fmt.Sprintf(`{"reason":"Unregistered","timestamp":%d}`, at.UnixMilli())}
	}
	cases := []struct {
		name, platform string
		fault          pushsim.Fault
		outcome        string
		invalid        bool
	}{
		{"fcm unregistered", "fcm", pushsim.FCMFault(404, "NOT_FOUND", "UNREGISTERED", "gone"), WakeTokenInvalid, true},
		{"fcm sender mismatch", "fcm", pushsim.FCMFault(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH", "mismatch"), WakeTokenInvalid, true},
		{"fcm 429", "fcm", pushsim.FCMFault(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "slow down").WithHeader("Retry-After", "7"), WakeRetrying, false},
		{"fcm 503", "fcm", pushsim.FCMFault(503, "UNAVAILABLE", "UNAVAILABLE", "later"), WakeRetrying, false},
		{"fcm 400", "fcm", pushsim.FCMFault(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "bad"), WakeRejected, false},
		{"fcm html 502", "fcm", pushsim.Fault{Status: 502, Body: "<html>bad gateway</html>"}, WakeRetrying, false},
		{"apns 410 after attach", "apns", apns410(time.Now().Add(time.Hour)), WakeTokenInvalid, true},
		{"apns 410 before attach", "apns", apns410(time.Now().Add(-time.Hour)), WakeRejected, false},
		{"apns bad device token", "apns", pushsim.APNsFault(400, "BadDeviceToken"), WakeTokenInvalid, true},
		{"apns 429", "apns", pushsim.APNsFault(429, "TooManyRequests"), WakeRetrying, false},
		{"apns html 502", "apns", pushsim.Fault{Status: 502, Body: "<html>bad gateway</html>"}, WakeRetrying, false},
		{"apns 400 bad topic", "apns", pushsim.APNsFault(400, "BadTopic"), WakeRejected, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newPushWorld(t)
			device := w.attachDirect(t, bob, c.platform)
			if c.platform == "fcm" {
				w.providers.FCM.FailNext(5, c.fault)
			} else {
				w.providers.APNs.FailNext(5, c.fault)
			}
			res := w.publishText(t, bob, 2620009, "hello")
			if res["push"] != c.outcome {
				t.Fatalf("outcome %v, want %s", res["push"], c.outcome)
			}
			a, err := w.store.GetAttach(context.Background(), bob)
			if err != nil || a.Invalid != c.invalid {
				t.Fatalf("attach invalid=%v (%v), want %v", a.Invalid, err, c.invalid)
			}
			if c.invalid {
				if res := w.publishText(t, bob, 2620009, "again"); res["push"] != WakeTokenInvalid && res["push"] != WakeAlreadyPending {
					t.Fatalf("after invalidation: %v", res)
				}
			}
			// Whatever the provider said, the text is still stored.
			if n, _, _ := w.store.Depth(context.Background(), bob); n < 1 {
				t.Fatal("stored text lost after a provider error")
			}
			logs := w.logs.String()
			for _, secret := range []string{device, "s3cret-code", w.fcmToken, w.apnsJWT} {
				if strings.Contains(logs, secret) {
					t.Fatalf("logs contain a secret (%.12s…)", secret)
				}
			}
		})
	}
}
