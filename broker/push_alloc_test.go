package broker

import (
	"encoding/base64"
	"testing"
	"time"

	"github.com/rewind-broker/rewind/tokensvc"
)

func TestBase64URL(t *testing.T) {
	src := make([]byte, 300)
	for i := range src {
		src[i] = byte(i * 7)
	}
	for n := 0; n <= len(src); n++ {
		if got, want := base64URL(src[:n]), base64.RawURLEncoding.EncodeToString(src[:n]); got != want {
			t.Fatalf("%d bytes: %q, want %q", n, got, want)
		}
	}
	if a := testing.AllocsPerRun(100, func() { _ = base64URL(src) }); a != 1 {
		t.Errorf("%v allocations, want 1", a)
	}
}

// TestFCMSendOwnAllocations bounds what FCMSender.Send allocates itself around the SDK's call:
// the pooled message and the Authorization value cost nothing once warm.
func TestFCMSendOwnAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items: pooled allocations are not counted")
	}
	s, err := NewFCMSender(FCMConfig{})
	if err != nil {
		t.Fatal(err)
	}
	req := PushRequest{Platform: PlatformFCM, DeviceToken: "device", Kind: PushKindData, Enc: PushEncAES128GCM,
		Body: make([]byte, 256), TTL: time.Hour, CollapseID: "rewind-1",
		Credential: tokensvc.Credential{Type: tokensvc.TypeFCM, Project: "p", Token: "ya29.token"}}
	a := testing.AllocsPerRun(100, func() {
		d, _ := checkPush(PlatformFCM, req)
		newFCMMessage(req, d).release()
		_ = s.authorization(req.Credential.Token)
	})
	if a > 1 { // the base64 body
		t.Errorf("%v allocations, want at most 1", a)
	}
}

// TestFCMDataSize: the wake path's size check, which does not encode the body, agrees with the
// data the sender builds.
func TestFCMDataSize(t *testing.T) {
	for n := 0; n <= 300; n++ {
		req := PushRequest{Platform: PlatformFCM, DeviceToken: "device", Kind: PushKindWake}
		if n > 0 {
			req.Kind, req.Enc, req.Body = PushKindData, PushEncAES128GCM, make([]byte, n)
		}
		d, perr := checkPush(PlatformFCM, req)
		if perr != nil {
			t.Fatal(perr)
		}
		if got, err := PushPayloadSize(req); err != nil || got != d.size() {
			t.Fatalf("%d bytes: PushPayloadSize %d, %v; data size %d", n, got, err, d.size())
		}
	}
}

var collapseSink string

func TestCollapseID(t *testing.T) {
	if got := collapseID(4294967295); got != "rewind-4294967295" {
		t.Errorf("collapseID = %q", got)
	}
	if a := testing.AllocsPerRun(100, func() { collapseSink = collapseID(262000101) }); a > 1 {
		t.Errorf("%v allocations, want at most 1", a)
	}
}
