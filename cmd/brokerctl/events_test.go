package main

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// eventTypes returns the TYPE column of human event lines.
func eventTypes(out string) []string {
	var types []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(l); len(f) >= 3 {
			types = append(types, f[2])
		}
	}
	return types
}

func TestEventsBacklog(t *testing.T) {
	pb := newPushBroker(t)
	r := must(t, pb.ctl("events"), exitOK)
	if r.stdout != "" {
		t.Errorf("events with none: %q", r.stdout)
	}
	must(t, pb.ctl("terminal", "add", "262000101", "--password", "a"), exitOK)
	pb.phoneGoneIdle(t, 262000101, "a", "fcm")

	r = must(t, pb.ctl("events"), exitOK)
	if got := strings.Join(eventTypes(r.stdout), " "); got != "session_opened attached idle session_closed" {
		t.Errorf("event types %q in\n%s", got, r.stdout)
	}
	line := regexp.MustCompile(`^20\d\d-\d\d-\d\d \d\d:\d\d:\d\dZ  [a-z_]+ +262000101 +\S`)
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if !line.MatchString(l) {
			t.Errorf("event line %q", l)
		}
	}
	matchAll(t, "events", r.stdout, `  attached +262000101 +session=\S+ platform=fcm .*host=127\.0\.0\.1:\d+`, `  session_closed +262000101 +session=\S+ reason="connection lost"`)
	if strings.Contains(r.stdout, "s3cret-code") {
		t.Errorf("events printed the token service's query:\n%s", r.stdout)
	}

	r = must(t, pb.ctl("--json", "events", "--terminal", "262000101", "--types", "attached,idle"), exitOK)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 2 {
		t.Fatalf("--json --types attached,idle: %d lines\n%s", len(lines), r.stdout)
	}
	var evs []event
	for _, l := range lines {
		evs = append(evs, decode[event](t, l))
	}
	if evs[0].Type != "attached" || evs[1].Type != "idle" || evs[0].Terminal != 262000101 || evs[0].Platform != "fcm" || evs[1].ID <= evs[0].ID {
		t.Errorf("--json events: %+v", evs)
	}
	// --after skips what came before.
	r = must(t, pb.ctl("events", "--after", string(evs[0].ID)), exitOK)
	if got := strings.Join(eventTypes(r.stdout), " "); got != "idle session_closed" {
		t.Errorf("--after %s: %q", evs[0].ID, got)
	}

	// Refusals end even a following stream: no reconnecting with a wrong key or filter.
	r = must(t, runCtl(nil, "--admin-url", pb.admin.URL, "--admin-key", "wrong", "events", "--follow"), exitAuth)
	if !strings.Contains(r.stderr, "authentication refused") {
		t.Errorf("wrong key: %q", r.stderr)
	}
	must(t, pb.ctl("events", "--follow", "--types", "bogus"), exitAPI)
	r = must(t, pb.ctl("events", "--types", "bogus"), exitAPI)
	if !strings.Contains(r.stderr, `unknown event type "bogus"`) {
		t.Errorf("unknown type: %q", r.stderr)
	}
	for _, args := range [][]string{{"events", "--terminal", "0"}, {"events", "--after", "x"}, {"events", "--types", ","}, {"events", "extra"}} {
		if r := pb.ctl(args...); r.code != exitUsage || !strings.Contains(r.stderr, "(see brokerctl events --help)") {
			t.Errorf("%q: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
}

// followCtl runs brokerctl events --follow until cancel; its stdout comes line by line.
func (b *testBroker) followCtl(t *testing.T, args ...string) (lines *lineWriter, cancel func() result) {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	lines, stderr := newLineWriter(), &syncBuffer{}
	code := make(chan int, 1)
	go func() {
		code <- runContext(ctx, append([]string{"--admin-url", b.admin.URL, "--admin-key", testKey}, args...), nil, lines, stderr)
	}()
	var once bool
	var res result
	cancel = func() result {
		if !once {
			once = true
			stop()
			res = result{code: <-code, stderr: stderr.String()}
		}
		return res
	}
	t.Cleanup(func() { cancel() })
	return lines, cancel
}

func TestEventsFollow(t *testing.T) {
	pb := newPushBroker(t)
	must(t, pb.ctl("terminal", "add", "262000101", "--password", "a"), exitOK)
	must(t, pb.ctl("terminal", "add", "262000102", "--password", "b"), exitOK)
	pb.dial(262000101, "a").Close()
	pb.waitNoSession(t, 262000101)

	// Start from the last event there is: nothing emitted after it can be missed, however
	// long the stream takes to open.
	r := must(t, pb.ctl("--json", "events"), exitOK)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	last := decode[event](t, lines[len(lines)-1])

	jsonLines, stopJSON := pb.followCtl(t, "--json", "events", "--follow", "--after", string(last.ID), "--terminal", "262000102")
	human, stopHuman := pb.followCtl(t, "events", "--follow", "--after", string(last.ID), "--types", "session_opened,session_closed")

	c := pb.dial(262000102, "b")
	c.Close()
	pb.waitNoSession(t, 262000102)

	var got []string
	for len(got) < 2 {
		ev := decode[event](t, jsonLines.next(t))
		if ev.Terminal != 262000102 {
			t.Errorf("--terminal 262000102 let through %+v", ev)
		}
		if ev.Type == "session_opened" || ev.Type == "session_closed" {
			got = append(got, ev.Type)
		}
	}
	if strings.Join(got, " ") != "session_opened session_closed" {
		t.Errorf("followed %v", got)
	}
	if res := stopJSON(); res.code != exitOK || res.stderr != "" {
		t.Errorf("--json --follow ended with %d, stderr %q", res.code, res.stderr)
	}

	for _, want := range []string{`  session_opened +262000102 +session=\S+ client=`, `  session_closed +262000102 +session=\S+ reason="client close"`} {
		if l := human.next(t); !regexp.MustCompile(want).MatchString(l) {
			t.Errorf("--follow line %q, want %q", l, want)
		}
	}
	if res := stopHuman(); res.code != exitOK || res.stderr != "" {
		t.Errorf("--follow ended with %d, stderr %q", res.code, res.stderr)
	}
}

// TestEventsJSONIsTheAPIs checks that --json prints the broker's event objects unchanged.
func TestEventsJSONIsTheAPIs(t *testing.T) {
	pb := newPushBroker(t)
	must(t, pb.ctl("terminal", "add", "262000101", "--password", "a"), exitOK)
	pb.dial(262000101, "a").Close()
	pb.waitNoSession(t, 262000101)
	r := must(t, pb.ctl("--json", "events", "--types", "session_opened"), exitOK)
	var m map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(r.stdout)), &m); err != nil {
		t.Fatalf("%v: %q", err, r.stdout)
	}
	for _, k := range []string{"id", "time", "type", "terminal", "session", "detail"} {
		if _, ok := m[k]; !ok {
			t.Errorf("no %q in %v", k, m)
		}
	}
}
