package broker

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/rewind-broker/rewind/testclient"
)

func TestAdminAuth(t *testing.T) {
	h := newHarness(t)
	for _, key := range []string{"", "wrong", testAdminKey + "x"} {
		for _, ep := range []string{"GET /v1/sessions", "GET /v1/terminals", "PUT /v1/terminals/1", "DELETE /v1/terminals/1", "GET /metrics"} {
			method, path, _ := strings.Cut(ep, " ")
			if status, body := h.adminDo(method, path, key, `{"password":"p"}`); status != 401 || !strings.Contains(body, "admin key") {
				t.Errorf("%s with key %q: %d %s", ep, key, status, body)
			}
		}
	}
	if status, _ := h.adminDo("GET", "/healthz", "", ""); status != 200 {
		t.Fatalf("healthz: %d", status)
	}
}

func TestAdminTerminalLifecycle(t *testing.T) {
	h := newHarness(t)
	status, body := h.adminDo("PUT", "/v1/terminals/262000101", testAdminKey, `{"password":"s3cret","name":"Alice's phone"}`)
	if status != 201 {
		t.Fatalf("create: %d %s", status, body)
	}
	var info TerminalInfo
	if err := json.Unmarshal([]byte(body), &info); err != nil || info.ID != 262000101 || info.User != 2620001 || info.Name != "Alice's phone" {
		t.Fatalf("create answer: %s", body)
	}
	if strings.Contains(body, "s3cret") {
		t.Fatal("the API returned the password")
	}
	// Update keeps the password when none is given.
	if status, body = h.adminDo("PUT", "/v1/terminals/262000101", testAdminKey, `{"name":"renamed"}`); status != 200 || !strings.Contains(body, "renamed") {
		t.Fatalf("update: %d %s", status, body)
	}
	c := h.dial(262000101, "s3cret")

	status, body = h.adminDo("GET", "/v1/terminals/262000101", testAdminKey, "")
	if status != 200 || !strings.Contains(body, `"session"`) {
		t.Fatalf("get with live session: %d %s", status, body)
	}
	status, body = h.adminDo("GET", "/v1/sessions", testAdminKey, "")
	var p Page[SessionInfo]
	if status != 200 || json.Unmarshal([]byte(body), &p) != nil || len(p.Items) != 1 || p.Items[0].Terminal != 262000101 || p.Items[0].State != "active" {
		t.Fatalf("sessions: %d %s", status, body)
	}
	// Delete closes the live session.
	if status, body = h.adminDo("DELETE", "/v1/terminals/262000101", testAdminKey, ""); status != 200 || !strings.Contains(body, `"session_closed": true`) {
		t.Fatalf("delete: %d %s", status, body)
	}
	_, err := c.Recv(ctx(t))
	if got := testclient.CloseCode(err); got != 4403 {
		t.Fatalf("deleted terminal's session: close %d (%v)", got, err)
	}
	if status, _ = h.adminDo("GET", "/v1/terminals/262000101", testAdminKey, ""); status != 404 {
		t.Fatalf("get deleted: %d", status)
	}
	if status, _ = h.adminDo("DELETE", "/v1/terminals/262000101", testAdminKey, ""); status != 404 {
		t.Fatalf("delete twice: %d", status)
	}
}

func TestAdminBadRequests(t *testing.T) {
	h := newHarness(t)
	cases := []struct{ method, path, body string }{
		{"PUT", "/v1/terminals/abc", `{"password":"p"}`},
		{"PUT", "/v1/terminals/0", `{"password":"p"}`},
		{"PUT", "/v1/terminals/4294967296", `{"password":"p"}`},
		{"PUT", "/v1/terminals/5", `not json`},
		{"PUT", "/v1/terminals/5", `{"password":"p","extra":1}`},
		{"PUT", "/v1/terminals/5", `{"name":"no password for a new terminal"}`},
		{"PUT", "/v1/terminals/5", `{"password":"p","name":"` + strings.Repeat("n", 65) + `"}`},
		{"PUT", "/v1/terminals/5", `{"password":"` + strings.Repeat("p", 20000) + `"}`},
		{"GET", "/v1/sessions?limit=0", ""},
		{"GET", "/v1/sessions?limit=1001", ""},
		{"GET", "/v1/sessions?limit=x", ""},
		{"GET", "/v1/terminals?after=-1", ""},
	}
	for _, c := range cases {
		if status, body := h.adminDo(c.method, c.path, testAdminKey, c.body); status != 400 || !strings.Contains(body, `"error"`) {
			t.Errorf("%s %s %.40s: %d %s", c.method, c.path, c.body, status, body)
		}
	}
	// At the limits: accepted.
	if status, body := h.adminDo("PUT", "/v1/terminals/5", testAdminKey, `{"password":"p","name":"`+strings.Repeat("n", 64)+`"}`); status != 201 {
		t.Fatalf("name of 64 runes: %d %s", status, body)
	}
	if status, _ := h.adminDo("GET", "/v1/sessions?limit=1000", testAdminKey, ""); status != 200 {
		t.Fatalf("limit 1000: %d", status)
	}
	if status, _ := h.adminDo("GET", "/v1/nothing", testAdminKey, ""); status != 404 {
		t.Fatalf("unknown endpoint: %d", status)
	}
}

func TestAdminPaging(t *testing.T) {
	h := newHarness(t)
	for id := uint32(1); id <= 5; id++ {
		h.addTerminal(262000100+id, "pw")
	}
	var ids []uint32
	after := ""
	for pages := 0; pages < 10; pages++ {
		status, body := h.adminDo("GET", "/v1/terminals?limit=2"+after, testAdminKey, "")
		var p Page[TerminalInfo]
		if status != 200 || json.Unmarshal([]byte(body), &p) != nil {
			t.Fatalf("%d %s", status, body)
		}
		for _, it := range p.Items {
			ids = append(ids, it.ID)
		}
		if p.Next == nil {
			break
		}
		after = "&after=" + jsonNum(*p.Next)
	}
	if len(ids) != 5 || ids[0] != 262000101 || ids[4] != 262000105 {
		t.Fatalf("paged ids: %v", ids)
	}
}

func TestMetricsAfterTraffic(t *testing.T) {
	h := newHarness(t)
	h.addTerminal(alice, "a")
	h.addTerminal(bob, "b")
	a := h.dial(alice, "a")
	b := h.dial(bob, "b")
	a.SendText(ctx(t), bob, "hi")
	if _, _, err := b.RecvText(ctx(t)); err != nil {
		t.Fatal(err)
	}
	dialErr(t, h, alice, "bad")
	status, body := h.adminDo("GET", "/metrics", testAdminKey, "")
	if status != 200 {
		t.Fatal(status)
	}
	for _, want := range []string{
		`rewind_sessions{state="active"} 2`,
		`rewind_session_setups_total 2`,
		`rewind_auth_failures_total{kind="password"} 1`,
		`rewind_datagrams_in_total{type="MESSAGE_TEXT"} 1`,
		`rewind_routed_total{outcome="live"} 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func jsonNum(v uint32) string { b, _ := json.Marshal(v); return string(b) }
