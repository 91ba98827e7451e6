package broker

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/rewind-broker/rewind/testclient"
)

func TestAdminNewEndpointsNeedKey(t *testing.T) {
	h := newHarness(t)
	h.addTerminal(alice, "a")
	for _, key := range []string{"", "wrong"} {
		for _, ep := range []string{
			"GET /v1/terminals/262000101", "GET /v1/users/2620001/terminals", "GET /v1/sessions?state=idle",
			"POST /v1/terminals/262000101/kick", "POST /v1/terminals/262000101/detach",
			"POST /v1/terminals/262000101/password", "DELETE /v1/terminals/262000101", "GET /v1/events?follow=false",
		} {
			method, path, _ := strings.Cut(ep, " ")
			if status, body := h.adminDo(method, path, key, `{"password":"new"}`); status != 401 || !strings.Contains(body, `"error"`) {
				t.Errorf("%s with key %q: %d %s", ep, key, status, body)
			}
		}
	}
	// Nothing happened.
	h.dial(alice, "a")
}

func TestAdminKick(t *testing.T) {
	h := newHarness(t)
	h.addTerminal(alice, "a")
	h.addTerminal(bob, "b")
	c := h.dial(alice, "a")
	other := h.dial(bob, "b")

	status, body := h.adminDo("POST", "/v1/terminals/262000101/kick", testAdminKey, "")
	var res KickResult
	if status != 200 || json.Unmarshal([]byte(body), &res) != nil || !res.Kicked || res.Terminal != alice {
		t.Fatalf("kick: %d %s", status, body)
	}
	_, err := c.Recv(ctx(t))
	if got := testclient.CloseCode(err); got != 4403 {
		t.Fatalf("kicked session: close %d (%v)", got, err)
	}
	if s := h.waitClosed(); s.reason().Reason != CloseKicked.Reason {
		t.Fatalf("close reason %q", s.reason().Reason)
	}
	if err := other.KeepAliveNow(ctx(t)); err != nil {
		t.Fatalf("another terminal's session: %v", err)
	}
	if status, body = h.adminDo("POST", "/v1/terminals/262000101/kick", testAdminKey, ""); status != 200 || !strings.Contains(body, `"kicked": false`) {
		t.Fatalf("kick without a session: %d %s", status, body)
	}
	for path, want := range map[string]int{"/v1/terminals/262000999/kick": 404, "/v1/terminals/x/kick": 400, "/v1/terminals/0/kick": 400} {
		if status, body := h.adminDo("POST", path, testAdminKey, ""); status != want || !strings.Contains(body, `"error"`) {
			t.Errorf("%s: %d %s, want %d", path, status, body, want)
		}
	}
	// The kicked terminal may come back.
	h.dial(alice, "a")
}

func TestAdminDetach(t *testing.T) {
	w := newPushWorld(t)
	w.addTerminal(alice, "a")
	w.addTerminal(bob, "b")
	w.phoneGoneIdle(t, bob, "b", "fcm", nil)

	status, body := w.adminDo("POST", "/v1/terminals/262000201/detach", testAdminKey, "")
	var res DetachResult
	if status != 200 || json.Unmarshal([]byte(body), &res) != nil || !res.Detached || res.Platform != "fcm" || res.Terminal != bob {
		t.Fatalf("detach: %d %s", status, body)
	}
	if d, _ := w.terminalDetail(t, bob); d.Attach != nil {
		t.Fatalf("still attached: %+v", d.Attach)
	}
	if out := w.publishText(t, bob, 2620009, "anyone there?"); out["push"] != WakeNoChannel || out["state"] != "offline" {
		t.Fatalf("publish after detach: %v", out)
	}
	for path, want := range map[string]int{
		"/v1/terminals/262000201/detach": 404, // detached already
		"/v1/terminals/262000101/detach": 404, // never attached
		"/v1/terminals/262000999/detach": 404, // unknown
		"/v1/terminals/abc/detach":       400,
	} {
		if status, body := w.adminDo("POST", path, testAdminKey, ""); status != want || !strings.Contains(body, `"error"`) {
			t.Errorf("%s: %d %s, want %d", path, status, body, want)
		}
	}
	if _, body := w.adminDo("POST", "/v1/terminals/262000201/detach", testAdminKey, ""); !strings.Contains(body, "no push attachment") {
		t.Errorf("second detach: %s", body)
	}
	// The event stream, mounted behind the key, tells the operator's detach from the terminal's.
	status, body = w.adminDo("GET", "/v1/events?follow=false&terminal=262000201&types=detached", testAdminKey, "")
	if status != 200 || strings.Count(body, "event: detached") != 1 || !strings.Contains(body, `"reason":"removed by operator"`) || !strings.Contains(body, `"platform":"fcm"`) {
		t.Errorf("events: %d %s", status, body)
	}
	if status, _ := w.adminDo("GET", "/v1/events?follow=false", "", ""); status != 401 {
		t.Errorf("events without key: %d", status)
	}
}

