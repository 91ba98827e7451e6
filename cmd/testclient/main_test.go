package main

import (
	"bytes"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// closedURL is a loopback port nothing listens on: dialing it fails at once.
const closedURL = "ws://127.0.0.1:1/rewind"

func runWith(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(t.Context(), args, func(k string) string { return env[k] }, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestHelp(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--help"}, []string{"testclient send", "testclient listen", "testclient load", "EXIT CODES", "REWIND_PASSWORD"}},
		{[]string{"help"}, []string{"USAGE"}},
		{[]string{"help", "send"}, []string{"testclient send - ", "--to ID", "--group TALKGROUP", "--wait DURATION", "(REWIND_ID)", "EXAMPLES", "3 no status"}},
		{[]string{"send", "--help"}, []string{"testclient send - ", "--password STRING  (REWIND_PASSWORD)"}},
		{[]string{"send", "-h"}, []string{"testclient send - "}},
		{[]string{"listen", "--help"}, []string{"testclient listen - ", "--group TALKGROUP", "DELIVERY_ACK", "4409", "--attach-url URL", "--attach-token TOKEN"}},
		{[]string{"load", "--help"}, []string{"testclient load - ", "--admin-key STRING  (REWIND_ADMIN_KEY)", `--admin-url STRING  (REWIND_ADMIN_URL, default "http://127.0.0.1:4001")`,
			"--sources", "--broker-pid PID", "--json", "--allow-remote", "p50/p99/max", "/proc/PID/status",
			"--idle-share FLOAT", "--publish-rate FLOAT", "--wake-cycles INT", "/dev/pushes/stream", "broker started with --dev",
			"--attach", "connect + challenge + auth", "--cpuprofile FILE", "--processes INT", "SEVERAL PROCESSES"}},
	} {
		code, out, errOut := runWith(t, nil, tc.args...)
		if code != exitOK || errOut != "" {
			t.Errorf("%v: exit %d, stderr %q", tc.args, code, errOut)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v: help lacks %q", tc.args, w)
			}
		}
		if strings.Contains(out, "%!") {
			t.Errorf("%v: formatting error in help:\n%s", tc.args, out)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	full := map[string]string{"REWIND_ID": "262000101", "REWIND_PASSWORD": "pw", "REWIND_URL": closedURL}
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no command", nil, nil, "USAGE"},
		{"unknown command", nil, []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"unknown flag", full, []string{"send", "--bogus", "x"}, "flag provided but not defined: -bogus"},
		{"no id", map[string]string{"REWIND_PASSWORD": "pw"}, []string{"send", "--to", "1", "x"}, "--id (or REWIND_ID) is required"},
		{"no password", nil, []string{"send", "--id", "1", "--to", "2", "x"}, "--password (or REWIND_PASSWORD) is required"},
		{"bad id env", map[string]string{"REWIND_ID": "abc"}, []string{"send"}, `REWIND_ID="abc"`},
		{"id too big", full, []string{"send", "--id", "4294967296", "--to", "2", "x"}, "invalid value"},
		{"no destination", full, []string{"send", "x"}, "exactly one of --to and --group"},
		{"two destinations", full, []string{"send", "--to", "1", "--group", "91", "x"}, "exactly one of --to and --group"},
		{"no text", full, []string{"send", "--to", "1"}, "no TEXT"},
		{"bad wait", full, []string{"send", "--to", "1", "--wait", "0s", "x"}, "--wait must be positive"},
		{"http url", full, []string{"send", "--url", "http://127.0.0.1/rewind", "--to", "1", "x"}, "want ws:// or wss://"},
		{"listen argument", full, []string{"listen", "extra"}, `unexpected argument "extra"`},
		{"listen bad group", full, []string{"listen", "--group", "91,x"}, "invalid value"},
		{"listen attach url only", full, []string{"listen", "--attach-url", "https://t.example"}, "--attach-url and --attach-token go together"},
		{"listen attach token only", full, []string{"listen", "--attach-token", "tok"}, "--attach-url and --attach-token go together"},
		{"listen attach url space", full, []string{"listen", "--attach-url", "https://a b", "--attach-token", "tok"}, "contains a space"},
		{"load without key", nil, []string{"load"}, "--admin-key (or REWIND_ADMIN_KEY) is required"},
		{"load remote", nil, []string{"load", "--no-create", "--url", "ws://192.0.2.7:4000/rewind"}, "not a loopback address"},
		{"load remote admin", map[string]string{"REWIND_ADMIN_KEY": "k"}, []string{"load", "--admin-url", "http://192.0.2.7:4001"}, "not a loopback address"},
		{"load too many", nil, []string{"load", "--no-create", "--terminals", "1000000"}, "terminals must be"},
		{"load too long", nil, []string{"load", "--no-create", "--duration", "3h"}, "duration must be"},
		{"load sources", nil, []string{"load", "--no-create", "--sources", "300"}, "sources must be"},
		{"load publish without key", nil, []string{"load", "--no-create", "--publish-rate", "10"}, "--publish-rate, --idle-share and --attach need --admin-key"},
		{"load idle share", map[string]string{"REWIND_ADMIN_KEY": "k"}, []string{"load", "--idle-share", "2"}, "idle share must be 0…1"},
		{"load processes", map[string]string{"REWIND_ADMIN_KEY": "k"}, []string{"load", "--processes", "17"}, "--processes must be 1…16"},
		{"load processes split", map[string]string{"REWIND_ADMIN_KEY": "k"}, []string{"load", "--processes", "3", "--terminals", "10"}, "must split into 3 equal shares"},
		{"load processes odd share", map[string]string{"REWIND_ADMIN_KEY": "k"}, []string{"load", "--processes", "2", "--terminals", "6"}, "of an even size"},
		{"load processes idle", map[string]string{"REWIND_ADMIN_KEY": "k"}, []string{"load", "--processes", "2", "--terminals", "8", "--idle-share", "0.5"}, "run in one process"},
		{"load wake without idle", map[string]string{"REWIND_ADMIN_KEY": "k"}, []string{"load", "--wake-cycles", "5"}, "wake cycles need idle terminals"},
	} {
		code, out, errOut := runWith(t, tc.env, tc.args...)
		if code != exitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want exit 2 and %q (stdout %q)", tc.name, code, errOut, tc.want, out)
		}
	}
}

// A flag on the command line wins over its environment variable: with a broken REWIND_URL the
// command still gets as far as dialing the --url given.
func TestFlagBeatsEnvironment(t *testing.T) {
	env := map[string]string{"REWIND_ID": "262000101", "REWIND_PASSWORD": "pw", "REWIND_URL": "http://wrong"}
	if code, _, errOut := runWith(t, env, "send", "--to", "1", "x"); code != exitUsage || !strings.Contains(errOut, "http://wrong") {
		t.Fatalf("environment URL not used: exit %d, %q", code, errOut)
	}
	code, _, errOut := runWith(t, env, "send", "--url", closedURL, "--to", "1", "x")
	if code != exitFailed || !strings.Contains(errOut, "dial refused") {
		t.Errorf("exit %d, stderr %q; want exit 1 after a failed dial", code, errOut)
	}
}

func TestListenBrokerDown(t *testing.T) {
	env := map[string]string{"REWIND_ID": "262000101", "REWIND_PASSWORD": "pw", "REWIND_URL": closedURL}
	if code, _, errOut := runWith(t, env, "listen", "--group", "91", "--group", "92,93"); code != exitFailed || errOut == "" {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestLoadAdminDown(t *testing.T) {
	code, _, errOut := runWith(t, map[string]string{"REWIND_ADMIN_KEY": "k"},
		"load", "--quiet", "--terminals", "2", "--admin-url", "http://127.0.0.1:1", "--url", closedURL)
	if code != exitFailed || !strings.Contains(errOut, "no terminal could be created") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestUint32List(t *testing.T) {
	var l uint32List
	if err := l.Set("91, 92"); err != nil {
		t.Fatal(err)
	}
	if err := l.Set("93"); err != nil {
		t.Fatal(err)
	}
	if l.String() != "91,92,93" {
		t.Errorf("list = %s", l.String())
	}
}
