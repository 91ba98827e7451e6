package tokensvc

import (
	"crypto/ecdsa"
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

func apnsConfig(window string) string {
	w := ""
	if window != "" {
		w = fmt.Sprintf(`, "jwt_reuse_window": %q`, window)
	}
	return `{"rate_limit": {"requests_per_second": -1}, "apps": [{"name": "ios", "kind": "apns", "key_file": "AuthKey_ABC123DEFG.p8",
		"key_id": "ABC123DEFG", "team_id": "DEF123GHIJ", "topic": "com.example.mydmrapp",
		"environment": "development"` + w + `}]}`
}

func newAPNsEnv(t *testing.T, window string) (*testEnv, *ecdsa.PrivateKey) {
	t.Helper()
	key, p8 := newP8(t)
	e := newTestEnv(t, nil, apnsConfig(window), files{"AuthKey_ABC123DEFG.p8": string(p8)}, nil)
	return e, key
}

func TestAPNsCredential(t *testing.T) {
	e, key := newAPNsEnv(t, "")
	c := e.credential("/token/ios")
	if c.Type != TypeAPNs || c.Topic != "com.example.mydmrapp" || c.Environment != EnvironmentDevelopment || c.Expires != 2400 || c.Project != "" {
		t.Fatalf("%+v", c)
	}
	kid, iss, iat := verifyAPNsJWT(t, c.Token, &key.PublicKey)
	if kid != "ABC123DEFG" || iss != "DEF123GHIJ" || iat != e.clock.Now().Unix() {
		t.Fatalf("kid %q iss %q iat %d, want ABC123DEFG DEF123GHIJ %d", kid, iss, iat, e.clock.Now().Unix())
	}
	// Wire form: exactly the five fields of PROTOCOL.md §8.
	_, _, body := e.get("/token/ios")
	var raw map[string]any
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	if len(raw) != 5 || raw["type"] != "APNs" || raw["environment"] != "development" {
		t.Fatalf("wire form %s", body)
	}
	if v := e.metric(`tokensvc_mint_duration_seconds_count{app="ios",kind="apns"}`); v != 1 {
		t.Fatalf("mint count %v, want 1", v)
	}
}

// TestAPNsReuseWindow: one JWT is handed out for the whole default 40-minute
// window, its expires counting down, and replaced when the window ends.
func TestAPNsReuseWindow(t *testing.T) {
	e, key := newAPNsEnv(t, "")
	first := e.credential("/token/ios")
	e.clock.Advance(25 * time.Minute)
	if c := e.credential("/token/ios"); c.Token != first.Token || c.Expires != 15*60 {
		t.Fatalf("after 25m: expires %d, same token %v", c.Expires, c.Token == first.Token)
	}
	if v := e.metric(`tokensvc_credential_expiry_seconds{app="ios"}`); v != 15*60 {
		t.Fatalf("expiry gauge %v, want 900", v)
	}
	e.clock.Advance(15*time.Minute - time.Second)
	if c := e.credential("/token/ios"); c.Token != first.Token || c.Expires != 1 {
		t.Fatalf("after 39m59s: expires %d, same token %v", c.Expires, c.Token == first.Token)
	}
	e.clock.Advance(time.Second)
	c := e.credential("/token/ios")
	if c.Token == first.Token || c.Expires != 2400 {
		t.Fatalf("after 40m: expires %d, same token %v", c.Expires, c.Token == first.Token)
	}
	_, _, iat := verifyAPNsJWT(t, c.Token, &key.PublicKey)
	if iat != e.clock.Now().Unix() {
		t.Fatalf("new JWT iat %d, want %d", iat, e.clock.Now().Unix())
	}
}

// TestAPNsAppleRules walks the clock over five hours in uneven steps for the
// smallest, default and largest windows and checks Apple's rules on every
// answer: a JWT is never older than 60 minutes while a broker may use it
// (age + expires), and JWTs are never replaced less than 20 minutes apart.
func TestAPNsAppleRules(t *testing.T) {
	for _, window := range []string{"20m", "40m", "50m"} {
		t.Run(window, func(t *testing.T) {
			e, key := newAPNsEnv(t, window)
			w, _ := time.ParseDuration(window)
			start := e.clock.Now()
			var lastTok string
			var lastIat int64
			changes := 0
			for step := 0; e.clock.Now().Sub(start) < 5*time.Hour; step++ {
				c := e.credential("/token/ios")
				now := e.clock.Now().Unix()
				if c.Token != lastTok {
					_, _, iat := verifyAPNsJWT(t, c.Token, &key.PublicKey)
					if lastTok != "" && iat-lastIat < int64(20*time.Minute/time.Second) {
						t.Fatalf("JWT replaced after %d s, Apple needs >= 20 min", iat-lastIat)
					}
					lastTok, lastIat = c.Token, iat
					changes++
				}
				age := now - lastIat
				if age > int64(w/time.Second) {
					t.Fatalf("handed out a JWT aged %d s, window %v", age, w)
				}
				if age+c.Expires > int64(60*time.Minute/time.Second) {
					t.Fatalf("JWT usable until age %d s, Apple refuses > 3600", age+c.Expires)
				}
				if age+c.Expires != int64(w/time.Second) {
					t.Fatalf("age %d + expires %d != window %v", age, c.Expires, w)
				}
				e.clock.Advance(time.Duration(97+step%7*131) * time.Second)
			}
			// A JWT is replaced at the first request after its window, at most
			// one step (883 s) late.
			if min := int(5 * time.Hour / (w + 883*time.Second)); changes < min {
				t.Fatalf("%d JWTs in 5 h with window %v, want at least %d", changes, w, min)
			}
		})
	}
}

// TestAPNsClockBack: a clock set back before the JWT's iat gets a new JWT,
// since Apple refuses one issued in the future.
func TestAPNsClockBack(t *testing.T) {
	e, key := newAPNsEnv(t, "")
	first := e.credential("/token/ios")
	e.clock.Advance(-10 * time.Minute)
	c := e.credential("/token/ios")
	if c.Token == first.Token {
		t.Fatal("kept a JWT from the future")
	}
	if _, _, iat := verifyAPNsJWT(t, c.Token, &key.PublicKey); iat != e.clock.Now().Unix() {
		t.Fatalf("iat %d, want %d", iat, e.clock.Now().Unix())
	}
}

// TestAPNsFromEnvDefaultsToProduction: a key from the environment, no
// environment field.
func TestAPNsFromEnvDefaultsToProduction(t *testing.T) {
	key, p8 := newP8(t)
	e := newTestEnv(t, nil, `{"apps": [{"name": "ios", "kind": "apns", "key_env": "APNS_KEY",
		"key_id": "ABC123DEFG", "team_id": "DEF123GHIJ", "topic": "com.example.app"}]}`,
		nil, map[string]string{"APNS_KEY": string(p8)})
	c := e.credential("/token/ios")
	if c.Environment != EnvironmentProduction {
		t.Fatalf("environment %q", c.Environment)
	}
	verifyAPNsJWT(t, c.Token, &key.PublicKey)
}
