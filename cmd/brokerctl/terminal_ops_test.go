package main

import (
	"regexp"
	"strings"
	"testing"
)

// matchAll fails the test for each pattern (multi-line mode) missing from out.
func matchAll(t *testing.T, what, out string, patterns ...string) {
	t.Helper()
	for _, p := range patterns {
		if !regexp.MustCompile("(?m)" + p).MatchString(out) {
			t.Errorf("%s: no %q in\n%s", what, p, out)
		}
	}
}

func TestTerminalShowPush(t *testing.T) {
	pb := newPushBroker(t)
	must(t, pb.ctl("terminal", "add", "262000101", "--password", "a", "--name", "Alice phone"), exitOK)
	must(t, pb.ctl("terminal", "add", "262000102", "--password", "b"), exitOK)
	device := pb.phoneGoneIdle(t, 262000101, "a", "apns")
	pb.dial(262000102, "b")
	must(t, pb.ctl("send", "262000101", "one", "--from", "9990"), exitOK)
	must(t, pb.ctl("send", "262000101", "two", "--from", "9990"), exitOK)

	r := must(t, pb.ctl("terminal", "show", "262000101"), exitOK)
	host := strings.TrimPrefix(pb.vendor.URL, "http://")
	matchAll(t, "show (attached, offline)", r.stdout,
		`^state\s+offline$`, `^session\s+none$`,
		`^push attach\s+apns$`, `^  token service\s+`+regexp.QuoteMeta(host)+`$`,
		`^  device token\s+`+regexp.QuoteMeta(device[:6])+`…\[\d+ bytes\]$`,
		`^  topic\s+com\.example\.dmr$`, `^  name\s+phone$`,
		`^  encryption key\s+p256dh [0-9a-f]{16}$`, `^  signing key\s+none$`,
		`^  attached\s+20\d\d-\d\d-\d\d \d\d:\d\d:\d\d UTC \(\d+s ago\)$`, `^  invalid\s+no$`,
		`^outbox\s+2 waiting, oldest stored 20\d\d-\d\d-\d\d \d\d:\d\d:\d\d UTC \(\d+s ago\)$`)
	if strings.Contains(r.stdout, device) || strings.Contains(r.stdout, "s3cret-code") {
		t.Errorf("show printed the device token or the token service's query:\n%s", r.stdout)
	}
	// The labels of every block line up.
	if !regexp.MustCompile(`(?m)^terminal {2,}262000101\n`).MatchString(r.stdout) || !regexp.MustCompile(`(?m)^  encryption key  `).MatchString(r.stdout) {
		t.Errorf("labels not aligned:\n%s", r.stdout)
	}

	r = must(t, pb.ctl("--json", "terminal", "show", "262000101"), exitOK)
	d := decode[terminalDetail](t, r.stdout)
	if d.ID != 262000101 || d.State != "offline" || d.Attach == nil || d.Attach.Platform != "apns" || d.Attach.TokenServiceHost != host ||
		d.Outbox == nil || d.Outbox.Depth != 2 || strings.Contains(r.stdout, device) {
		t.Errorf("show --json: %+v\n%s", d, r.stdout)
	}

	r = must(t, pb.ctl("terminal", "show", "262000102"), exitOK)
	matchAll(t, "show (live, never attached)", r.stdout, `^state\s+active$`, `^  state\s+active$`, `^push attach\s+none$`, `^outbox\s+empty$`)

	r = must(t, pb.ctl("terminal", "show", "262000109"), exitAPI)
	if strings.TrimSpace(r.stderr) != "brokerctl: no such terminal" {
		t.Errorf("show unknown: %q", r.stderr)
	}
}

func TestUserDevices(t *testing.T) {
	pb := newPushBroker(t)
	must(t, pb.ctl("terminal", "add", "262000101", "--password", "a", "--name", "Alice phone"), exitOK)
	must(t, pb.ctl("terminal", "add", "262000102", "--password", "b", "--name", "Alice desk"), exitOK)
	must(t, pb.ctl("terminal", "add", "262000103", "--password", "c"), exitOK)
	must(t, pb.ctl("terminal", "add", "2620002", "--password", "d"), exitOK) // another user
	pb.phoneGoneIdle(t, 262000101, "a", "fcm")
	pb.dial(262000102, "b")

	r := must(t, pb.ctl("user", "devices", "2620001"), exitOK)
	matchAll(t, "user devices", r.stdout,
		`^TERMINAL\s+NAME\s+PLATFORM\s+STATE\s+LAST SEEN\n`,
		`^262000101\s+Alice phone\s+fcm\s+offline\s+\d+s ago$`,
		`^262000102\s+Alice desk\s+-\s+active\s+now$`,
		`^262000103\s+-\s+-\s+offline\s+never$`)
	if n := len(rows(r.stdout)); n != 3 {
		t.Errorf("%d rows", n)
	}

	r = must(t, pb.ctl("users", "devices", "2620001", "--json"), exitOK)
	res := decode[struct {
		User      uint32       `json:"user"`
		Terminals []userDevice `json:"terminals"`
	}](t, r.stdout)
	if res.User != 2620001 || len(res.Terminals) != 3 || res.Terminals[0].Platform != "fcm" || res.Terminals[1].State != "active" || res.Terminals[2].LastSeen != nil {
		t.Errorf("user devices --json: %+v", res)
	}

	r = must(t, pb.ctl("user", "devices", "2620009"), exitAPI)
	if strings.TrimSpace(r.stderr) != "brokerctl: user 2620009 has no terminals" {
		t.Errorf("user without terminals: %q", r.stderr)
	}
	for _, args := range [][]string{{"user", "devices"}, {"user", "devices", "x"}, {"user", "devices", "0"}, {"user"}, {"user", "frob"}} {
		r := pb.ctl(args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, "--help)") {
			t.Errorf("%q: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
	r = must(t, runCtl(nil, "user", "--help"), exitOK)
	if !strings.Contains(r.stdout, "brokerctl user devices") {
		t.Errorf("user --help: %q", r.stdout)
	}
}
