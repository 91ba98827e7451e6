package pushsim

import (
	"crypto/tls"
	"net/http"
	"strings"
	"testing"
)

// TestFCMProcess starts this test binary as a fake FCM in a child process, sends it one push and
// one with an unknown bearer, and stops it.
func TestFCMProcess(t *testing.T) {
	p, err := StartFCMProcess(testContext(t), "", "proj-a", 3)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := p.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	if p.Pid() <= 0 || !strings.HasPrefix(p.URL, "https://127.0.0.1:") || p.Bearer == "" || p.Device == "" ||
		len(p.Devices) != 3 || p.Devices[0] != p.Device || p.Devices[1] == p.Device {
		t.Fatalf("process %+v", p)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.CertPool()}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	send := func(bearer string) answer {
		req := newRequest(t, http.MethodPost, p.URL+"/v1/projects/proj-a/messages:send",
			`{"message":{"token":"`+p.Device+`","data":{"type":"wake"}}}`)
		req.Header.Set("Authorization", "Bearer "+bearer)
		return do(t, c, req)
	}
	if a := send(p.Bearer); a.status != http.StatusOK || a.proto != 2 || !strings.HasPrefix(a.body, `{"name":"projects/proj-a/messages/`) {
		t.Errorf("push: %+v", a)
	}
	if a := send("ya29.unknown"); a.status != http.StatusUnauthorized {
		t.Errorf("unknown bearer: %+v", a)
	}
}

// TestKeepPushesFalse: pushes still reach handlers but are not recorded.
func TestKeepPushesFalse(t *testing.T) {
	f := NewFCM()
	defer f.Close()
	f.KeepPushes(false)
	bearer, device := f.Issue("proj-a"), f.RegisterDevice("proj-a")
	got := make(chan Push, 1)
	f.OnPush(device, func(p Push) { got <- p })
	a := fcmSend(t, f, "proj-a", bearer, `{"message":{"token":"`+device+`","data":{"type":"wake"}}}`)
	if a.status != http.StatusOK {
		t.Fatalf("push: %+v", a)
	}
	select {
	case p := <-got:
		if p.Data["type"] != "wake" {
			t.Errorf("handler got %+v", p)
		}
	case <-testContext(t).Done():
		t.Fatal("handler not called")
	}
	if n := len(f.Pushes()); n != 0 {
		t.Errorf("%d pushes recorded", n)
	}
}
