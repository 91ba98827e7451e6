package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rewind-broker/rewind/broker"
	"github.com/rewind-broker/rewind/registry"
	"github.com/rewind-broker/rewind/testclient"
)

const testKey = "test-admin-key-0123456789"

// testBroker is a real broker: badger in a temp dir, the terminal endpoint and the admin API
// on loopback httptest servers.
type testBroker struct {
	t     *testing.T
	admin *httptest.Server
	wsURL string
}

func newTestBroker(t *testing.T) *testBroker {
	t.Helper()
	return startBroker(t, nil)
}

// startBroker starts a broker; push, when not nil, builds its push configuration from the
// store (store-and-forward and wake-ups enabled).
func startBroker(t *testing.T, push func(*registry.Badger) *broker.PushConfig) *testBroker {
	t.Helper()
	// brokerctl reads these; the developer's own settings must not leak into the tests.
	for _, v := range []string{"REWIND_ADMIN_URL", "REWIND_ADMIN_KEY", "REWIND_ADMIN_KEY_FILE"} {
		t.Setenv(v, "")
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, err := registry.OpenBadger(registry.BadgerConfig{Dir: t.TempDir(), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	cfg := broker.Config{Logger: logger}
	if push != nil {
		cfg.Push = push(store)
	}
	srv, err := broker.New(cfg, store)
	if err != nil {
		store.Close()
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/rewind", srv)
	ws := httptest.NewServer(mux)
	admin := httptest.NewServer(srv.AdminHandler(testKey))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		ws.Close()
		admin.Close()
		store.Close()
	})
	return &testBroker{t: t, admin: admin, wsURL: "ws" + strings.TrimPrefix(ws.URL, "http") + "/rewind"}
}

type result struct {
	code           int
	stdout, stderr string
}

// runCtl runs brokerctl with stdin and args, without adding anything.
func runCtl(stdin io.Reader, args ...string) result {
	var out, errOut bytes.Buffer
	code := run(args, stdin, &out, &errOut)
	return result{code, out.String(), errOut.String()}
}

// ctl runs brokerctl against the broker with the right key; stdin is empty.
func (b *testBroker) ctl(args ...string) result {
	return b.ctlIn("", args...)
}

func (b *testBroker) ctlIn(stdin string, args ...string) result {
	b.t.Helper()
	r := runCtl(strings.NewReader(stdin), append([]string{"--admin-url", b.admin.URL, "--admin-key", testKey}, args...)...)
	b.t.Logf("brokerctl %s → %d\nstdout:\n%sstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	return r
}

// must fails the test unless r exited with code.
func must(t *testing.T, r result, code int) result {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit %d, want %d; stderr: %s", r.code, code, r.stderr)
	}
	return r
}

func (b *testBroker) dial(id uint32, password string) *testclient.Client {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := testclient.Dial(ctx, testclient.Config{URL: b.wsURL, ID: id, Password: password, Description: "test phone"})
	if err != nil {
		b.t.Fatalf("dial %d: %v", id, err)
	}
	b.t.Cleanup(func() { c.Close() })
	return c
}

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, s)
	}
	return v
}

// rows returns the table rows of out (header excluded) split into columns.
func rows(out string) [][]string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var rs [][]string
	for _, l := range lines[1:] {
		rs = append(rs, regexp.MustCompile(`\s{2,}`).Split(strings.TrimSpace(l), -1))
	}
	return rs
}

