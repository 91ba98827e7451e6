package broker

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rewind-broker/rewind/tokensvc"
)

// pushReq is a valid push of platform p with a body of n bytes.
func pushReq(p Platform, n int) PushRequest {
	req := PushRequest{
		Platform:    p,
		DeviceToken: "dev-token",
		Kind:        PushKindData,
		Enc:         PushEncAES128GCM,
		Body:        bytes.Repeat([]byte{0xfb}, n),
		Visible:     true,
		TTL:         3600 * time.Second,
		CollapseID:  "rewind-262000101",
	}
	if p == PlatformAPNs {
		req.DeviceToken = strings.Repeat("ab", 32)
	}
	return req
}

func TestBuildFCMMessage(t *testing.T) {
	body := []byte{0xfb, 0xff, 0x00, 'R'} // base64url "-_8AUg", std base64 "+/8AUg=="
	tests := []struct {
		name string
		req  PushRequest
		want string
	}{
		{"visible data push", PushRequest{DeviceToken: "tok", Kind: PushKindData, Enc: PushEncAES128GCM, Body: body,
			Visible: true, TTL: 3600 * time.Second, CollapseID: "rewind-7"},
			`{"message":{"token":"tok","data":{"type":"data","enc":"aes128gcm","body":"-_8AUg"},"android":{"priority":"high","ttl":"3600s","collapse_key":"rewind-7"}}}`},
		{"background wake with a body", PushRequest{DeviceToken: "tok", Kind: PushKindWake, Enc: PushEncNone, Body: body,
			TTL: 90 * time.Second, CollapseID: "c"},
			`{"message":{"token":"tok","data":{"type":"wake","enc":"none","body":"-_8AUg"},"android":{"priority":"normal","ttl":"90s","collapse_key":"c"}}}`},
		{"wake without body drops enc", PushRequest{DeviceToken: "tok", Kind: PushKindWake, Enc: PushEncAES128GCM, TTL: time.Minute},
			`{"message":{"token":"tok","data":{"type":"wake"},"android":{"priority":"normal","ttl":"60s"}}}`},
		{"empty body is no body", PushRequest{DeviceToken: "tok", Kind: PushKindWake, Body: []byte{}},
			`{"message":{"token":"tok","data":{"type":"wake"},"android":{"priority":"normal","ttl":"0s"}}}`},
		{"TTL truncated to seconds", PushRequest{DeviceToken: "tok", Kind: PushKindWake, TTL: 2999 * time.Millisecond},
			`{"message":{"token":"tok","data":{"type":"wake"},"android":{"priority":"normal","ttl":"2s"}}}`},
		{"platform and credential are not part of it", PushRequest{Platform: PlatformAPNs, DeviceToken: "tok", Kind: PushKindWake,
			Credential: tokensvc.Credential{Project: "p", Token: "secret"}},
			`{"message":{"token":"tok","data":{"type":"wake"},"android":{"priority":"normal","ttl":"0s"}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := BuildFCMMessage(tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestBuildAPNsPayload(t *testing.T) {
	body := []byte{0xfb, 0xff, 0x00, 'R'}
	tests := []struct {
		name string
		req  PushRequest
		want string
	}{
		{"visible: alert for the service extension", PushRequest{DeviceToken: "ab", Kind: PushKindData, Enc: PushEncAES128GCM, Body: body, Visible: true},
			`{"aps":{"alert":{"title":"New message","body":"Open to read"},"mutable-content":1},"rewind":{"type":"data","enc":"aes128gcm","body":"-_8AUg"}}`},
		{"background data", PushRequest{DeviceToken: "ab", Kind: PushKindData, Enc: PushEncNone, Body: body},
			`{"aps":{"content-available":1},"rewind":{"type":"data","enc":"none","body":"-_8AUg"}}`},
		{"wake without body", PushRequest{DeviceToken: "ab", Kind: PushKindWake, Enc: PushEncNone},
			`{"aps":{"content-available":1},"rewind":{"type":"wake"}}`},
		{"visible wake", PushRequest{DeviceToken: "ab", Kind: PushKindWake, Visible: true},
			`{"aps":{"alert":{"title":"New message","body":"Open to read"},"mutable-content":1},"rewind":{"type":"wake"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := BuildAPNsPayload(tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestBuildPushRefusesBadRequests(t *testing.T) {
	ok := pushReq(PlatformFCM, 10)
	tests := []struct {
		name   string
		mutate func(*PushRequest)
	}{
		{"no device token", func(r *PushRequest) { r.DeviceToken = "" }},
		{"huge device token", func(r *PushRequest) { r.DeviceToken = strings.Repeat("a", maxDeviceToken+1) }},
		{"unknown kind", func(r *PushRequest) { r.Kind = "ping" }},
		{"no kind", func(r *PushRequest) { r.Kind = "" }},
		{"data without body", func(r *PushRequest) { r.Body = nil }},
		{"body without encoding", func(r *PushRequest) { r.Enc = "" }},
		{"unknown encoding", func(r *PushRequest) { r.Enc = "aesgcm" }},
		{"negative TTL", func(r *PushRequest) { r.TTL = -time.Second }},
		{"collapse id of 65 bytes", func(r *PushRequest) { r.CollapseID = strings.Repeat("c", MaxCollapseID+1) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := ok
			tt.mutate(&req)
			for _, p := range []Platform{PlatformFCM, PlatformAPNs} {
				req.Platform = p
				_, err1 := BuildFCMMessage(req)
				_, err2 := BuildAPNsPayload(req)
				_, err3 := PushPayloadSize(req)
				for i, err := range []error{err1, err2, err3} {
					if !errors.Is(err, ErrRejected) {
						t.Errorf("%s builder %d: err = %v, want ErrRejected", p, i, err)
					}
				}
			}
		})
	}
	req := ok
	req.CollapseID = strings.Repeat("c", MaxCollapseID)
	if _, err := BuildAPNsPayload(req); err != nil {
		t.Errorf("collapse id of %d bytes: %v", MaxCollapseID, err)
	}
	req.Platform = "webpush"
	if _, err := PushPayloadSize(req); !errors.Is(err, ErrRejected) {
		t.Errorf("unknown platform: err = %v", err)
	}
}

// bodyForPayloadSize returns req with a body (and encoding) that makes its payload exactly size
// bytes: base64url lengths skip 4k+1, so one of the two encodings, whose names differ by 5
// bytes, always hits it.
func bodyForPayloadSize(t testing.TB, req PushRequest, size int) PushRequest {
	t.Helper()
	for _, enc := range []string{PushEncAES128GCM, PushEncNone} {
		req.Enc = enc
		req.Body = nil
		req.Kind = PushKindData
		for n := 1; n < size; n++ {
			req.Body = bytes.Repeat([]byte{0x5a}, n)
			got, err := PushPayloadSize(req)
			if err != nil {
				t.Fatal(err)
			}
			if got == size {
				return req
			}
			if got > size {
				break
			}
		}
	}
	t.Fatalf("no body makes a %s payload of %d bytes", req.Platform, size)
	return req
}

func TestPushPayloadSizeLimit(t *testing.T) {
	for _, p := range []Platform{PlatformFCM, PlatformAPNs} {
		for _, visible := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s visible=%v", p, visible), func(t *testing.T) {
				req := pushReq(p, 0)
				req.Visible = visible
				build := BuildFCMMessage
				if p == PlatformAPNs {
					build = BuildAPNsPayload
				}

				fits := bodyForPayloadSize(t, req, MaxPushPayload)
				b, err := build(fits)
				if err != nil {
					t.Fatalf("%d bytes: %v", MaxPushPayload, err)
				}
				if p == PlatformAPNs && len(b) != MaxPushPayload {
					t.Errorf("APNs payload is %d bytes, PushPayloadSize said %d", len(b), MaxPushPayload)
				}
				if p == PlatformFCM {
					// What FCM counts: message.data's keys and values.
					n := len("type") + len(fits.Kind) + len("enc") + len(fits.Enc) + len("body") +
						len(base64.RawURLEncoding.EncodeToString(fits.Body))
					if n != MaxPushPayload {
						t.Errorf("FCM data is %d bytes, PushPayloadSize said %d", n, MaxPushPayload)
					}
				}

				over := bodyForPayloadSize(t, req, MaxPushPayload+1)
				_, err = build(over)
				var pe *PushError
				if !errors.Is(err, ErrPayloadTooLarge) || !errors.As(err, &pe) || pe.Platform != p {
					t.Errorf("%d bytes: err = %v, want ErrPayloadTooLarge", MaxPushPayload+1, err)
				}
			})
		}
	}
}

func TestPushErrorUnwrapsAndReads(t *testing.T) {
	cause := errors.New("dial tcp: refused")
	var err error = &PushError{Err: ErrThrottled, Platform: PlatformFCM, Status: 429, Reason: "QUOTA_EXCEEDED",
		RetryAfter: 7 * time.Second, Cause: cause}
	err = fmt.Errorf("wake: %w", err)
	var pe *PushError
	if !errors.Is(err, ErrThrottled) || !errors.Is(err, cause) || errors.Is(err, ErrUnavailable) ||
		!errors.As(err, &pe) || pe.RetryAfter != 7*time.Second {
		t.Fatalf("err = %v", err)
	}
	const want = "wake: push: throttled by provider (fcm 429 QUOTA_EXCEEDED), retry after 7s: dial tcp: refused"
	if err.Error() != want {
		t.Errorf("Error() = %q\nwant      %q", err, want)
	}
	long := &PushError{Err: ErrUnavailable, Platform: PlatformFCM, Status: 502, Cause: errors.New(strings.Repeat("<html>", 1000))}
	if n := len(long.Error()); n > 300 {
		t.Errorf("Error() is %d bytes", n)
	}
	if got := rejectf("", "no %s", "token").Error(); got != "push: rejected: no token" {
		t.Errorf("Error() = %q", got)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"7", 7 * time.Second},
		{" 0 ", 0},
		{"-3", 0},
		{"99999999999", 24 * time.Hour},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		if got := retryAfter(tt.in, now); got != tt.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
