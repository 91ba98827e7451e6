package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/rewind-broker/rewind/broker"
	"github.com/rewind-broker/rewind/registry"
	"github.com/rewind-broker/rewind/testclient/pushsim"
	"github.com/rewind-broker/rewind/tokensvc"
)

// pushWiring is everything the push fallback needs, built from flags.
type pushWiring struct {
	cfg     *broker.PushConfig
	tokens  *tokensvc.Client
	sim     *pushsim.Providers // --dev only
	devMux  http.Handler       // --dev only: mounted under /dev/ on the admin listener
	closers []func()
}

func (p *pushWiring) close() {
	for i := len(p.closers) - 1; i >= 0; i-- {
		p.closers[i]()
	}
}

func buildPush(o options, store *registry.Badger, log *slog.Logger) (*pushWiring, error) {
	p := &pushWiring{}
	policy := tokensvc.URLPolicy{AllowInsecure: o.insecureTokenURLs || o.dev}
	for _, h := range strings.Split(o.vendorHosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			policy.AllowedHosts = append(policy.AllowedHosts, h)
		}
	}
	keys, err := readVendorKeys(o.vendorKeysFile)
	if err != nil {
		return nil, err
	}
	fcmCfg := broker.FCMConfig{Endpoint: o.fcmEndpoint, Logger: log}
	apnsCfg := broker.APNsConfig{ProductionHost: o.apnsHost, DevelopmentHost: o.apnsDevHost, Logger: log}
	if o.dev {
		p.sim = pushsim.New()
		p.closers = append(p.closers, p.sim.Close)
		fcmCfg.Endpoint = p.sim.FCM.URL() + "/v1"
		fcmCfg.Transport = p.sim.FCM.Client().Transport
		apnsCfg.ProductionHost, apnsCfg.DevelopmentHost = p.sim.APNs.URL(), p.sim.APNs.URL()
		apnsCfg.Transport = p.sim.APNs.Client().Transport
		p.devMux = devHandler(p.sim, log)
	}
	p.tokens, err = tokensvc.NewClient(tokensvc.ClientConfig{
		Policy:     policy,
		BearerKeys: keys,
		Cache:      broker.TokenCache{Blobs: store},
		Logger:     log.With("component", "tokens"),
	})
	if err != nil {
		p.close()
		return nil, err
	}
	p.closers = append(p.closers, func() { p.tokens.Close() })
	fcm, err := broker.NewFCMSender(fcmCfg)
	if err != nil {
		p.close()
		return nil, fmt.Errorf("fcm: %w", err)
	}
	apns, err := broker.NewAPNsSender(apnsCfg)
	if err != nil {
		p.close()
		return nil, fmt.Errorf("apns: %w", err)
	}
	p.cfg = &broker.PushConfig{
		Store:       store,
		Tokens:      p.tokens,
		Senders:     map[broker.Platform]broker.Sender{broker.PlatformFCM: fcm, broker.PlatformAPNs: apns},
		Policy:      policy,
		OutboxTTL:   o.outboxTTL,
		PlainLegacy: o.plainLegacy,
		WakeQuiet:   o.wakeQuiet,
	}
	return p, nil
}

// readVendorKeys reads "host key" lines; # starts a comment.
func readVendorKeys(path string) (map[string]string, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--vendor-keys-file: %w", err)
	}
	defer f.Close()
	keys := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		host, key, ok := strings.Cut(line, " ")
		if !ok || strings.TrimSpace(key) == "" {
			return nil, fmt.Errorf("--vendor-keys-file line %d: want \"host key\"", n)
		}
		keys[host] = strings.TrimSpace(key)
	}
	return keys, sc.Err()
}

// devHandler serves the developer mode's helpers on the admin listener, without authentication
// (--dev is for one machine):
//
//	GET  /dev/token/fcm, /dev/token/apns  a token service issuing the fake providers' credentials
//	POST /dev/devices?platform=fcm|apns  register a fake device; answers its device token
//	GET  /dev/pushes                     every push the fake providers accepted
func devHandler(sim *pushsim.Providers, log *slog.Logger) http.Handler {
	const project, team, topic = "rewind-dev", "DEVTEAM123", "com.example.rewind.dev"
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /dev/token/fcm", func(w http.ResponseWriter, r *http.Request) {
		reply(w, tokensvc.Credential{Type: tokensvc.TypeFCM, Project: project, Token: sim.FCM.Issue(project), Expires: 3600})
	})
	mux.HandleFunc("GET /dev/token/apns", func(w http.ResponseWriter, r *http.Request) {
		reply(w, tokensvc.Credential{Type: tokensvc.TypeAPNs, Topic: topic, Token: sim.APNs.Issue(team), Expires: 3000, Environment: tokensvc.EnvironmentProduction})
	})
	mux.HandleFunc("POST /dev/devices", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("platform") {
		case "fcm", "":
			reply(w, map[string]string{"platform": "fcm", "token": sim.RegisterDevice(pushsim.PlatformFCM, project)})
		case "apns":
			reply(w, map[string]string{"platform": "apns", "token": sim.RegisterDevice(pushsim.PlatformAPNs, topic), "topic": topic})
		default:
			http.Error(w, "platform must be fcm or apns", http.StatusBadRequest)
		}
	})
	mux.HandleFunc("GET /dev/pushes", func(w http.ResponseWriter, r *http.Request) {
		type push struct {
			Platform, Device, Priority, CollapseKey string
			Data                                    map[string]string
			Received                                string
		}
		out := []push{}
		for _, p := range sim.Pushes() {
			out = append(out, push{string(p.Platform), p.DeviceToken, p.Priority, p.CollapseKey, p.Data, p.Received.Format("15:04:05.000")})
		}
		reply(w, out)
	})
	log.Warn("developer mode: fake FCM and APNs, dev token service at /dev/token/{fcm,apns} on the admin listener; never use in production")
	return mux
}
