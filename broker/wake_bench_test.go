package broker

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/rewind-broker/rewind/testclient"
	"github.com/rewind-broker/rewind/testclient/pushsim"
)

// BenchmarkWakeCycle measures idle → publish → push → reconnect → delivered on loopback: the
// publish API stores the text (fsync), the broker fetches nothing (token cached), pushes to the
// fake FCM, the simulated phone reconnects on the push and receives the stored text.
func BenchmarkWakeCycle(b *testing.B) {
	w := newPushWorld(b)
	w.addTerminal(bob, "b")
	device := w.providers.RegisterDevice(pushsim.PlatformFCM, fcmProject)
	phone := testclient.NewPhone(testclient.PhoneConfig{
		Client: w.config(bob, "b"),
		Attach: testclient.AttachOptions{URL: w.tokenURL("fcm"), Token: device, Platform: "fcm"},
	})
	defer phone.Close()
	w.providers.OnPush(device, phone.HandlePush)
	c, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := phone.Start(c); err != nil {
		b.Fatal(err)
	}
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := phone.GoIdle(c, true); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		// The session the phone just dropped is cleaned up concurrently: when its cleanup sees
		// this text already stored, it wakes the terminal itself and the publish answers
		// already_pending; a push from such a race can also bring the phone back before the
		// publish (not_needed). Whatever the answer, the text must arrive.
		if res := w.publishText(b, bob, 2620009, fmt.Sprintf("wake %d", i)); res["push"] != WakeSent && res["push"] != WakeAlreadyPending && res["push"] != WakeNotNeeded {
			b.Fatalf("push outcome %v", res)
		}
		if err := phone.WaitReceived(c, i+1); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
		// Let the phone's automatic ack land before it goes idle again; an unacknowledged
		// entry at TERMINAL_IDLE rightly triggers a wake of its own.
		for deadline := time.Now().Add(10 * time.Second); ; {
			n, _, err := w.store.Depth(c, bob)
			if err != nil {
				b.Fatal(err)
			}
			if n == 0 {
				break
			}
			if time.Now().After(deadline) {
				left, _ := w.store.Pending(c, bob, 0, 10)
				var seqs []uint64
				for _, e := range left {
					seqs = append(seqs, e.Seq)
				}
				pushes := phone.Pushes()
				var last []string
				for _, p := range pushes[max(0, len(pushes)-3):] {
					last = append(last, fmt.Sprintf("%v/%v", p.Err, p.ReconnectErr))
				}
				b.Fatalf("cycle %d: %d entries still stored 10 s after the text arrived (sequences %v); %d pushes, last: %v", i, n, seqs, len(pushes), last)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
