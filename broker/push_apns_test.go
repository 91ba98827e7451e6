package broker

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sideshow/apns2/token"

	"github.com/rewind-broker/rewind/testclient/pushsim"
	"github.com/rewind-broker/rewind/tokensvc"
)

const pushTestBundle = "org.example.rewind"

// pushAPNsEnv is a fake APNs with a provider JWT for one team and a registered device, and an
// APNsSender whose production and development hosts both point at it, through the sender's own
// per-client HTTP/2 transports.
type pushAPNsEnv struct {
	sim    *pushsim.APNs
	sender *APNsSender
	team   string
	jwt    string
	device string
}

func newPushAPNsEnv(t testing.TB, mutate ...func(*APNsConfig)) *pushAPNsEnv {
	t.Helper()
	sim := pushsim.NewAPNs()
	t.Cleanup(sim.Close)
	cfg := APNsConfig{
		ProductionHost:  sim.URL(),
		DevelopmentHost: sim.URL(),
		TLSConfig:       &tls.Config{RootCAs: sim.CertPool()},
		Logger:          slog.New(slog.DiscardHandler),
	}
	for _, m := range mutate {
		m(&cfg)
	}
	s, err := NewAPNsSender(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.CloseIdleConnections)
	return &pushAPNsEnv{sim: sim, sender: s, team: "TEAM123456", jwt: sim.Issue("TEAM123456"), device: sim.RegisterDevice(pushTestBundle)}
}

func (e *pushAPNsEnv) req(body []byte) PushRequest {
	return PushRequest{
		Platform:    PlatformAPNs,
		DeviceToken: e.device,
		Credential: tokensvc.Credential{Type: tokensvc.TypeAPNs, Topic: "org.example.other", Token: e.jwt,
			Expires: 2400, Environment: tokensvc.EnvironmentProduction},
		Topic:      pushTestBundle,
		Kind:       PushKindData,
		Enc:        PushEncAES128GCM,
		Body:       body,
		Visible:    true,
		TTL:        3600 * time.Second,
		CollapseID: "rewind-262000101",
	}
}

