package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rewind-broker/rewind/testclient"
)

// waitDone waits for a client's session to end and returns its close code.
func waitDone(t *testing.T, c *testclient.Client) int {
	t.Helper()
	select {
	case <-c.Done():
		return testclient.CloseCode(c.Err())
	case <-testCtx(t).Done():
		t.Fatal("the session is still open")
		return 0
	}
}

func isOpen(c *testclient.Client) bool {
	select {
	case <-c.Done():
		return false
	default:
		return true
	}
}

func TestTerminalPasswd(t *testing.T) {
	b := newTestBroker(t)
	var outputs strings.Builder
	collect := func(r result) result { outputs.WriteString(r.stdout + r.stderr); return r }
	must(t, b.ctl("terminal", "add", "262000101", "--password", "old-pw", "--name", "phone"), exitOK)
	c := b.dial(262000101, "old-pw")

	// From standard input, session left alone.
	r := collect(must(t, b.ctlIn("stdin-pw\nignored\n", "terminal", "passwd", "262000101"), exitOK))
	if r.stdout != "changed the password of terminal 262000101\n" {
		t.Errorf("passwd: %q", r.stdout)
	}
	if err := c.KeepAliveNow(testCtx(t)); err != nil || !isOpen(c) {
		t.Errorf("the session did not survive a passwd without --kick: %v", err)
	}

	// From a file, with --kick: the session is closed with 4403.
	file := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(file, []byte("file-pw\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = collect(must(t, b.ctlIn("not this\n", "terminal", "passwd", "--kick", "262000101", "--password-file", file), exitOK))
	if r.stdout != "changed the password of terminal 262000101 and closed its live session\n" {
		t.Errorf("passwd --kick: %q", r.stdout)
	}
	if code := waitDone(t, c); code != 4403 {
		t.Errorf("kicked with close code %d, want 4403", code)
	}
	if _, err := testclient.Dial(testCtx(t), testclient.Config{URL: b.wsURL, ID: 262000101, Password: "old-pw"}); err == nil {
		t.Error("the old password still logs in")
	}
	c = b.dial(262000101, "file-pw")

	r = collect(must(t, b.ctlIn("json-pw\n", "--json", "terminal", "passwd", "262000101", "--kick"), exitOK))
	res := decode[struct {
		Terminal uint32    `json:"terminal"`
		Updated  time.Time `json:"updated"`
		Kicked   bool      `json:"kicked"`
	}](t, r.stdout)
	if res.Terminal != 262000101 || !res.Kicked || res.Updated.IsZero() {
		t.Errorf("passwd --json: %+v", res)
	}
	waitDone(t, c)
	b.waitNoSession(t, 262000101)
	r = collect(must(t, b.ctlIn("last-pw\n", "terminal", "passwd", "262000101", "--kick"), exitOK))
	if r.stdout != "changed the password of terminal 262000101 (it had no live session)\n" {
		t.Errorf("passwd --kick without a session: %q", r.stdout)
	}
	b.dial(262000101, "last-pw").Close()
	r = collect(must(t, b.ctl("terminal", "show", "262000101"), exitOK))
	matchAll(t, "show after passwd", r.stdout, `^name\s+phone$`)

	r = collect(must(t, b.ctlIn("x\n", "terminal", "passwd", "262000109"), exitAPI))
	if strings.TrimSpace(r.stderr) != "brokerctl: no such terminal" {
		t.Errorf("passwd unknown terminal: %q", r.stderr)
	}
	for _, tc := range []struct{ stdin, want string }{
		{"", "the new password is empty"},
		{"\n", "the new password is empty"},
	} {
		r := collect(must(t, b.ctlIn(tc.stdin, "terminal", "passwd", "262000101"), exitUsage))
		if !strings.Contains(r.stderr, tc.want) || !strings.Contains(r.stderr, "(see brokerctl terminal passwd --help)") {
			t.Errorf("stdin %q: %q", tc.stdin, r.stderr)
		}
	}
	collect(must(t, b.ctl("terminal", "passwd", "262000101", "--password-file", file+".missing"), exitUsage))
	collect(must(t, b.ctl("terminal", "passwd", "262000101", "--password", "x"), exitUsage)) // not on the command line
	collect(must(t, b.ctl("terminal", "passwd"), exitUsage))

	for _, pw := range []string{"stdin-pw", "file-pw", "json-pw", "last-pw"} {
		if strings.Contains(outputs.String(), pw) {
			t.Errorf("password %q was printed:\n%s", pw, outputs.String())
		}
	}
}

func TestKick(t *testing.T) {
	b := newTestBroker(t)
	must(t, b.ctl("terminal", "add", "262000101", "--password", "a"), exitOK)
	c := b.dial(262000101, "a")

	r := must(t, b.ctl("kick", "262000101"), exitOK)
	if r.stdout != "closed the live session of terminal 262000101\n" {
		t.Errorf("kick: %q", r.stdout)
	}
	if code := waitDone(t, c); code != 4403 {
		t.Errorf("close code %d, want 4403", code)
	}
	b.waitNoSession(t, 262000101)
	r = must(t, b.ctl("kick", "262000101"), exitOK)
	if r.stdout != "terminal 262000101 has no live session\n" {
		t.Errorf("kick without a session: %q", r.stdout)
	}
	// It may log in again at once.
	b.dial(262000101, "a")
	r = must(t, b.ctl("--json", "kick", "262000101"), exitOK)
	if res := decode[map[string]any](t, r.stdout); res["terminal"] != float64(262000101) || res["kicked"] != true {
		t.Errorf("kick --json: %v", res)
	}

	r = must(t, b.ctl("kick", "262000109"), exitAPI)
	if strings.TrimSpace(r.stderr) != "brokerctl: no such terminal" {
		t.Errorf("kick unknown: %q", r.stderr)
	}
	must(t, b.ctl("kick"), exitUsage)
	must(t, b.ctl("kick", "0"), exitUsage)
}

func TestTerminalDetach(t *testing.T) {
	pb := newPushBroker(t)
	must(t, pb.ctl("terminal", "add", "262000101", "--password", "a"), exitOK)
	must(t, pb.ctl("terminal", "add", "262000102", "--password", "b"), exitOK)
	pb.phoneGoneIdle(t, 262000101, "a", "fcm")

	r := must(t, pb.ctl("terminal", "detach", "262000101"), exitOK)
	if r.stdout != "detached terminal 262000101 (fcm): no more pushes until it attaches again\n" {
		t.Errorf("detach: %q", r.stdout)
	}
	matchAll(t, "show after detach", must(t, pb.ctl("terminal", "show", "262000101"), exitOK).stdout, `^push attach\s+none$`)
	r = must(t, pb.ctl("send", "262000101", "stored, not pushed", "--from", "9990"), exitOK)
	matchAll(t, "send after detach", r.stdout, `^262000101\s+1\s+offline\s+no_push_channel$`)

	r = must(t, pb.ctl("terminal", "detach", "262000101"), exitAPI)
	if strings.TrimSpace(r.stderr) != "brokerctl: terminal 262000101 has no push attachment" {
		t.Errorf("detach again: %q", r.stderr)
	}

	c, _ := pb.attach(t, 262000102, "b", "apns")
	r = must(t, pb.ctl("--json", "terminal", "detach", "262000102"), exitOK)
	if res := decode[map[string]any](t, r.stdout); res["terminal"] != float64(262000102) || res["detached"] != true || res["platform"] != "apns" {
		t.Errorf("detach --json: %v", res)
	}
	if !isOpen(c) {
		t.Error("detach closed the session")
	}
	r = must(t, pb.ctl("terminal", "detach", "262000109"), exitAPI)
	if strings.TrimSpace(r.stderr) != "brokerctl: no such terminal" {
		t.Errorf("detach unknown: %q", r.stderr)
	}
}