func TestTerminalLifecycle(t *testing.T) {
	b := newTestBroker(t)

	r := must(t, b.ctl("terminal", "add", "262000101", "--password", "s3cret", "--name", "My phone"), exitOK)
	if want := `created terminal 262000101 (user 2620001, name "My phone")`; strings.TrimSpace(r.stdout) != want {
		t.Errorf("add: %q, want %q", r.stdout, want)
	}
	// Flags before the id, global flags after the command.
	r = must(t, b.ctl("terminal", "add", "--password", "n3w", "262000101", "--json"), exitOK)
	info := decode[broker.TerminalInfo](t, r.stdout)
	if info.ID != 262000101 || info.User != 2620001 || info.Name != "My phone" {
		t.Errorf("add again without --name: %+v; want the name kept", info)
	}

	r = must(t, b.ctl("terminal", "add", "262000101", "--name", "Work phone", "--password", "n3w"), exitOK)
	if !strings.HasPrefix(r.stdout, "updated terminal 262000101 ") || !strings.Contains(r.stdout, "Work phone") {
		t.Errorf("update: %q", r.stdout)
	}

	r = must(t, b.ctl("terminal", "show", "262000101"), exitOK)
	for _, want := range []string{`(?m)^terminal\s+262000101$`, `(?m)^user\s+2620001$`, `(?m)^name\s+Work phone$`,
		`(?m)^created\s+20\d\d-\d\d-\d\d \d\d:\d\d:\d\d UTC \(\d+s ago\)$`, `(?m)^last seen\s+never$`, `(?m)^session\s+none$`} {
		if !regexp.MustCompile(want).MatchString(r.stdout) {
			t.Errorf("show: no %q in\n%s", want, r.stdout)
		}
	}
	r = must(t, b.ctl("--json", "terminal", "show", "262000101"), exitOK)
	if info := decode[broker.TerminalInfo](t, r.stdout); info.ID != 262000101 || info.Name != "Work phone" || info.Session != nil {
		t.Errorf("show --json: %+v", info)
	}

	c := b.dial(262000101, "n3w") // the second add changed the password
	r = must(t, b.ctl("terminal", "rm", "262000101"), exitOK)
	if strings.TrimSpace(r.stdout) != "deleted terminal 262000101 and closed its live session" {
		t.Errorf("rm: %q", r.stdout)
	}
	r = must(t, b.ctl("terminal", "show", "262000101"), exitAPI)
	if r.stdout != "" || strings.TrimSpace(r.stderr) != "brokerctl: no such terminal" {
		t.Errorf("show after rm: stdout %q stderr %q", r.stdout, r.stderr)
	}
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the deleted terminal's session is still open")
	}
	r = must(t, b.ctl("terminal", "rm", "262000101"), exitAPI)
	if !strings.Contains(r.stderr, "no such terminal") {
		t.Errorf("rm again: %q", r.stderr)
	}
	// A new terminal needs a password; the API's message is passed on.
	r = must(t, b.ctl("terminal", "add", "262000102", "--name", "x"), exitAPI)
	if !strings.Contains(r.stderr, "password is required for a new terminal") {
		t.Errorf("add without password: %q", r.stderr)
	}
}

func TestTerminalList(t *testing.T) {
	b := newTestBroker(t)
	must(t, b.ctl("terminal", "list"), exitOK)
	if r := b.ctl("terminal", "list"); strings.TrimSpace(r.stdout) != "no terminals" {
		t.Errorf("empty list: %q", r.stdout)
	}
	ids := []string{"1001", "262000101", "262000102"}
	for _, id := range ids {
		must(t, b.ctl("terminal", "add", id, "--password", "pw-"+id), exitOK)
	}

	r := must(t, b.ctl("terminal", "list"), exitOK)
	if !strings.HasPrefix(r.stdout, "TERMINAL") || !regexp.MustCompile(`(?m)^262000102\s+2620001\s+-\s+\d+s ago\s+never$`).MatchString(r.stdout) {
		t.Errorf("list:\n%s", r.stdout)
	}
	if got := rows(r.stdout); len(got) != 3 || r.stderr != "" {
		t.Errorf("list: %d rows, stderr %q", len(got), r.stderr)
	}

	r = must(t, b.ctl("terminal", "list", "--limit", "1"), exitOK)
	if got := rows(r.stdout); len(got) != 1 || got[0][0] != "1001" {
		t.Errorf("--limit 1: %q", got)
	}
	if !strings.Contains(r.stderr, "--after 1001") {
		t.Errorf("--limit 1: no paging hint: %q", r.stderr)
	}
	r = must(t, b.ctl("terminal", "list", "--limit", "1", "--after", "1001"), exitOK)
	if got := rows(r.stdout); len(got) != 1 || got[0][0] != "262000101" {
		t.Errorf("--after 1001: %q", got)
	}
	r = must(t, b.ctl("terminal", "list", "--limit", "1", "--all"), exitOK)
	var got []string
	for _, row := range rows(r.stdout) {
		got = append(got, row[0])
	}
	if strings.Join(got, " ") != strings.Join(ids, " ") || r.stderr != "" {
		t.Errorf("--all: %q, stderr %q", got, r.stderr)
	}

	r = must(t, b.ctl("terminal", "list", "--json", "--limit", "2"), exitOK)
	p := decode[broker.Page[broker.TerminalInfo]](t, r.stdout)
	if len(p.Items) != 2 || p.Next == nil || *p.Next != 262000101 {
		t.Errorf("--json --limit 2: %+v", p)
	}
	r = must(t, b.ctl("terminal", "list", "--json", "--limit", "1", "--all"), exitOK)
	p = decode[broker.Page[broker.TerminalInfo]](t, r.stdout)
	if len(p.Items) != 3 || p.Next != nil || p.Items[2].ID != 262000102 {
		t.Errorf("--json --all: %+v", p)
	}
	r = must(t, b.ctl("terminal", "list", "--json", "--after", "262000102"), exitOK)
	if strings.TrimSpace(r.stdout) != "{\n  \"items\": []\n}" {
		t.Errorf("--json empty page: %q", r.stdout)
	}
}

