package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/rewind-broker/rewind/protocol"
)

func TestSend(t *testing.T) {
	pb := newPushBroker(t)
	for _, id := range []string{"262000101", "262000102", "262000103"} {
		must(t, pb.ctl("terminal", "add", id, "--password", "pw-"+id), exitOK)
	}
	device := pb.phoneGoneIdle(t, 262000101, "pw-262000101", "fcm")
	live := pb.dial(262000102, "pw-262000102")

	// Offline with a push channel: stored, one push.
	r := must(t, pb.ctl("send", "262000101", "hello 📻", "--from", "2620009"), exitOK)
	if !regexp.MustCompile(`^TERMINAL\s+SEQUENCE\s+STATE\s+PUSH\n262000101\s+1\s+offline\s+sent\n$`).MatchString(r.stdout) {
		t.Errorf("send to an offline terminal:\n%s", r.stdout)
	}
	p, err := pb.providers.Next(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if p.DeviceToken != device {
		t.Errorf("push to %q, want %q", p.DeviceToken, device)
	}

	// Active: delivered over the socket, as a stored datagram from --from.
	r = must(t, pb.ctl("--json", "send", "--from", "2620009", "262000102", "on the air"), exitOK)
	res := decode[publishResult](t, r.stdout)
	if res.Terminal != 262000102 || res.Sequence != 1 || res.State != "active" || res.Push != "not_needed" {
		t.Errorf("send --json to an active terminal: %+v", res)
	}
	msg, d, err := live.RecvText(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if msg.Text != "on the air" || msg.Source != 2620009 || msg.Destination != 262000102 || msg.Option != protocol.OptionPrivate || d.Number != 1 {
		t.Errorf("received %+v (number %d)", msg, d.Number)
	}

	// Every terminal of the user; one was never attached.
	r = must(t, pb.ctl("send", "--user", "2620001", "net at 20:00", "--from", "9990"), exitOK)
	got := rows(r.stdout)
	// The push for the first text is within the broker's quiet period: no second push.
	if len(got) != 3 || strings.Join(got[0], " ") != "262000101 2 offline already_pending" ||
		strings.Join(got[1], " ") != "262000102 2 active not_needed" || strings.Join(got[2], " ") != "262000103 1 offline no_push_channel" {
		t.Errorf("send --user:\n%s", r.stdout)
	}
	r = must(t, pb.ctl("send", "--user", "2620001", "again", "--from", "9990", "--json"), exitOK)
	if up := decode[userPublish](t, r.stdout); len(up.Results) != 3 || up.Results[2].Terminal != 262000103 || up.Results[2].Sequence != 2 {
		t.Errorf("send --user --json: %+v", up)
	}

	r = must(t, pb.ctl("send", "262000199", "x", "--from", "1"), exitAPI)
	if strings.TrimSpace(r.stderr) != "brokerctl: no such terminal" {
		t.Errorf("send to an unknown terminal: %q", r.stderr)
	}
	r = must(t, pb.ctl("send", "--user", "2620002", "x", "--from", "1"), exitAPI)
	if !strings.Contains(r.stderr, "no such terminal") {
		t.Errorf("send to a user without terminals: %q", r.stderr)
	}

	for _, args := range [][]string{
		{"send", "262000101", "no from"},
		{"send", "262000101", "x", "--from", "0"},
		{"send", "262000101", "", "--from", "1"},
		{"send", "262000101", "--from", "1"},
		{"send", "262000101", "two", "words", "--from", "1"},
		{"send", "--user", "2620001", "262000101", "x", "--from", "1"},
		{"send", "--user", "0", "x", "--from", "1"},
		{"send", "x", "text", "--from", "1"},
	} {
		r := pb.ctl(args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, "(see brokerctl send --help)") || r.stdout != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, r.code, r.stdout, r.stderr)
		}
	}
}

func TestSendWithoutPush(t *testing.T) {
	b := newTestBroker(t)
	must(t, b.ctl("terminal", "add", "262000101", "--password", "pw"), exitOK)
	r := must(t, b.ctl("send", "262000101", "x", "--from", "1"), exitAPI)
	if !strings.Contains(r.stderr, "store-and-forward is not enabled on this broker") {
		t.Errorf("send without push: %q", r.stderr)
	}
}
