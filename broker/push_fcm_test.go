package broker

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rewind-broker/rewind/testclient/pushsim"
	"github.com/rewind-broker/rewind/tokensvc"
)

// pushFCMEnv is a fake FCM with one project, a valid access token and a registered device, and
// an FCMSender pointed at it through pushsim's own HTTP/2 client transport.
type pushFCMEnv struct {
	sim     *pushsim.FCM
	sender  *FCMSender
	project string
	bearer  string
	device  string
}

func newPushFCMEnv(t testing.TB, mutate ...func(*FCMConfig)) *pushFCMEnv {
	t.Helper()
	sim := pushsim.NewFCM()
	t.Cleanup(sim.Close)
	cfg := FCMConfig{
		Endpoint:  sim.URL() + "/v1",
		Transport: sim.Client().Transport,
		Logger:    slog.New(slog.DiscardHandler),
	}
	for _, m := range mutate {
		m(&cfg)
	}
	s, err := NewFCMSender(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.CloseIdleConnections)
	return &pushFCMEnv{sim: sim, sender: s, project: "proj-a", bearer: sim.Issue("proj-a"), device: sim.RegisterDevice("proj-a")}
}

// req is a visible data push of body to the env's device with the env's credential.
func (e *pushFCMEnv) req(body []byte) PushRequest {
	return PushRequest{
		Platform:    PlatformFCM,
		DeviceToken: e.device,
		Credential:  tokensvc.Credential{Type: tokensvc.TypeFCM, Project: e.project, Token: e.bearer, Expires: 3600},
		Kind:        PushKindData,
		Enc:         PushEncAES128GCM,
		Body:        body,
		Visible:     true,
		TTL:         3600 * time.Second,
		CollapseID:  "rewind-262000101",
	}
}

func pushCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestFCMSenderSends(t *testing.T) {
	e := newPushFCMEnv(t)
	body := []byte("REWIND01\x10\x0a\x04\x00\x07\x00\x00\x00\x00\x00sealed?\xff\xfe")
	req := e.req(body)

	res, err := e.sender.Send(pushCtx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.sim.Next(pushCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if res.MessageID != p.ID || res.Status != http.StatusOK {
		t.Errorf("result %+v, push id %q", res, p.ID)
	}
	if p.Project != e.project || p.DeviceToken != e.device || p.Bearer != e.bearer || p.Priority != "high" ||
		p.TTL != time.Hour || p.CollapseKey != "rewind-262000101" {
		t.Errorf("push = %+v", p)
	}
	if p.Data["type"] != "data" || p.Data["enc"] != "aes128gcm" || len(p.Data) != 3 {
		t.Errorf("data = %v", p.Data)
	}
	got, err := base64.RawURLEncoding.DecodeString(p.Data["body"])
	if err != nil || string(got) != string(body) {
		t.Errorf("body decodes to %q (%v), want %q", got, err, body)
	}
	if ua := p.Headers.Get("X-Firebase-Client"); ua == "" {
		t.Error("not sent by the firebase SDK")
	}

	// What the SDK sent is what BuildFCMMessage builds, field for field.
	want, err := BuildFCMMessage(req)
	if err != nil {
		t.Fatal(err)
	}
	var sent, built any
	if err := json.Unmarshal(p.Body, &sent); err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal(want, &built)
	if !reflect.DeepEqual(sent, built) {
		t.Errorf("SDK sent  %s\nbuilder   %s", p.Body, want)
	}

	// A background wake without body, TTL 0, no collapse key, to a second project.
	bearerB := e.sim.Issue("proj-b")
	deviceB := e.sim.RegisterDevice("proj-b")
	req = PushRequest{Platform: PlatformFCM, DeviceToken: deviceB, Kind: PushKindWake,
		Credential: tokensvc.Credential{Project: "proj-b", Token: bearerB}}
	if _, err := e.sender.Send(pushCtx(t), req); err != nil {
		t.Fatal(err)
	}
	p, _ = e.sim.Next(pushCtx(t))
	if p.Project != "proj-b" || p.Bearer != bearerB || p.Priority != "normal" || p.CollapseKey != "" ||
		fmt.Sprint(p.Data) != "map[type:wake]" {
		t.Errorf("wake push = %+v", p)
	}
	var raw struct {
		Message struct{ Android map[string]any }
	}
	_ = json.Unmarshal(p.Body, &raw)
	if raw.Message.Android["ttl"] != "0s" {
		t.Errorf("android = %v, want ttl 0s", raw.Message.Android)
	}
	if n := len(e.sender.clients); n != 2 {
		t.Errorf("%d clients, want one per project", n)
	}
}

func TestFCMSenderErrors(t *testing.T) {
	e := newPushFCMEnv(t, func(c *FCMConfig) { c.Timeout = 2 * time.Second })
	foreign := e.sim.RegisterDevice("proj-b")
	gone := e.sim.RegisterDevice(e.project)
	e.sim.Unregister(gone)
	revoked := e.sim.Issue(e.project)
	e.sim.Revoke(revoked)
	other := e.sim.Issue("proj-b")

	tests := []struct {
		name       string
		fault      *pushsim.Fault
		mutate     func(*PushRequest)
		want       error
		status     int
		reason     string
		retryAfter time.Duration
	}{
		{name: "unknown access token", mutate: func(r *PushRequest) { r.Credential.Token = "ya29.made-up" },
			want: ErrProviderAuth, status: 401, reason: "UNAUTHENTICATED"},
		{name: "revoked access token", mutate: func(r *PushRequest) { r.Credential.Token = revoked },
			want: ErrProviderAuth, status: 401, reason: "UNAUTHENTICATED"},
		{name: "unregistered device", mutate: func(r *PushRequest) { r.DeviceToken = gone },
			want: ErrUnregistered, status: 404, reason: "UNREGISTERED"},
		{name: "device of another sender", mutate: func(r *PushRequest) { r.DeviceToken = foreign },
			want: ErrUnregistered, status: 403, reason: "SENDER_ID_MISMATCH"},
		{name: "token of another project", mutate: func(r *PushRequest) { r.Credential.Token = other },
			want: ErrRejected, status: 403, reason: "PERMISSION_DENIED"},
		{name: "quota exceeded", fault: ptr(pushsim.FCMFault(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded.").WithHeader("Retry-After", "7")),
			want: ErrThrottled, status: 429, reason: "QUOTA_EXCEEDED", retryAfter: 7 * time.Second},
		{name: "429 without FcmError", fault: ptr(pushsim.FCMFault(429, "RESOURCE_EXHAUSTED", "", "Slow down.")),
			want: ErrThrottled, status: 429, reason: "RESOURCE_EXHAUSTED"},
		{name: "invalid argument", fault: ptr(pushsim.FCMFault(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "Request contains an invalid argument.")),
			want: ErrRejected, status: 400, reason: "INVALID_ARGUMENT"},
		{name: "third-party auth", fault: ptr(pushsim.FCMFault(401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR", "Auth error from APNS or Web Push Service")),
			want: ErrRejected, status: 401, reason: "THIRD_PARTY_AUTH_ERROR"},
		{name: "internal", fault: ptr(pushsim.FCMFault(500, "INTERNAL", "INTERNAL", "Internal error.")),
			want: ErrUnavailable, status: 500, reason: "INTERNAL"},
		{name: "HTML 502 from a proxy", fault: &pushsim.Fault{Status: 502, Body: "<html><body>Bad Gateway</body></html>"},
			want: ErrUnavailable, status: 502},
		{name: "HTML 200 from a captive proxy", fault: &pushsim.Fault{Status: 200, Body: "<html><body>Log in</body></html>"},
			want: ErrUnavailable, status: 200, reason: "unreadable answer"},
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
			if pe.Status != tt.status || pe.Reason != tt.reason || pe.RetryAfter != tt.retryAfter || pe.Platform != PlatformFCM {
				t.Errorf("PushError %+v, want status %d reason %q retry after %v", pe, tt.status, tt.reason, tt.retryAfter)
			}
			if n := e.sim.Requests() - before; n != 1 {
				t.Errorf("%d requests, want 1 (no hidden retry)", n)
			}
		})
	}
	if n := len(e.sim.Pushes()); n != 0 {
		t.Errorf("%d pushes accepted", n)
	}
}

func ptr[T any](v T) *T { return &v }

// The SDK retries 503 for about 7 s; the sender's timeout cuts that short.
func TestFCMSender503WithinDeadline(t *testing.T) {
	const timeout = 300 * time.Millisecond
	e := newPushFCMEnv(t, func(c *FCMConfig) { c.Timeout = timeout })
	e.sim.FailNext(10, pushsim.FCMFault(503, "UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable."))

	start := time.Now()
	_, err := e.sender.Send(pushCtx(t), e.req([]byte("x")))
	elapsed := time.Since(start)
	var pe *PushError
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &pe) || pe.Reason != "timeout" {
		t.Fatalf("err = %v, want ErrUnavailable after a timeout", err)
	}
	if elapsed < timeout || elapsed > timeout+2*time.Second {
		t.Errorf("returned after %v, want about %v", elapsed, timeout)
	}
	if n := e.sim.Requests(); n < 1 || n > 3 {
		t.Errorf("%d requests", n)
	}
}

func TestFCMSenderNetworkErrors(t *testing.T) {
	// Nothing listens on a port just released: the dial is refused, and the SDK's retries of
	// network errors are cut short by the timeout.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	e := newPushFCMEnv(t, func(c *FCMConfig) { c.Endpoint = "https://" + addr + "/v1"; c.Timeout = 300 * time.Millisecond })
	_, err = e.sender.Send(pushCtx(t), e.req([]byte("x")))
	var pe *PushError
	if !errors.Is(err, ErrUnavailable) || !errors.As(err, &pe) || pe.Status != 0 {
		t.Errorf("refused: err = %v, want ErrUnavailable", err)
	}

	// The caller gives up.
	e = newPushFCMEnv(t)
	e.sim.Delay(time.Minute)
	ctx, cancel := context.WithCancel(pushCtx(t))
	cancel()
	_, err = e.sender.Send(ctx, e.req([]byte("x")))
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: err = %v, want ErrUnavailable and context.Canceled", err)
	}
}

func TestFCMSenderRefusesBeforeSending(t *testing.T) {
	e := newPushFCMEnv(t)
	tooBig := bodyForPayloadSize(t, e.req(nil), MaxPushPayload+1)
	tests := []struct {
		name   string
		req    PushRequest
		want   error
		reason string
	}{
		{"payload of 4097 bytes", tooBig, ErrPayloadTooLarge, ""},
		{"APNs request", func() PushRequest { r := e.req([]byte("x")); r.Platform = PlatformAPNs; return r }(), ErrRejected, ""},
		{"no project", func() PushRequest { r := e.req([]byte("x")); r.Credential.Project = ""; return r }(), ErrRejected, ""},
		{"project that changes the path", func() PushRequest { r := e.req([]byte("x")); r.Credential.Project = "../x"; return r }(), ErrRejected, ""},
		{"no access token", func() PushRequest { r := e.req([]byte("x")); r.Credential.Token = ""; return r }(), ErrProviderAuth, "credential has no token"},
		{"no device token", func() PushRequest { r := e.req([]byte("x")); r.DeviceToken = ""; return r }(), ErrRejected, "no device token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.sender.Send(pushCtx(t), tt.req)
			var pe *PushError
			if !errors.Is(err, tt.want) || !errors.As(err, &pe) || (tt.reason != "" && pe.Reason != tt.reason) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if n := e.sim.Requests(); n != 0 {
		t.Errorf("%d requests sent, want none", n)
	}
}

// The wake path's retry on ErrProviderAuth: a fresh token works on the same cached client.
func TestFCMSenderTokenRotation(t *testing.T) {
	e := newPushFCMEnv(t)
	if _, err := e.sender.Send(pushCtx(t), e.req([]byte("1"))); err != nil {
		t.Fatal(err)
	}
	e.sim.Revoke(e.bearer)
	if _, err := e.sender.Send(pushCtx(t), e.req([]byte("2"))); !errors.Is(err, ErrProviderAuth) {
		t.Fatalf("revoked token: err = %v", err)
	}
	e.bearer = e.sim.Issue(e.project)
	if _, err := e.sender.Send(pushCtx(t), e.req([]byte("3"))); err != nil {
		t.Fatal(err)
	}
	if pushes := e.sim.Pushes(); len(pushes) != 2 || pushes[1].Bearer != e.bearer {
		t.Errorf("pushes = %+v", pushes)
	}
}

// TestFCMSenderSharesOneTransport sends 200 pushes at once for two projects through the
// sender's default transport (its dialer counting TCP connections): the per-project clients share
// it, hence one HTTP/2 connection, even on a cold start.
func TestFCMSenderSharesOneTransport(t *testing.T) {
	sim := pushsim.NewFCM()
	t.Cleanup(sim.Close)
	var dials atomic.Int32
	tr := newFCMTransport()
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return dial(ctx, network, addr)
	}
	tr.TLSClientConfig = &tls.Config{RootCAs: sim.CertPool()}
	t.Cleanup(tr.CloseIdleConnections)
	s, err := NewFCMSender(FCMConfig{Endpoint: sim.URL() + "/v1", Transport: tr, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}

	projects := []string{"proj-a", "proj-b"}
	creds := map[string]tokensvc.Credential{}
	devices := map[string]string{}
	for _, p := range projects {
		creds[p] = tokensvc.Credential{Project: p, Token: sim.Issue(p)}
		devices[p] = sim.RegisterDevice(p)
	}
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		p := projects[i%2]
		wg.Go(func() {
			_, err := s.Send(pushCtx(t), PushRequest{Platform: PlatformFCM, DeviceToken: devices[p], Credential: creds[p],
				Kind: PushKindData, Enc: PushEncNone, Body: []byte(fmt.Sprint(i)), TTL: time.Minute})
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := len(sim.Pushes()); got != n {
		t.Errorf("%d pushes, want %d", got, n)
	}
	if d := dials.Load(); d < 1 || d > 2 {
		t.Errorf("%d TCP connections for %d sends, want 1 (at most 2)", d, n)
	} else {
		t.Logf("%d TCP connection(s) for %d concurrent sends", d, n)
	}
	if c := len(s.clients); c != len(projects) {
		t.Errorf("%d clients, want %d", c, len(projects))
	}
}
