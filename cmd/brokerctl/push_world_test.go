package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/rewind-broker/rewind/broker"
	"github.com/rewind-broker/rewind/registry"
	"github.com/rewind-broker/rewind/testclient"
	"github.com/rewind-broker/rewind/testclient/pushsim"
	"github.com/rewind-broker/rewind/tokensvc"
)

// A broker with push enabled, as broker/wake_test.go builds it: fake FCM and APNs (pushsim), a
// tiny vendor token service handing out the fakes' bearer credentials, the real token-service
// client and the real senders.

const (
	fcmProject = "rewind-dmr-app"
	apnsTeam   = "TEAM123456"
	apnsTopic  = "com.example.dmr"
)

type pushBroker struct {
	*testBroker
	providers *pushsim.Providers
	vendor    *httptest.Server
}

func newPushBroker(t *testing.T) *pushBroker {
	t.Helper()
	pb := &pushBroker{providers: pushsim.New()}
	t.Cleanup(pb.providers.Close)
	fcmToken := pb.providers.FCM.Issue(fcmProject)
	apnsJWT := pb.providers.APNs.Issue(apnsTeam)
	pb.vendor = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/token/fcm":
			json.NewEncoder(w).Encode(tokensvc.Credential{Type: tokensvc.TypeFCM, Project: fcmProject, Token: fcmToken, Expires: 3600})
		case "/token/apns":
			json.NewEncoder(w).Encode(tokensvc.Credential{Type: tokensvc.TypeAPNs, Topic: apnsTopic, Token: apnsJWT, Expires: 3000, Environment: "production"})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(pb.vendor.Close)
	tokens, err := tokensvc.NewClient(tokensvc.ClientConfig{Policy: tokensvc.URLPolicy{AllowInsecure: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tokens.Close() })
	fcm, err := broker.NewFCMSender(broker.FCMConfig{Endpoint: pb.providers.FCM.URL() + "/v1", Transport: pb.providers.FCM.Client().Transport, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	apns, err := broker.NewAPNsSender(broker.APNsConfig{ProductionHost: pb.providers.APNs.URL(), DevelopmentHost: pb.providers.APNs.URL(), Transport: pb.providers.APNs.Client().Transport})
	if err != nil {
		t.Fatal(err)
	}
	pb.testBroker = startBroker(t, func(store *registry.Badger) *broker.PushConfig {
		return &broker.PushConfig{
			Store:   store,
			Tokens:  tokens,
			Senders: map[broker.Platform]broker.Sender{broker.PlatformFCM: fcm, broker.PlatformAPNs: apns},
			Policy:  tokensvc.URLPolicy{AllowInsecure: true},
		}
	})
	return pb
}

// attach registers a fake device for platform ("fcm" or "apns"), connects terminal id and
// attaches it with push keys; it returns the connected client and the device token.
func (pb *pushBroker) attach(t *testing.T, id uint32, password, platform string) (*testclient.Client, string) {
	t.Helper()
	target, pf := fcmProject, pushsim.PlatformFCM
	if platform == "apns" {
		target, pf = apnsTopic, pushsim.PlatformAPNs
	}
	device := pb.providers.RegisterDevice(pf, target)
	keys, err := testclient.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	c := pb.dial(id, password)
	opt := testclient.AttachOptions{URL: pb.vendor.URL + "/token/" + platform + "?code=s3cret-code", Token: device, Platform: platform, Keys: keys, Name: "phone"}
	if platform == "apns" {
		opt.Topic = apnsTopic
	}
	if err := c.Attach(testCtx(t), opt); err != nil {
		t.Fatalf("attach: %v", err)
	}
	return c, device
}

// phoneGoneIdle attaches terminal id, tells the broker it goes idle, drops the socket and
// waits until the broker has seen the session end: the terminal is then offline with a push
// channel.
func (pb *pushBroker) phoneGoneIdle(t *testing.T, id uint32, password, platform string) string {
	t.Helper()
	c, device := pb.attach(t, id, password, platform)
	if err := c.Idle(testCtx(t)); err != nil {
		t.Fatalf("idle: %v", err)
	}
	c.Abort()
	pb.waitNoSession(t, id)
	return device
}

// waitNoSession polls the admin API until terminal id has no live session.
func (b *testBroker) waitNoSession(t *testing.T, id uint32) {
	t.Helper()
	ctx := testCtx(t)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.admin.URL+"/v1/terminals/"+formatID(id), nil)
		req.Header.Set("Authorization", "Bearer "+testKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var info broker.TerminalInfo
		err = json.NewDecoder(resp.Body).Decode(&info)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if info.Session == nil {
			return
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("terminal %d still has a session", id)
		}
	}
}

// testCtx is a context for one step of a test.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}