func TestAdminDeleteCountsOutbox(t *testing.T) {
	w := newPushWorld(t)
	w.addTerminal(bob, "b")
	w.addTerminal(bob2, "b2")
	w.phoneGoneIdle(t, bob, "b", "fcm", nil)
	for i := range 3 {
		w.publishText(t, bob, 2620009, fmt.Sprint("text ", i))
	}
	status, body := w.adminDo("DELETE", "/v1/terminals/262000201", testAdminKey, "")
	var res DeleteResult
	if status != 200 || json.Unmarshal([]byte(body), &res) != nil || res.Deleted != bob || res.SessionClosed || res.OutboxDeleted == nil || *res.OutboxDeleted != 3 {
		t.Fatalf("delete: %d %s", status, body)
	}
	// A live terminal with nothing stored.
	w.dial(bob2, "b2")
	if status, body = w.adminDo("DELETE", "/v1/terminals/262000202", testAdminKey, ""); status != 200 ||
		!strings.Contains(body, `"session_closed": true`) || !strings.Contains(body, `"outbox_deleted": 0`) {
		t.Fatalf("delete live: %d %s", status, body)
	}
	if status, _ = w.adminDo("DELETE", "/v1/terminals/262000201", testAdminKey, ""); status != 404 {
		t.Fatalf("delete twice: %d", status)
	}
}

func TestAdminPassword(t *testing.T) {
	h := newHarness(t)
	h.putTerminal(t, alice, "old-pw", "Alice phone")
	c := h.dial(alice, "old-pw")

	// Without kick the session stays; the next login needs the new password.
	status, body := h.adminDo("POST", "/v1/terminals/262000101/password", testAdminKey, `{"password":"n3w-s3cret-1"}`)
	var res PasswordResult
	if status != 200 || json.Unmarshal([]byte(body), &res) != nil || res.Terminal != alice || res.Kicked || res.Updated.IsZero() {
		t.Fatalf("rotate: %d %s", status, body)
	}
	if strings.Contains(body, "n3w-s3cret-1") || strings.Contains(body, "old-pw") {
		t.Fatalf("the answer holds a password: %s", body)
	}
	if err := c.KeepAliveNow(ctx(t)); err != nil {
		t.Fatalf("session after rotation without kick: %v", err)
	}
	wantRefusal(t, dialErr(t, h, alice, "old-pw"), 401, 4401)
	h.dial(alice, "n3w-s3cret-1") // replaces c
	if _, err := c.Recv(ctx(t)); testclient.CloseCode(err) != 4409 {
		t.Fatalf("replaced session: %v", err)
	}
	if d, _ := h.terminalDetail(t, alice); d.Name != "Alice phone" {
		t.Fatalf("name lost: %+v", d.TerminalInfo)
	}

	// With kick the live session ends with 4403, so the terminal logs in again.
	live := h.dial(alice, "n3w-s3cret-1")
	status, body = h.adminDo("POST", "/v1/terminals/262000101/password", testAdminKey, `{"password":"n3w-s3cret-2","kick":true}`)
	if status != 200 || !strings.Contains(body, `"kicked": true`) || strings.Contains(body, "n3w-s3cret-2") {
		t.Fatalf("rotate with kick: %d %s", status, body)
	}
	if _, err := live.Recv(ctx(t)); testclient.CloseCode(err) != 4403 {
		t.Fatalf("kicked on rotation: %v", err)
	}
	h.dial(alice, "n3w-s3cret-2")
	if logs := h.logs.String(); strings.Contains(logs, "n3w-s3cret") {
		t.Fatal("a password was logged")
	}

	long := strings.Repeat("p", 257)
	for _, c := range []struct {
		path, body string
		status     int
	}{
		{"/v1/terminals/262000101/password", `not json`, 400},
		{"/v1/terminals/262000101/password", ``, 400},
		{"/v1/terminals/262000101/password", `{}`, 400},
		{"/v1/terminals/262000101/password", `{"password":""}`, 400},
		{"/v1/terminals/262000101/password", `{"password":"x","name":"y"}`, 400},
		{"/v1/terminals/262000101/password", `{"password":"x"} {"password":"y"}`, 400},
		{"/v1/terminals/262000101/password", `{"password":"x","kick":"yes"}`, 400},
		{"/v1/terminals/262000101/password", `{"password":"` + long + `"}`, 400},
		{"/v1/terminals/262000101/password", `{"password":"` + strings.Repeat("p", 20000) + `"}`, 400},
		{"/v1/terminals/262000999/password", `{"password":"x"}`, 404},
		{"/v1/terminals/x/password", `{"password":"x"}`, 400},
	} {
		status, body := h.adminDo("POST", c.path, testAdminKey, c.body)
		if status != c.status || !strings.Contains(body, `"error"`) || strings.Contains(body, long) {
			t.Errorf("%s %.40s: %d %.200s, want %d", c.path, c.body, status, body, c.status)
		}
	}
	h.dial(alice, "n3w-s3cret-2") // the refused calls changed nothing
}
