package broker

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rewind-broker/rewind/registry"
)

func TestAdminPushes(t *testing.T) {
	w := newPushWorld(t)
	w.addTerminal(bob, "b")
	w.addTerminal(bob2, "b2")
	device := w.phoneGoneIdle(t, bob, "b", "fcm", nil)

	// Never pushed: no last_push, an empty trail.
	if _, body := w.terminalDetail(t, bob); strings.Contains(body, "last_push") {
		t.Fatalf("last_push before any push: %s", body)
	}
	if status, body := w.adminDo("GET", "/v1/terminals/262000201/pushes", testAdminKey, ""); status != 200 || !strings.Contains(body, `"pushes": []`) {
		t.Fatalf("empty trail: %d %s", status, body)
	}

	if out := w.publishText(t, bob, 2620009, "ring"); out["push"] != WakeSent {
		t.Fatalf("publish: %v", out)
	}
	d, body := w.terminalDetail(t, bob)
	if lp := d.LastPush; lp == nil || lp.Outcome != WakeSent || lp.Platform != "fcm" || lp.MessageID == "" || lp.Terminal != bob || lp.Time.IsZero() {
		t.Fatalf("last_push: %s", body)
	}
	mustNotLeak(t, body, map[string][]byte{"device token": []byte(device)})

	// Paging through a longer trail, newest first.
	base := time.Now().Add(-time.Hour)
	for i := range 5 {
		err := w.store.AppendAudit(context.Background(), registry.PushAudit{Terminal: bob2, Time: base.Add(time.Duration(i) * time.Minute),
			Platform: "apns", Outcome: WakeRetrying, Reason: "503"}, time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
	}
	var got []time.Time
	query := "?limit=2"
	for pages := 0; ; pages++ {
		if pages == 5 {
			t.Fatal("paging does not end")
		}
		status, body := w.adminDo("GET", "/v1/terminals/262000202/pushes"+query, testAdminKey, "")
		var p PushPage
		if status != 200 || json.Unmarshal([]byte(body), &p) != nil {
			t.Fatalf("%s: %d %s", query, status, body)
		}
		for _, a := range p.Pushes {
			got = append(got, a.Time)
		}
		if p.NextBefore == nil {
			break
		}
		query = "?limit=2&before=" + url.QueryEscape(p.NextBefore.Format(time.RFC3339Nano))
	}
	if len(got) != 5 || !got[0].Equal(base.Add(4*time.Minute)) || !got[4].Equal(base) {
		t.Fatalf("paged trail: %v", got)
	}

	for path, want := range map[string]int{
		"/v1/terminals/262000201/pushes?limit=0":          400,
		"/v1/terminals/262000201/pushes?limit=1001":       400,
		"/v1/terminals/262000201/pushes?limit=x":          400,
		"/v1/terminals/262000201/pushes?before=yesterday": 400,
		"/v1/terminals/262000999/pushes":                  404,
		"/v1/terminals/x/pushes":                          400,
	} {
		if status, body := w.adminDo("GET", path, testAdminKey, ""); status != want || !strings.Contains(body, `"error"`) {
			t.Errorf("%s: %d %s, want %d", path, status, body, want)
		}
	}
	for _, key := range []string{"", "wrong"} {
		if status, _ := w.adminDo("GET", "/v1/terminals/262000201/pushes", key, ""); status != 401 {
			t.Errorf("pushes with key %q: %d", key, status)
		}
	}
}

func TestAdminPushesWithoutPush(t *testing.T) {
	h := newHarness(t)
	h.addTerminal(alice, "a")
	if status, body := h.adminDo("GET", "/v1/terminals/262000101/pushes", testAdminKey, ""); status != 503 || !strings.Contains(body, `"error"`) {
		t.Fatalf("%d %s", status, body)
	}
	if _, body := h.terminalDetail(t, alice); strings.Contains(body, "last_push") {
		t.Fatalf("%s", body)
	}
}
