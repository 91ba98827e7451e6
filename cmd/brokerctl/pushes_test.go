package main

import (
	"regexp"
	"strings"
	"testing"
)

func TestPushes(t *testing.T) {
	pb := newPushBroker(t)
	must(t, pb.ctl("terminal", "add", "262000101", "--password", "a"), exitOK)
	must(t, pb.ctl("terminal", "add", "262000102", "--password", "b"), exitOK)

	r := must(t, pb.ctl("pushes", "262000101"), exitOK)
	if r.stdout != "no pushes recorded for terminal 262000101\n" || r.stderr != "" {
		t.Errorf("pushes with none: %q %q", r.stdout, r.stderr)
	}

	device := pb.phoneGoneIdle(t, 262000101, "a", "fcm")
	matchAll(t, "send", must(t, pb.ctl("send", "262000101", "one", "--from", "9990"), exitOK).stdout, `^262000101\s+1\s+offline\s+sent$`)
	if _, err := pb.providers.Next(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	// The phone comes back and acknowledges: the next text needs a new push.
	c := pb.dial(262000101, "a")
	if _, err := c.RecvStored(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := c.Ack(testCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	if err := c.Idle(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	c.Abort()
	pb.waitNoSession(t, 262000101)
	matchAll(t, "send", must(t, pb.ctl("send", "262000101", "two", "--from", "9990"), exitOK).stdout, `^262000101\s+2\s+offline\s+sent$`)

	r = must(t, pb.ctl("pushes", "262000101"), exitOK)
	header := regexp.MustCompile(`^TIME\s+PLATFORM\s+OUTCOME\s+LATENCY\s+MESSAGE ID\s+REASON\n`)
	row := `^20\d\d-\d\d-\d\d \d\d:\d\d:\d\dZ\s+fcm\s+sent\s+[\d.]+(µs|ms|s)\s+projects/rewind-dmr-app/messages/\S+\s+-$`
	if !header.MatchString(r.stdout) || len(rows(r.stdout)) != 2 || r.stderr != "" {
		t.Errorf("pushes:\n%s%s", r.stdout, r.stderr)
	}
	matchAll(t, "pushes", r.stdout, row)
	if strings.Contains(r.stdout, device) {
		t.Errorf("pushes printed the device token:\n%s", r.stdout)
	}

	// Paging: one record, and where the next page starts.
	r = must(t, pb.ctl("pushes", "262000101", "--limit", "1"), exitOK)
	m := regexp.MustCompile(`^older pushes: add --before (\S+)\n$`).FindStringSubmatch(r.stderr)
	if len(rows(r.stdout)) != 1 || m == nil {
		t.Fatalf("--limit 1:\n%s%s", r.stdout, r.stderr)
	}
	newest := rows(r.stdout)[0]
	r = must(t, pb.ctl("pushes", "262000101", "--limit", "1", "--before", m[1]), exitOK)
	if got := rows(r.stdout); len(got) != 1 || strings.Join(got[0], " ") == strings.Join(newest, " ") {
		t.Errorf("--before %s: %q (newest %q)", m[1], got, newest)
	}

	r = must(t, pb.ctl("--json", "pushes", "262000101"), exitOK)
	res := decode[struct {
		Pushes []struct {
			Terminal  uint32  `json:"terminal"`
			Platform  string  `json:"platform"`
			Outcome   string  `json:"outcome"`
			MessageID string  `json:"message_id"`
			LatencyMS float64 `json:"latency_ms"`
			Kind      string  `json:"kind"`
		} `json:"pushes"`
	}](t, r.stdout)
	if len(res.Pushes) != 2 || res.Pushes[0].Terminal != 262000101 || res.Pushes[0].Outcome != "sent" || res.Pushes[0].MessageID == "" || res.Pushes[0].LatencyMS <= 0 {
		t.Errorf("pushes --json: %+v", res)
	}

	// terminal show carries the newest record.
	r = must(t, pb.ctl("terminal", "show", "262000101"), exitOK)
	matchAll(t, "show", r.stdout, `^last push\s+20\d\d-\d\d-\d\d \d\d:\d\d:\d\d UTC \(\d+s ago\)$`, `^  platform\s+fcm$`, `^  outcome\s+sent$`,
		`^  kind\s+data$`, `^  latency\s+[\d.]+(µs|ms|s)$`, `^  message id\s+projects/rewind-dmr-app/messages/\S+$`)
	r = must(t, pb.ctl("terminal", "show", "262000102"), exitOK)
	matchAll(t, "show without pushes", r.stdout, `^last push\s+none$`)

	r = must(t, pb.ctl("pushes", "262000109"), exitAPI)
	if strings.TrimSpace(r.stderr) != "brokerctl: no such terminal" {
		t.Errorf("pushes unknown terminal: %q", r.stderr)
	}
	for _, args := range [][]string{{"pushes"}, {"pushes", "x"}, {"pushes", "262000101", "--limit", "-1"}, {"pushes", "262000101", "--before", "yesterday"}} {
		if r := pb.ctl(args...); r.code != exitUsage || !strings.Contains(r.stderr, "(see brokerctl pushes --help)") {
			t.Errorf("%q: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
}

func TestPushesWithoutPush(t *testing.T) {
	b := newTestBroker(t)
	must(t, b.ctl("terminal", "add", "262000101", "--password", "a"), exitOK)
	r := must(t, b.ctl("pushes", "262000101"), exitAPI)
	if !strings.Contains(r.stderr, "no push audit trail") {
		t.Errorf("pushes without push: %q", r.stderr)
	}
}