func TestSessions(t *testing.T) {
	b := newTestBroker(t)
	r := must(t, b.ctl("sessions"), exitOK)
	if strings.TrimSpace(r.stdout) != "no sessions" {
		t.Errorf("no sessions: %q", r.stdout)
	}
	r = must(t, b.ctl("sessions", "--json"), exitOK)
	if p := decode[broker.Page[broker.SessionInfo]](t, r.stdout); p.Items == nil || len(p.Items) != 0 {
		t.Errorf("--json with no sessions: %q", r.stdout)
	}

	must(t, b.ctl("terminal", "add", "262000101", "--password", "s3cret"), exitOK)
	must(t, b.ctl("terminal", "add", "262000102", "--password", "s3cret2"), exitOK)
	c := b.dial(262000101, "s3cret")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Subscribe(ctx, 91); err != nil {
		t.Fatal(err)
	}
	b.dial(262000102, "s3cret2")

	r = must(t, b.ctl("sessions"), exitOK)
	header := regexp.MustCompile(`^TERMINAL\s+USER\s+STATE\s+PLATFORM\s+CLIENT\s+REMOTE\s+SINCE\s+LAST KEEPALIVE\s+QUEUE\s+TALKGROUPS\n`)
	row := regexp.MustCompile(`(?m)^262000101\s+2620001\s+active\s+none\s+test phone\s+127\.0\.0\.1\S*\s+\d+s\s+\d+s ago\s+0\s+91$`)
	if !header.MatchString(r.stdout) || !row.MatchString(r.stdout) || len(rows(r.stdout)) != 2 {
		t.Errorf("sessions:\n%s", r.stdout)
	}
	// Filters are passed to the broker: both sessions are active and have no push attach.
	if r = must(t, b.ctl("sessions", "--state", "active", "--platform", "none"), exitOK); len(rows(r.stdout)) != 2 {
		t.Errorf("sessions --state active --platform none:\n%s", r.stdout)
	}
	if r = must(t, b.ctl("sessions", "--state", "idle"), exitOK); !strings.Contains(r.stdout, "no sessions") {
		t.Errorf("sessions --state idle:\n%s", r.stdout)
	}
	if r = must(t, b.ctl("sessions", "--platform", "fcm", "--all"), exitOK); !strings.Contains(r.stdout, "no sessions") {
		t.Errorf("sessions --platform fcm:\n%s", r.stdout)
	}
	if r = must(t, b.ctl("sessions", "--state", "asleep"), exitAPI); !strings.Contains(r.stderr, "state") {
		t.Errorf("sessions --state asleep: %s", r.stderr)
	}
	r = must(t, b.ctl("sessions", "--limit", "1", "--all"), exitOK)
	if len(rows(r.stdout)) != 2 || r.stderr != "" {
		t.Errorf("sessions --limit 1 --all:\n%s", r.stdout)
	}
	r = must(t, b.ctl("sessions", "--limit", "1"), exitOK)
	if len(rows(r.stdout)) != 1 || !strings.Contains(r.stderr, "--after 262000101") {
		t.Errorf("sessions --limit 1:\n%s%s", r.stdout, r.stderr)
	}
	r = must(t, b.ctl("--json", "sessions"), exitOK)
	p := decode[broker.Page[broker.SessionInfo]](t, r.stdout)
	if len(p.Items) != 2 || p.Items[0].Terminal != 262000101 || len(p.Items[0].Talkgroups) != 1 || p.Items[0].Session == "" {
		t.Errorf("sessions --json: %+v", p)
	}

	r = must(t, b.ctl("terminal", "show", "262000101"), exitOK)
	for _, want := range []string{`(?m)^session\s+` + p.Items[0].Session + `$`, `(?m)^  client\s+test phone$`, `(?m)^  talkgroups\s+91$`, `(?m)^  state\s+active$`, `(?m)^  last keepalive\s+\d+s ago$`} {
		if !regexp.MustCompile(want).MatchString(r.stdout) {
			t.Errorf("show with session: no %q in\n%s", want, r.stdout)
		}
	}

	r = must(t, b.ctl("terminal", "rm", "262000101"), exitOK)
	if strings.TrimSpace(r.stdout) != "deleted terminal 262000101 and closed its live session" {
		t.Errorf("rm with session: %q", r.stdout)
	}
	select {
	case <-c.Done():
	case <-ctx.Done():
		t.Fatal("session of the deleted terminal still open")
	}
	r = must(t, b.ctl("--json", "terminal", "rm", "262000102"), exitOK)
	if res := decode[map[string]any](t, r.stdout); res["deleted"] != float64(262000102) || res["session_closed"] != true {
		t.Errorf("rm --json: %v", res)
	}
}

