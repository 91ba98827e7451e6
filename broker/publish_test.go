package broker

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/rewind-broker/rewind/protocol"
	"github.com/rewind-broker/rewind/testclient"
)

func TestPublishToUserReachesEveryTerminal(t *testing.T) {
	w := newPushWorld(t)
	w.addTerminal(bob, "b")
	w.addTerminal(bob2, "b2")
	live := w.dial(bob, "b", func(c *testclient.Config) { c.AutoAck = true })
	status, body := w.adminDo("POST", "/v1/users/2620002/texts", testAdminKey, `{"from":2620009,"text":"net tonight 20:00"}`)
	if status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	var out struct{ Results []PublishResult }
	json.Unmarshal([]byte(body), &out)
	if len(out.Results) != 2 {
		t.Fatalf("results: %s", body)
	}
	for _, r := range out.Results {
		switch r.Terminal {
		case bob:
			if r.State != "active" || r.Push != WakeNotNeeded || r.Sequence != 1 {
				t.Fatalf("live terminal: %+v", r)
			}
		case bob2:
			if r.State != "offline" || r.Push != WakeNoChannel {
				t.Fatalf("offline terminal without attach: %+v", r)
			}
		default:
			t.Fatalf("unexpected terminal %d", r.Terminal)
		}
	}
	m, d, err := live.RecvText(ctx(t))
	if err != nil || m.Text != "net tonight 20:00" || m.Source != 2620009 || d.Flags&protocol.FlagBuffering == 0 {
		t.Fatalf("live delivery: %+v %v", m, err)
	}
	// The offline one gets it when it connects.
	later := w.dial(bob2, "b2")
	if m, _, err := later.RecvText(ctx(t)); err != nil || m.Text != "net tonight 20:00" {
		t.Fatalf("stored delivery: %+v %v", m, err)
	}
}

func TestPublishErrors(t *testing.T) {
	w := newPushWorld(t)
	w.addTerminal(bob, "b")
	text, _ := protocol.TextMessage{Source: 1, Destination: bob, Text: "x"}.Encode()
	good := string(protocol.Datagram{Type: protocol.TypeMessageText, Data: text}.MustEncode())
	bad := []byte(good)
	bad[len(bad)-1] = 0xd8 // unpaired surrogate
	cases := []struct {
		method, path, body string
		status             int
	}{
		{"POST", "/v1/terminals/262000999/datagrams", good, 404},
		{"POST", "/v1/terminals/x/datagrams", good, 400},
		{"POST", "/v1/terminals/262000201/datagrams", "REWIND01 nonsense", 400},
		{"POST", "/v1/terminals/262000201/datagrams", string(bad), 400},
		{"POST", "/v1/terminals/262000201/datagrams", good + strings.Repeat("x", DefaultMaxDatagram), 413},
		{"POST", "/v1/users/2620002/texts", `{"from":1}`, 400},
		{"POST", "/v1/users/2620002/texts", `{"from":1,"text":"x","extra":true}`, 400},
		{"POST", "/v1/users/2629999/texts", `{"from":1,"text":"x"}`, 404},
		{"POST", "/v1/users/2620002/texts", `{"from":1,"text":"` + strings.Repeat("y", DefaultMaxDatagram) + `"}`, 400},
	}
	for _, c := range cases {
		if status, body := w.adminDo(c.method, c.path, testAdminKey, c.body); status != c.status || !strings.Contains(body, `"error"`) {
			t.Errorf("%s %s: %d %s, want %d", c.method, c.path, status, body, c.status)
		}
	}
	if status, _ := w.adminDo("POST", "/v1/users/2620002/texts", "", `{"from":1,"text":"x"}`); status != http.StatusUnauthorized {
		t.Fatalf("publish without key: %d", status)
	}
	if n, _, _ := w.store.Depth(ctx(t), bob); n != 0 {
		t.Fatalf("refused publishes stored %d datagrams", n)
	}
}
