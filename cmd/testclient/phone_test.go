package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestPhoneHelp(t *testing.T) {
	code, out, errOut := runWith(t, nil, "phone", "--help")
	if code != exitOK || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{"testclient phone - ", "1. Start", "2. Idle", "3. Push", "4. Wake",
		`go run ./cmd/testclient send --id OTHER-ID --password PW2 --to ID "hello"`, "push received: type data enc aes128gcm",
		"exits 0", "Exit code 3", "/dev/pushes/next", "brokerctl", "--platform STRING", "--once",
		`--admin-url STRING  (REWIND_ADMIN_URL, default "http://127.0.0.1:4001")`, "--password STRING  (REWIND_PASSWORD)"} {
		if !strings.Contains(out, want) {
			t.Errorf("phone help lacks %q", want)
		}
	}
	if strings.Contains(out, "%!") {
		t.Errorf("formatting error in help:\n%s", out)
	}
	if _, out, _ := runWith(t, nil, "--help"); !strings.Contains(out, "testclient phone") {
		t.Error("the manual does not list phone")
	}
}

func TestPhoneUsageErrors(t *testing.T) {
	full := map[string]string{"REWIND_ID": "262000201", "REWIND_PASSWORD": "pw", "REWIND_URL": closedURL}
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no id", map[string]string{"REWIND_PASSWORD": "pw"}, []string{"phone"}, "--id (or REWIND_ID) is required"},
		{"bad platform", full, []string{"phone", "--platform", "webpush"}, `--platform "webpush": want fcm or apns`},
		{"bad admin url", full, []string{"phone", "--admin-url", "127.0.0.1:4001"}, "want http://HOST:PORT"},
		{"argument", full, []string{"phone", "extra"}, `unexpected argument "extra"`},
	} {
		code, out, errOut := runWith(t, tc.env, tc.args...)
		if code != exitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want exit 2 and %q (stdout %q)", tc.name, code, errOut, tc.want, out)
		}
	}
}

func TestPhoneAdminDown(t *testing.T) {
	env := map[string]string{"REWIND_ID": "262000201", "REWIND_PASSWORD": "pw", "REWIND_URL": closedURL}
	code, _, errOut := runWith(t, env, "phone", "--admin-url", "http://127.0.0.1:1")
	if code != exitFailed || !strings.Contains(errOut, "register a device") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

// A broker without --dev answers /dev/devices like any unknown admin path: 401 without a key.
func TestPhoneBrokerWithoutDev(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
	}))
	defer srv.Close()
	env := map[string]string{"REWIND_ID": "262000201", "REWIND_PASSWORD": "pw", "REWIND_URL": closedURL}
	code, _, errOut := runWith(t, env, "phone", "--admin-url", srv.URL)
	if code != exitFailed || !strings.Contains(errOut, "is the broker running with --dev?") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}
