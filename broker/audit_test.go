package broker

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rewind-broker/rewind/registry"
	"github.com/rewind-broker/rewind/testclient"
	"github.com/rewind-broker/rewind/testclient/pushsim"
)

// TestPushAuditAfterWake: every wake outcome leaves an audit record — a sent push with its
// message id and latency, an unregistered device token, a terminal without a push channel — and
// the matching events.
func TestPushAuditAfterWake(t *testing.T) {
	w := newPushWorld(t)
	w.addTerminal(alice, "a")
	w.addTerminal(bob, "b")
	w.addTerminal(bob2, "b2")
	keys, _ := testclient.GenerateKeys()
	w.phoneGoneIdle(t, bob, "b", "fcm", keys)
	w.phoneGoneIdle(t, bob2, "b2", "fcm", nil)
	c := context.Background()

	if last, err := w.srv.LastPush(c, bob); err != nil || last != nil {
		t.Fatalf("LastPush before any push: %+v, %v", last, err)
	}
	if res := w.publishText(t, bob, 2620009, "ring"); res["push"] != WakeSent {
		t.Fatalf("publish: %v", res)
	}
	p, err := w.providers.Next(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	last, err := w.srv.LastPush(c, bob)
	if err != nil || last == nil {
		t.Fatalf("LastPush: %+v, %v", last, err)
	}
	if last.Outcome != WakeSent || last.Platform != "fcm" || last.MessageID == "" || !strings.HasSuffix(last.MessageID, p.ID) ||
		last.Latency <= 0 || last.Kind != PushKindData || last.Terminal != bob || !last.Time.Equal(w.clock.Now()) {
		t.Fatalf("audit of a sent push: %+v (provider message %q)", last, p.ID)
	}

	// FCM says the device token is gone: token_invalid, and the attach is marked invalid.
	w.providers.FCM.FailNext(1, pushsim.FCMFault(404, "NOT_FOUND", "UNREGISTERED", "gone"))
	if res := w.publishText(t, bob2, 2620009, "ring?"); res["push"] != WakeTokenInvalid {
		t.Fatalf("publish to an unregistered device: %v", res)
	}
	recs, err := w.srv.PushAudit(c, bob2, time.Time{}, 10)
	if err != nil || len(recs) != 1 || recs[0].Outcome != WakeTokenInvalid || recs[0].Platform != "fcm" || recs[0].Reason == "" || recs[0].MessageID != "" {
		t.Fatalf("audit of an unregistered token: %+v, %v", recs, err)
	}
	evs := w.srv.Events(0, bob2, []string{EventTokenInvalidated, EventPushFailed}, 0)
	if len(evs) != 2 || evs[0].Type != EventTokenInvalidated || evs[1].Detail["outcome"] != WakeTokenInvalid || evs[1].Reason == "" {
		t.Fatalf("events of an unregistered token: %+v", evs)
	}

	// No push channel at all.
	if res := w.publishText(t, alice, 2620009, "nobody attached"); res["push"] != WakeNoChannel {
		t.Fatalf("publish without attach: %v", res)
	}
	if last, err := w.srv.LastPush(c, alice); err != nil || last == nil || last.Outcome != WakeNoChannel || last.Platform != "" {
		t.Fatalf("audit without a push channel: %+v, %v", last, err)
	}

	// Over HTTP, as the admin API mounts it.
	mux := http.NewServeMux()
	mux.Handle("GET /v1/terminals/{id}/pushes", w.srv.PushAuditHandler())
	ts := httptest.NewServer(mux)
	defer ts.Close()
	resp, err := http.Get(ts.URL + "/v1/terminals/" + strconv.Itoa(bob) + "/pushes?limit=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page struct {
		Pushes     []PushAuditInfo `json:"pushes"`
		NextBefore *time.Time      `json:"next_before"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET pushes: %d %v", resp.StatusCode, err)
	}
	if len(page.Pushes) != 1 || page.Pushes[0].MessageID != last.MessageID && page.Pushes[0].Outcome != WakeSent || page.NextBefore == nil {
		t.Fatalf("GET pushes: %+v", page)
	}
}

// TestPushAuditRetention: records go at PushAuditRetention, with the expiry sweep.
func TestPushAuditRetention(t *testing.T) {
	w := newPushWorld(t)
	w.addTerminal(alice, "a")
	w.publishText(t, alice, 2620009, "nobody attached")
	c := context.Background()
	w.clock.Advance(DefaultPushAuditRetention - time.Second)
	w.srv.expireOnce(w.clock.Now())
	if recs, _ := w.srv.PushAudit(c, alice, time.Time{}, 10); len(recs) != 1 {
		t.Fatalf("before the retention: %d records", len(recs))
	}
	w.clock.Advance(time.Second)
	w.srv.expireOnce(w.clock.Now())
	if recs, err := w.srv.PushAudit(c, alice, time.Time{}, 10); err != nil || len(recs) != 0 {
		t.Fatalf("after the retention: %+v, %v", recs, err)
	}
	// And from the store's side, nothing is left to expire.
	if n, err := w.store.ExpireAudits(c, w.clock.Now().Add(365*24*time.Hour)); err != nil || n != 0 {
		t.Fatalf("records left behind: %d, %v", n, err)
	}
}

func TestPushAuditUnavailable(t *testing.T) {
	h := newHarness(t)
	if _, err := h.srv.LastPush(context.Background(), alice); err != ErrAuditUnavailable {
		t.Fatalf("without push: %v", err)
	}
	var _ registry.Audits = h.store
}

// TestMetricsAfterWakeCycle: the outbox gauges, the wake-to-delivery histogram, the dropped
// subscriber counter and datagrams out by type show up on /metrics.
func TestMetricsAfterWakeCycle(t *testing.T) {
	w := newPushWorld(t)
	w.addTerminal(bob, "b")
	w.addTerminal(alice, "a")
	keys, _ := testclient.GenerateKeys()
	w.phoneGoneIdle(t, bob, "b", "fcm", keys)
	w.publishText(t, bob, 2620009, "one")
	w.publishText(t, bob, 2620009, "two")
	w.srv.expireOnce(w.clock.Now())
	wantMetric(t, scrapeEventMetrics(t, w.harness), `rewind_outbox_depth 2`)

	w.clock.Advance(2 * time.Second) // the phone takes 2 s to answer the push
	b := w.dial(bob, "b", func(c *testclient.Config) { c.AutoAck = true })
	for i := 0; i < 2; i++ {
		if _, _, err := b.RecvText(ctx(t)); err != nil {
			t.Fatal(err)
		}
	}
	waitOutboxEmpty(t, w.harness, bob, b)
	if err := b.KeepAliveNow(ctx(t)); err != nil { // the ack's handler is done
		t.Fatal(err)
	}
	w.srv.expireOnce(w.clock.Now())
	m := scrapeEventMetrics(t, w.harness)
	wantMetric(t, m, `rewind_outbox_depth 0`)
	wantMetric(t, m, `rewind_outbox_oldest_age_seconds 0`)
	wantMetric(t, m, `rewind_wake_to_delivery_seconds_count 1`)
	wantMetric(t, m, `rewind_wake_to_delivery_seconds_sum 2`)
	wantMetric(t, m, `rewind_events_dropped_subscribers_total 0`)
	wantMetric(t, m, `rewind_datagrams_out_total{type="MESSAGE_TEXT"} 2`)
	wantMetric(t, m, `rewind_datagrams_out_total{type="TERMINAL_ATTACH"} 1`)
	wantMetric(t, m, `rewind_push_audit_errors_total 0`)
	if woken := w.srv.Events(0, bob, []string{EventWoken}, 0); len(woken) != 1 || woken[0].Detail["since_push_s"] != 2.0 {
		t.Fatalf("woken: %+v", woken)
	}

	// Stored for a terminal that cannot be woken: the oldest entry ages. The store stamps
	// entries with the real clock, the broker samples with the fake one: move the fake clock
	// past the real one so that the age is positive.
	w.publishText(t, alice, 2620009, "one")
	w.publishText(t, alice, 2620009, "two")
	d := 10 * time.Second
	if ahead := time.Since(w.clock.Now()); ahead > 0 {
		d += ahead.Round(time.Second)
	}
	w.clock.Advance(d)
	w.srv.expireOnce(w.clock.Now())
	_, oldest, err := w.store.Depth(context.Background(), alice)
	if err != nil {
		t.Fatal(err)
	}
	m = scrapeEventMetrics(t, w.harness)
	wantMetric(t, m, `rewind_outbox_depth 2`)
	age := regexp.MustCompile(`(?m)^rewind_outbox_oldest_age_seconds (\S+)$`).FindStringSubmatch(m)
	if age == nil {
		t.Fatal("no rewind_outbox_oldest_age_seconds")
	}
	want := w.clock.Now().Sub(oldest).Seconds()
	if got, _ := strconv.ParseFloat(age[1], 64); got <= 0 || got-want > 0.001 || got-want < -0.001 {
		t.Fatalf("oldest age %s, want %v", age[1], want)
	}
}

func wantMetric(t testing.TB, exposition, line string) {
	t.Helper()
	if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(line) + `$`).MatchString(exposition) {
		name := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '{' })[0]
		var got []string
		for _, l := range strings.Split(exposition, "\n") {
			if strings.HasPrefix(l, name) {
				got = append(got, l)
			}
		}
		t.Errorf("metric %q missing; have:\n%s", line, strings.Join(got, "\n"))
	}
}