func TestAPNsSenderSends(t *testing.T) {
	e := newPushAPNsEnv(t)
	body := []byte("REWIND01\x10\x0a\x04\x00\x07\x00\x00\x00\x00\x00sealed?\xff\xfe")
	req := e.req(body)

	before := time.Now()
	res, err := e.sender.Send(pushCtx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.sim.Next(pushCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if res.MessageID != p.ID || res.Status != 200 {
		t.Errorf("result %+v, push id %q", res, p.ID)
	}
	if p.DeviceToken != e.device || p.Bearer != e.jwt || p.Topic != pushTestBundle || p.PushType != "alert" ||
		p.Priority != "10" || p.CollapseKey != "rewind-262000101" {
		t.Errorf("push = %+v", p)
	}
	if exp := p.Expiration.Sub(before); exp < time.Hour-time.Second || exp > time.Hour+time.Second {
		t.Errorf("expiration %v after sending, want 1h", exp)
	}
	want, _ := BuildAPNsPayload(req)
	if string(p.Body) != string(want) {
		t.Errorf("payload %s\nwant    %s", p.Body, want)
	}
	if p.APS["mutable-content"] != float64(1) || p.Data["type"] != "data" || p.Data["enc"] != "aes128gcm" {
		t.Errorf("aps %v, rewind %v", p.APS, p.Data)
	}
	if got, err := base64.RawURLEncoding.DecodeString(p.Data["body"]); err != nil || string(got) != string(body) {
		t.Errorf("body decodes to %q (%v), want %q", got, err, body)
	}

	// A background wake: priority 5, TTL 0 is apns-expiration 0, the credential's topic, no
	// collapse id, development environment.
	req = PushRequest{Platform: PlatformAPNs, DeviceToken: e.device, Kind: PushKindWake,
		Credential: tokensvc.Credential{Topic: pushTestBundle, Token: e.jwt, Environment: tokensvc.EnvironmentDevelopment}}
	if _, err := e.sender.Send(pushCtx(t), req); err != nil {
		t.Fatal(err)
	}
	p, _ = e.sim.Next(pushCtx(t))
	if p.PushType != "background" || p.Priority != "5" || p.Headers.Get("apns-expiration") != "0" || p.CollapseKey != "" ||
		p.Topic != pushTestBundle || string(p.Body) != `{"aps":{"content-available":1},"rewind":{"type":"wake"}}` {
		t.Errorf("wake push = %+v", p)
	}
	if n := len(e.sender.clients); n != 1 {
		t.Errorf("%d clients for one team on one host, want 1", n)
	}

	// A second team gets a client of its own.
	other := e.sim.Issue("TEAM999999")
	req.Credential.Token = other
	if _, err := e.sender.Send(pushCtx(t), req); err != nil {
		t.Fatal(err)
	}
	if n := len(e.sender.clients); n != 2 {
		t.Errorf("%d clients for two teams, want 2", n)
	}
}

// A shared transport (pushsim's client) works as well; tests and single-team brokers use it.
func TestAPNsSenderSharedTransport(t *testing.T) {
	sim := pushsim.NewAPNs()
	t.Cleanup(sim.Close)
	s, err := NewAPNsSender(APNsConfig{ProductionHost: sim.URL(), Transport: sim.Client().Transport,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.CloseIdleConnections)
	device := sim.RegisterDevice(pushTestBundle)
	_, err = s.Send(pushCtx(t), PushRequest{Platform: PlatformAPNs, DeviceToken: device, Kind: PushKindWake,
		Credential: tokensvc.Credential{Topic: pushTestBundle, Token: sim.Issue("T1")}})
	if err != nil {
		t.Fatal(err)
	}
}

func TestAPNsSenderErrors(t *testing.T) {
	e := newPushAPNsEnv(t, func(c *APNsConfig) { c.Timeout = 2 * time.Second })
	gone := e.sim.RegisterDevice(pushTestBundle)
	e.sim.Unregister(gone)
	unregisteredAt := time.Now()
	otherApp := e.sim.RegisterDevice("org.example.other")
	revoked := e.sim.Issue(e.team)
	e.sim.Revoke(revoked)
	enc := base64.RawURLEncoding
	unknownJWT := enc.EncodeToString([]byte(`{"alg":"ES256","kid":"K"}`)) + "." +
		enc.EncodeToString([]byte(`{"iss":"TEAM000000","iat":1}`)) + ".c2ln" // a team of its own

	// Order matters: after "revoked provider token" the team's client may keep the revoked JWT
	// (it is the newest seen); the cases after it answer before authentication or use another team.
	tests := []struct {
		name       string
		fault      *pushsim.Fault
		mutate     func(*PushRequest)
		want       error
		status     int
		reason     string
		retryAfter time.Duration
		timestamp  bool
	}{
		{name: "unregistered device", mutate: func(r *PushRequest) { r.DeviceToken = gone },
			want: ErrUnregistered, status: 410, reason: "Unregistered", timestamp: true},
		{name: "never registered device", mutate: func(r *PushRequest) { r.DeviceToken = strings.Repeat("0", 64) },
			want: ErrUnregistered, status: 400, reason: "BadDeviceToken"},
		{name: "device of another app", mutate: func(r *PushRequest) { r.DeviceToken = otherApp },
			want: ErrUnregistered, status: 400, reason: "DeviceTokenNotForTopic"},
		{name: "revoked provider token", mutate: func(r *PushRequest) { r.Credential.Token = revoked },
			want: ErrProviderAuth, status: 403, reason: "ExpiredProviderToken"},
		{name: "provider token never issued", mutate: func(r *PushRequest) { r.Credential.Token = unknownJWT },
			want: ErrProviderAuth, status: 403, reason: "InvalidProviderToken"},
		{name: "too many requests", fault: ptr(pushsim.APNsFault(429, "TooManyRequests").WithHeader("Retry-After", "7")),
			want: ErrThrottled, status: 429, reason: "TooManyRequests", retryAfter: 7 * time.Second},
		{name: "service unavailable", fault: ptr(pushsim.APNsFault(503, "ServiceUnavailable")),
			want: ErrUnavailable, status: 503, reason: "ServiceUnavailable"},
		{name: "HTML 502 from a proxy", fault: &pushsim.Fault{Status: 502, Body: "<html><body>Bad Gateway</body></html>"},
			want: ErrUnavailable, status: 502, reason: "unreadable answer"},
		{name: "HTML 200 from a captive proxy", fault: &pushsim.Fault{Status: 200, Body: "<html><body>Log in</body></html>"},
			want: ErrUnavailable, status: 200, reason: "unreadable answer"},
		{name: "payload too large", fault: ptr(pushsim.APNsFault(413, "PayloadTooLarge")),
			want: ErrPayloadTooLarge, status: 413, reason: "PayloadTooLarge"},
		{name: "bad topic", fault: ptr(pushsim.APNsFault(400, "BadTopic")),
			want: ErrRejected, status: 400, reason: "BadTopic"},
		{name: "forbidden", fault: ptr(pushsim.APNsFault(403, "Forbidden")),
			want: ErrRejected, status: 403, reason: "Forbidden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.sim.Requests()
			if tt.fault != nil {
				e.sim.FailNext(1, *tt.fault)
			}
			req := e.req([]byte("x"))
			if tt.mutate != nil {
				tt.mutate(&req)
			}
			_, err := e.sender.Send(pushCtx(t), req)
			var pe *PushError
			if !errors.Is(err, tt.want) || !errors.As(err, &pe) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if pe.Status != tt.status || pe.Reason != tt.reason || pe.RetryAfter != tt.retryAfter || pe.Platform != PlatformAPNs {
				t.Errorf("PushError %+v, want status %d reason %q retry after %v", pe, tt.status, tt.reason, tt.retryAfter)
			}
			if tt.timestamp {
				if d := unregisteredAt.Sub(pe.Timestamp); d < 0 || d > 2*time.Second {
					t.Errorf("timestamp %v, want about %v (second precision)", pe.Timestamp, unregisteredAt)
				}
			} else if !pe.Timestamp.IsZero() {
				t.Errorf("timestamp %v", pe.Timestamp)
			}
			if n := e.sim.Requests() - before; n != 1 {
				t.Errorf("%d requests, want 1", n)
			}
		})
	}
	if n := len(e.sim.Pushes()); n != 0 {
		t.Errorf("%d pushes accepted", n)
	}
}

func TestAPNsSenderTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	e := newPushAPNsEnv(t, func(c *APNsConfig) { c.Timeout = timeout })
	e.sim.Delay(time.Minute) // ended by the client giving up
	start := time.Now()
	_, err := e.sender.Send(pushCtx(t), e.req([]byte("x")))
	elapsed := time.Since(start)
	var pe *PushError
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &pe) ||
		pe.Reason != "timeout" || pe.Status != 0 {
		t.Fatalf("err = %v, want ErrUnavailable after a timeout", err)
	}
	if elapsed < timeout || elapsed > timeout+2*time.Second {
		t.Errorf("returned after %v, want about %v", elapsed, timeout)
	}
	// apns2's error names the request URL; the device token is kept out of it (and of logs).
	if msg := err.Error(); strings.Contains(msg, e.device) || !strings.Contains(msg, "/3/device/…") {
		t.Errorf("error text %q", msg)
	}
}

