package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rewind-broker/rewind/protocol"
	"github.com/rewind-broker/rewind/testclient"
)

func adminCall(t *testing.T, p *brokerProcess, key, method, path, contentType string, body []byte) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(method, p.adminURL+path, strings.NewReader(string(body)))
	req.Header.Set("Authorization", "Bearer "+key)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %d %v", method, path, resp.StatusCode, out)
	}
	return out
}

// TestRestartAfterSIGKILL: datagrams accepted by the publish API survive a SIGKILL before
// delivery, are all delivered after the restart, and none twice once acknowledged.
func TestRestartAfterSIGKILL(t *testing.T) {
	data := t.TempDir()
	p := startBroker(t, data, "--dev")
	keyBytes, _ := os.ReadFile(filepath.Join(data, "admin.key"))
	key := strings.TrimSpace(string(keyBytes))
	adminCall(t, p, key, "PUT", "/v1/terminals/262000201", "application/json", []byte(`{"password":"b"}`))
	dev := adminCall(t, p, key, "POST", "/dev/devices?platform=fcm", "", nil)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := testclient.Dial(ctx, testclient.Config{URL: p.wsURL, ID: 262000201, Password: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Attach(ctx, testclient.AttachOptions{URL: p.adminURL + "/dev/token/fcm?code=x", Token: dev["token"].(string), Platform: "fcm"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Idle(ctx); err != nil {
		t.Fatal(err)
	}
	b.Abort()

	const n = 5
	for i := 1; i <= n; i++ {
		data, _ := protocol.TextMessage{Source: 2620009, Destination: 262000201, Text: fmt.Sprintf("text %d", i)}.Encode()
		res := adminCall(t, p, key, "POST", "/v1/terminals/262000201/datagrams", "application/octet-stream",
			protocol.Datagram{Type: protocol.TypeMessageText, Data: data}.MustEncode())
		// "idle" until the broker notices the dropped socket, "offline" after: never active.
		if res["sequence"] != float64(i) || (res["state"] != "offline" && res["state"] != "idle") {
			t.Fatalf("publish %d: %v", i, res)
		}
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited

	p2 := startBroker(t, data, "--dev")
	b, err = testclient.Dial(ctx, testclient.Config{URL: p2.wsURL, ID: 262000201, Password: "b"})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		m, d, err := b.RecvText(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if m.Text != fmt.Sprintf("text %d", i) || d.Number != uint32(i) || d.Flags&protocol.FlagBuffering == 0 {
			t.Fatalf("after restart, delivery %d: %q number %d flags %d", i, m.Text, d.Number, d.Flags)
		}
	}
	if err := b.Ack(ctx, n); err != nil {
		t.Fatal(err)
	}
	if err := b.KeepAliveNow(ctx); err != nil { // the ack has been handled
		t.Fatal(err)
	}
	b.Close()

	b, err = testclient.Dial(ctx, testclient.Config{URL: p2.wsURL, ID: 262000201, Password: "b"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.KeepAliveNow(ctx); err != nil {
		t.Fatal(err)
	}
	if d, ok := b.TryRecv(); ok {
		t.Fatalf("delivered again after ack: %v", d)
	}
}