func TestPasswordSources(t *testing.T) {
	b := newTestBroker(t)
	const secret = "pipe-s3cret"
	var outputs strings.Builder
	collect := func(r result) result { outputs.WriteString(r.stdout + r.stderr); return r }

	collect(must(t, b.ctlIn(secret+"\nignored second line\n", "terminal", "add", "262000101", "--name", "piped"), exitOK))
	b.dial(262000101, secret).Close()

	file := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(file, []byte(secret+"-file\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	collect(must(t, b.ctlIn("not this\n", "terminal", "add", "262000101", "--password-file", file), exitOK))
	b.dial(262000101, secret+"-file").Close()

	// Empty stdin: only the name changes; the password stays.
	r := collect(must(t, b.ctl("terminal", "add", "262000101", "--name", "renamed"), exitOK))
	if !strings.Contains(r.stdout, `updated terminal 262000101 (user 2620001, name "renamed")`) {
		t.Errorf("rename: %q", r.stdout)
	}
	b.dial(262000101, secret+"-file").Close()

	for _, args := range [][]string{
		{"terminal", "show", "262000101"},
		{"--json", "terminal", "show", "262000101"},
		{"--json", "terminal", "list"},
		{"--json", "sessions"},
		{"--json", "terminal", "add", "262000101", "--password", secret},
	} {
		collect(must(t, b.ctl(args...), exitOK))
	}
	if strings.Contains(outputs.String(), secret) {
		t.Errorf("a password was printed:\n%s", outputs.String())
	}

	r = must(t, b.ctl("terminal", "add", "262000101", "--password", "a", "--password-file", file), exitUsage)
	if !strings.Contains(r.stderr, "alternatives") {
		t.Errorf("both password flags: %q", r.stderr)
	}
	must(t, b.ctl("terminal", "add", "262000101", "--password-file", file+".missing"), exitUsage)
}

func TestExitCodes(t *testing.T) {
	b := newTestBroker(t)

	t.Run("wrong key", func(t *testing.T) {
		r := must(t, runCtl(nil, "--admin-url", b.admin.URL, "--admin-key", "wrong", "sessions"), exitAuth)
		if !strings.Contains(r.stderr, "authentication refused: missing or wrong admin key") || r.stdout != "" {
			t.Errorf("stderr %q", r.stderr)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		dead := httptest.NewServer(http.NotFoundHandler())
		dead.Close()
		r := must(t, runCtl(nil, "--admin-url", dead.URL, "--admin-key", testKey, "sessions"), exitUnreachable)
		if !strings.Contains(r.stderr, "cannot reach the broker at "+dead.URL) {
			t.Errorf("stderr %q", r.stderr)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		stuck := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
		defer stuck.Close()
		r := must(t, runCtl(nil, "--admin-url", stuck.URL, "--admin-key", testKey, "--timeout", "50ms", "sessions"), exitUnreachable)
		if !strings.Contains(r.stderr, "no answer within 50ms") {
			t.Errorf("stderr %q", r.stderr)
		}
	})
	t.Run("server error", func(t *testing.T) {
		for _, tc := range []struct{ body, want string }{
			{`{"error": "registry error"}`, "brokerctl: registry error\n"},
			{"<html>Bad Gateway</html>", "brokerctl: 502 Bad Gateway: <html>Bad Gateway</html>\n"},
		} {
			fail := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusBadGateway)
				io.WriteString(w, tc.body)
			}))
			r := must(t, runCtl(nil, "--admin-url", fail.URL, "--admin-key", testKey, "terminal", "list"), exitAPI)
			fail.Close()
			if r.stderr != tc.want {
				t.Errorf("stderr %q, want %q", r.stderr, tc.want)
			}
		}
	})
	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{
			{},
			{"frobnicate"},
			{"terminal"},
			{"terminal", "frob"},
			{"--bogus", "sessions"},
			{"sessions", "--bogus"},
			{"sessions", "extra"},
			{"sessions", "--limit", "-1"},
			{"sessions", "--limit", "1001"},
			{"sessions", "--after", "4294967296"},
			{"terminal", "show"},
			{"terminal", "show", "1", "2"},
			{"terminal", "show", "abc"},
			{"terminal", "show", "0"},
			{"terminal", "rm", "4294967296"},
			{"--timeout", "0s", "sessions"},
			{"--admin-url", "ftp://x", "sessions"},
			{"--admin-key-file", "/nonexistent/admin.key", "sessions"},
		} {
			r := runCtl(nil, append([]string{"--admin-url", b.admin.URL, "--admin-key", testKey}, args...)...)
			if len(args) > 0 && args[0] == "--admin-key-file" {
				r = runCtl(nil, append([]string{"--admin-url", b.admin.URL}, args...)...)
			}
			if r.code != exitUsage || !strings.Contains(r.stderr, "--help)") || r.stdout != "" {
				t.Errorf("%q: exit %d, stdout %q, stderr %q", args, r.code, r.stdout, r.stderr)
			}
		}
	})
	t.Run("no key", func(t *testing.T) {
		r := must(t, runCtl(nil, "--admin-url", b.admin.URL, "sessions"), exitUsage)
		if !strings.Contains(r.stderr, "no admin key") {
			t.Errorf("stderr %q", r.stderr)
		}
	})
}