func TestAPNsSenderRefusesBeforeSending(t *testing.T) {
	e := newPushAPNsEnv(t)
	enc := base64.RawURLEncoding
	noIss := enc.EncodeToString([]byte(`{"alg":"ES256"}`)) + "." + enc.EncodeToString([]byte(`{"iat":1}`)) + ".c2ln"
	with := func(m func(*PushRequest)) PushRequest { r := e.req([]byte("x")); m(&r); return r }
	tests := []struct {
		name string
		req  PushRequest
		want error
	}{
		{"payload of 4097 bytes", bodyForPayloadSize(t, e.req(nil), MaxPushPayload+1), ErrPayloadTooLarge},
		{"JWT without iss", with(func(r *PushRequest) { r.Credential.Token = noIss }), ErrRejected},
		{"not a JWT", with(func(r *PushRequest) { r.Credential.Token = "opaque" }), ErrRejected},
		{"JWT claims not JSON", with(func(r *PushRequest) { r.Credential.Token = "e30.bm9wZQ.c2ln" }), ErrRejected},
		{"no provider token", with(func(r *PushRequest) { r.Credential.Token = "" }), ErrProviderAuth},
		{"no topic", with(func(r *PushRequest) { r.Topic, r.Credential.Topic = "", "" }), ErrRejected},
		{"topic with a newline", with(func(r *PushRequest) { r.Topic = "org.example\r\nx: y" }), ErrRejected},
		{"unknown environment", with(func(r *PushRequest) { r.Credential.Environment = "staging" }), ErrRejected},
		{"FCM request", with(func(r *PushRequest) { r.Platform = PlatformFCM }), ErrRejected},
		{"device token not hex", with(func(r *PushRequest) { r.DeviceToken = "../../x" }), ErrUnregistered},
		{"no device token", with(func(r *PushRequest) { r.DeviceToken = "" }), ErrRejected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := e.sender.Send(pushCtx(t), tt.req); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if n := e.sim.Requests(); n != 0 {
		t.Errorf("%d requests sent, want none", n)
	}
}

// TestAPNsSenderJWTRotation rotates the team's JWT while 100 sends are in flight (run it with
// -race): every send is answered, each with one of the two JWTs, and once the old one is revoked
// the new one is what goes out.
func TestAPNsSenderJWTRotation(t *testing.T) {
	e := newPushAPNsEnv(t)
	e.sim.Delay(20 * time.Millisecond) // keeps the sends overlapping
	old, fresh := e.jwt, e.sim.Issue(e.team)

	const n = 100
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		jwt := old
		if i >= n/2 {
			jwt = fresh
		}
		wg.Go(func() {
			req := e.req([]byte(strconv.Itoa(i)))
			req.Credential.Token = jwt
			if _, err := e.sender.Send(pushCtx(t), req); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	pushes := e.sim.Pushes()
	if len(pushes) != n {
		t.Fatalf("%d pushes, want %d", len(pushes), n)
	}
	for _, p := range pushes {
		if p.Bearer != old && p.Bearer != fresh {
			t.Fatalf("push with bearer %q", p.Bearer)
		}
	}

	e.sim.Delay(0)
	e.sim.Revoke(old)
	req := e.req([]byte("after"))
	req.Credential.Token = fresh
	if _, err := e.sender.Send(pushCtx(t), req); err != nil {
		t.Fatal(err)
	}
	if p := e.sim.Pushes()[n]; p.Bearer != fresh {
		t.Errorf("bearer after rotation = %q, want the fresh JWT", p.Bearer)
	}
	if n := len(e.sender.clients); n != 1 {
		t.Errorf("%d clients, want 1: rotation keeps the client", n)
	}
}

func TestInstallJWTKeepsTheNewest(t *testing.T) {
	tok := &token.Token{}
	installJWT(tok, "a", 100)
	installJWT(tok, "b", 200)
	installJWT(tok, "a", 100) // a send still holding the older credential
	if tok.Bearer != "b" || tok.IssuedAt != 200 {
		t.Errorf("token = %q issued %d, want b issued 200", tok.Bearer, tok.IssuedAt)
	}
	installJWT(tok, "c", 200)
	if tok.Bearer != "c" {
		t.Errorf("token = %q, want c (same second, a new JWT)", tok.Bearer)
	}
	if got := tok.GenerateIfExpired(); got != "c" {
		t.Errorf("apns2 sends %q, want c", got)
	}
}

func TestJWTIssuer(t *testing.T) {
	enc := base64.RawURLEncoding
	jwt := func(claims string) string { return "e30." + enc.EncodeToString([]byte(claims)) + ".c2ln" }
	team, iat, perr := jwtIssuer(jwt(`{"iss":"ABCDE12345","iat":1700000000}`))
	if perr != nil || team != "ABCDE12345" || iat != 1700000000 {
		t.Errorf("got %q %d %v", team, iat, perr)
	}
	// Padded base64 is tolerated; a missing iat counts as now.
	padded := "e30." + base64.URLEncoding.EncodeToString([]byte(`{"iss":"T"}`)) + ".c2ln"
	if team, iat, perr := jwtIssuer(padded); perr != nil || team != "T" || time.Since(time.Unix(iat, 0)) > time.Minute {
		t.Errorf("padded: got %q %d %v", team, iat, perr)
	}
	for _, bad := range []string{"", "a.b", jwt(`{"iat":1}`), jwt(`{"iss":""}`), jwt(`{"iss":7}`), jwt(`[]`),
		jwt(`{"iss":"` + strings.Repeat("T", maxAPNsTeam+1) + `"}`), "e30.!!!.c2ln"} {
		if _, _, perr := jwtIssuer(bad); perr == nil || !errors.Is(perr, ErrRejected) {
			t.Errorf("jwtIssuer(%q) = %v, want ErrRejected", bad, perr)
		}
	}
}
