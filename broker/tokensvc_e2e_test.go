package broker

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/rewind-broker/rewind/registry"
	"github.com/rewind-broker/rewind/testclient/pushsim"
	"github.com/rewind-broker/rewind/tokensvc"
)

// lateTokens lets a test build the token-source client after the push world exists.
type lateTokens struct{ c *tokensvc.Client }

func (l *lateTokens) Get(ctx context.Context, u string) (tokensvc.Credential, error) {
	return l.c.Get(ctx, u)
}
func (l *lateTokens) Invalidate(u, token string)            { l.c.Invalidate(u, token) }
func (l *lateTokens) Expiries() []tokensvc.CredentialExpiry { return l.c.Expiries() }

// TestRealTokenServiceWakesThroughFCM: the broker fetches its FCM credential from the reference
// token service (cmd/tokensvc's handler), which mints it with x/oauth2 from a service account
// against a fake Google OAuth endpoint; the push reaches the fake FCM with that token.
func TestRealTokenServiceWakesThroughFCM(t *testing.T) {
	late := &lateTokens{}
	w := newPushWorld(t, func(c *PushConfig) { c.Tokens = late })
	project := fcmProject

	// Google's OAuth endpoint: mints FCM access tokens the fake FCM accepts.
	var mints atomic.Int64
	minted := make(chan string, 8)
	google := httptest.NewTLSServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		mints.Add(1)
		if err := r.ParseForm(); err != nil || r.Form.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" || r.Form.Get("assertion") == "" {
			http.Error(rw, `{"error":"invalid_grant"}`, http.StatusBadRequest)
			return
		}
		tok := w.providers.FCM.Issue(project)
		minted <- tok
		rw.Header().Set("Content-Type", "application/json")
		json.NewEncoder(rw).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3600})
	}))
	defer google.Close()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	sa, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": project, "private_key_id": "0123456789abcdef",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": "fcm@" + project + ".iam.gserviceaccount.com", "client_id": "1", "token_uri": google.URL + "/token",
	})
	const brokerID, bearer, secret = "bm.test", "broker-bearer-key-123", "vendor-hmac-secret"
	env := map[string]string{"SA_JSON": string(sa), "BEARER_KEYS": brokerID + " " + bearer, "HMAC_SECRET": secret}
	svc, err := tokensvc.NewServer(tokensvc.ServerConfig{
		Apps: []tokensvc.AppConfig{{Name: "dmrapp", Kind: tokensvc.KindFCM, ServiceAccountEnv: "SA_JSON"}},
		Auth: &tokensvc.AuthConfig{BearerKeysEnv: "BEARER_KEYS", HMACSecretEnv: "HMAC_SECRET"},
	}, tokensvc.ServerOptions{Getenv: func(k string) string { return env[k] }, HTTPClient: google.Client()})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	vendor := httptest.NewServer(svc)
	defer vendor.Close()

	vendorURL, _ := url.Parse(vendor.URL)
	late.c, err = tokensvc.NewClient(tokensvc.ClientConfig{
		Policy:     tokensvc.URLPolicy{AllowInsecure: true},
		BearerKeys: map[string]string{vendorURL.Host: bearer},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer late.c.Close()

	w.addTerminal(bob, "b")
	device := w.providers.RegisterDevice(pushsim.PlatformFCM, project)
	attachURL := vendor.URL + "/token/dmrapp?broker=" + brokerID + "&code=" + tokensvc.VerificationCode([]byte(secret), brokerID)
	if err := w.store.PutAttach(context.Background(), registry.Attach{Terminal: bob, Platform: "fcm", URL: attachURL, Token: device}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		res := w.publishText(t, bob, 2620009, "via the reference token service")
		if want := map[bool]string{true: WakeSent, false: WakeAlreadyPending}[i == 0]; res["push"] != want {
			t.Fatalf("publish %d: %v, want %s", i, res, want)
		}
	}
	p, err := w.providers.Next(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if tok := <-minted; p.Bearer != tok || p.DeviceToken != device {
		t.Fatalf("push bearer %q device %q; want the minted token and %q", p.Bearer, p.DeviceToken, device)
	}
	if mints.Load() != 1 {
		t.Fatalf("Google minted %d times, want 1", mints.Load())
	}
	b := w.dial(bob, "b")
	for i := 0; i < 3; i++ {
		if m, _, err := b.RecvText(ctx(t)); err != nil || m.Text != "via the reference token service" {
			t.Fatalf("delivery %d: %+v %v", i, m, err)
		}
	}
}
