package pushsim

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	ServeFCMProcessIfAsked() // TestFCMProcess's child
	goleak.VerifyTestMain(m)
}

// testWait bounds every wait in these tests; nothing is synchronised by sleeping.
const testWait = 10 * time.Second

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), testWait)
	t.Cleanup(cancel)
	return ctx
}

// answer is a response read to the end.
type answer struct {
	status int
	proto  int
	header http.Header
	body   string
}

func do(t *testing.T, c *http.Client, req *http.Request) answer {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	return answer{status: resp.StatusCode, proto: resp.ProtoMajor, header: resp.Header, body: string(body)}
}

func newRequest(t *testing.T, method, url, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(testContext(t), method, url, bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// fcmSend posts body to project's messages:send with bearer (none when empty).
func fcmSend(t *testing.T, f *FCM, project, bearer, body string) answer {
	t.Helper()
	req := newRequest(t, http.MethodPost, f.URL()+"/v1/projects/"+project+"/messages:send", body)
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	return do(t, f.Client(), req)
}

// apnsSend posts payload to device with the given headers (a value "" leaves a header out).
func apnsSend(t *testing.T, a *APNs, device string, header map[string]string, payload string) answer {
	t.Helper()
	req := newRequest(t, http.MethodPost, a.URL()+"/3/device/"+device, payload)
	for k, v := range header {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	return do(t, a.Client(), req)
}

func wantStatus(t *testing.T, got answer, status int, body string) {
	t.Helper()
	if got.status != status || got.body != body {
		t.Errorf("answer %d %s\nwant   %d %s", got.status, got.body, status, body)
	}
}

func wantPrefix(t *testing.T, got answer, status int, prefix string) {
	t.Helper()
	if got.status != status || !strings.HasPrefix(got.body, prefix) {
		t.Errorf("answer %d %s\nwant   %d %s…", got.status, got.body, status, prefix)
	}
}
