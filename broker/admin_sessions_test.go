package broker

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/rewind-broker/rewind/testclient"
	"github.com/rewind-broker/rewind/testclient/pushsim"
)

// attachLive dials terminal id and attaches it for platform (with keys and a signature key when
// keys is set); the session stays open.
func (w *pushWorld) attachLive(t testing.TB, id uint32, password, platform string, opt testclient.AttachOptions) (*testclient.Client, string) {
	t.Helper()
	target, pf := fcmProject, pushsim.PlatformFCM
	if platform == "apns" {
		target, pf = apnsTopic, pushsim.PlatformAPNs
		opt.Topic = apnsTopic
	}
	device := w.providers.RegisterDevice(pf, target)
	c := w.dial(id, password)
	opt.URL, opt.Token, opt.Platform = w.tokenURL(platform), device, platform
	if err := c.Attach(ctx(t), opt); err != nil {
		t.Fatalf("attach: %v", err)
	}
	return c, device
}

func (h *harness) sessionsPage(t testing.TB, query string) Page[SessionItem] {
	t.Helper()
	status, body := h.adminDo("GET", "/v1/sessions"+query, testAdminKey, "")
	var p Page[SessionItem]
	if status != 200 || json.Unmarshal([]byte(body), &p) != nil {
		t.Fatalf("sessions%s: %d %s", query, status, body)
	}
	return p
}

func sessionTerminals(p Page[SessionItem]) []uint32 {
	var ids []uint32
	for _, it := range p.Items {
		ids = append(ids, it.Terminal)
	}
	return ids
}

func TestAdminSessionFilters(t *testing.T) {
	w := newPushWorld(t)
	w.addTerminal(alice, "a")
	w.addTerminal(bob, "b")
	w.addTerminal(bob2, "b2")
	w.dial(alice, "a") // active, never attached
	b, _ := w.attachLive(t, bob, "b", "fcm", testclient.AttachOptions{})
	if err := b.Idle(ctx(t)); err != nil {
		t.Fatal(err)
	}
	w.attachLive(t, bob2, "b2", "apns", testclient.AttachOptions{})

	all := w.sessionsPage(t, "")
	if got := sessionTerminals(all); !slices.Equal(got, []uint32{alice, bob, bob2}) || all.Next != nil {
		t.Fatalf("all sessions: %v next %v", got, all.Next)
	}
	for i, want := range []struct{ state, platform string }{{"active", "none"}, {"idle", "fcm"}, {"active", "apns"}} {
		if it := all.Items[i]; it.State != want.state || it.Platform != want.platform || it.Remote == "" {
			t.Errorf("session of %d: %+v, want %+v", it.Terminal, it, want)
		}
	}
	for query, want := range map[string][]uint32{
		"?state=idle":                {bob},
		"?state=active":              {alice, bob2},
		"?platform=none":             {alice},
		"?platform=apns":             {bob2},
		"?platform=fcm":              {bob},
		"?platform=fcm&state=active": nil,
		"?state=active&after=" + fmt.Sprint(alice): {bob2},
	} {
		if got := sessionTerminals(w.sessionsPage(t, query)); !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", query, got, want)
		}
	}

	// With a platform filter a page reads at most limit attaches: pages may be short, and
	// following next finds every match.
	var found []uint32
	after, pages := "", 0
	for ; pages < 10; pages++ {
		p := w.sessionsPage(t, "?platform=apns&limit=1"+after)
		found = append(found, sessionTerminals(p)...)
		if p.Next == nil {
			break
		}
		after = "&after=" + fmt.Sprint(*p.Next)
	}
	if !slices.Equal(found, []uint32{bob2}) || pages != 2 {
		t.Fatalf("paged by platform: %v in %d pages", found, pages+1)
	}
	// The state filter costs no reads: a page fills up.
	if p := w.sessionsPage(t, "?state=active&limit=1"); !slices.Equal(sessionTerminals(p), []uint32{alice}) || p.Next == nil || *p.Next != alice {
		t.Fatalf("state=active limit=1: %+v", p)
	}
	if p := w.sessionsPage(t, "?state=active&limit=1&after="+fmt.Sprint(alice)); !slices.Equal(sessionTerminals(p), []uint32{bob2}) || p.Next != nil {
		t.Fatalf("state=active limit=1, second page: %+v", p)
	}

	for _, query := range []string{"?state=offline", "?state=handshake", "?state=ACTIVE", "?platform=web", "?platform=", "?limit=0&state=idle"} {
		status, body := w.adminDo("GET", "/v1/sessions"+query, testAdminKey, "")
		if query == "?platform=" {
			if status != 200 {
				t.Errorf("%s (empty means any): %d %s", query, status, body)
			}
			continue
		}
		if status != 400 || !strings.Contains(body, `"error"`) {
			t.Errorf("%s: %d %s", query, status, body)
		}
	}
}

// A broker without push lists sessions with platform none.
func TestAdminSessionsWithoutPush(t *testing.T) {
	h := newHarness(t)
	h.addTerminal(alice, "a")
	h.dial(alice, "a")
	p := h.sessionsPage(t, "?platform=none")
	if len(p.Items) != 1 || p.Items[0].Platform != "none" {
		t.Fatalf("%+v", p)
	}
	if p := h.sessionsPage(t, "?platform=fcm"); len(p.Items) != 0 {
		t.Fatalf("fcm: %+v", p)
	}
}