func TestKeyAndURLFromEnvironment(t *testing.T) {
	b := newTestBroker(t)
	keyFile := filepath.Join(t.TempDir(), "admin.key")
	if err := os.WriteFile(keyFile, []byte(testKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("REWIND_ADMIN_URL", strings.TrimPrefix(b.admin.URL, "http://")) // scheme optional
	t.Setenv("REWIND_ADMIN_KEY_FILE", keyFile)
	must(t, runCtl(nil, "sessions"), exitOK)

	t.Setenv("REWIND_ADMIN_KEY", "wrong") // $REWIND_ADMIN_KEY comes before the file variable
	must(t, runCtl(nil, "sessions"), exitAuth)
	must(t, runCtl(nil, "--admin-key-file", keyFile, "sessions"), exitOK) // a flag wins
	must(t, runCtl(nil, "--admin-key", testKey, "--admin-key-file", keyFile, "sessions"), exitUsage)
}

func TestHelp(t *testing.T) {
	t.Setenv("REWIND_ADMIN_KEY", "")
	r := must(t, runCtl(nil, "--help"), exitOK)
	for _, want := range []string{"USAGE", "terminal add", "sessions", "EXIT STATUS", "4  authentication refused", "$REWIND_ADMIN_KEY_FILE", "EXAMPLES"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("brokerctl --help: no %q", want)
		}
	}
	if r2 := must(t, runCtl(nil, "help"), exitOK); r2.stdout != r.stdout {
		t.Error("brokerctl help differs from --help")
	}
	for _, cmd := range commands {
		args := append(strings.Fields(cmd.path), "--help")
		r := must(t, runCtl(nil, args...), exitOK)
		if r.stdout != cmd.manual || !strings.Contains(r.stdout, "EXAMPLES") || !strings.Contains(r.stdout, "EXIT STATUS") {
			t.Errorf("%s --help: %q", cmd.path, r.stdout)
		}
		r = must(t, runCtl(nil, append([]string{"help"}, strings.Fields(cmd.path)...)...), exitOK)
		if r.stdout != cmd.manual {
			t.Errorf("help %s: %q", cmd.path, r.stdout)
		}
	}
	r = must(t, runCtl(nil, "terminal", "--help"), exitOK)
	if !strings.Contains(r.stdout, "brokerctl terminal add") {
		t.Errorf("terminal --help: %q", r.stdout)
	}
}

// TestManualsMentionFlags keeps the hand-written manuals in step with the flags.
func TestManualsMentionFlags(t *testing.T) {
	for _, cmd := range commands {
		c := &cli{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard, now: time.Now}
		if err := cmd.run(c, cmd, []string{"--help"}); err != errHelpShown {
			t.Fatalf("%s --help: %v", cmd.path, err)
		}
		c.fs.VisitAll(func(f *flag.Flag) {
			manual := cmd.manual
			if strings.HasPrefix(f.Name, "admin-") || f.Name == "json" || f.Name == "timeout" {
				manual = toolManual()
			}
			if !strings.Contains(manual, "--"+f.Name+" ") {
				t.Errorf("%s: flag --%s is not in the manual", cmd.path, f.Name)
			}
		})
	}
}
