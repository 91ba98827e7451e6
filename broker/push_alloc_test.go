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
