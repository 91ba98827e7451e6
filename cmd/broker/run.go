package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rewind-broker/rewind/broker"
	"github.com/rewind-broker/rewind/registry"
)

// shutdownGrace is added to the drain timeout for closing listeners and the registry, so the
// process always exits within a bounded time after a signal.
const shutdownGrace = 5 * time.Second

func run(args []string, stdout, stderr io.Writer, signals <-chan os.Signal) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "broker:", err)
		return 2
	}
	log, err := newLogger(o, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "broker:", err)
		return 2
	}
	if err := serve(o, log, stdout, signals); err != nil {
		log.Error("broker stopped", "err", err)
		var ce configError
		if errors.As(err, &ce) {
			return 2
		}
		return 1
	}
	return 0
}

type configError struct{ error }

func newLogger(o options, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", o.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch o.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", o.logFormat)
}

func serve(o options, log *slog.Logger, stdout io.Writer, signals <-chan os.Signal) error {
	if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
		return configError{fmt.Errorf("data directory: %w", err)}
	}
	adminKey, err := loadAdminKey(o, stdout)
	if err != nil {
		return configError{err}
	}
	encKey, err := loadEncryptionKey(o)
	if err != nil {
		return configError{err}
	}
	store, err := registry.OpenBadger(registry.BadgerConfig{
		Dir:           filepath.Join(o.dataDir, "registry"),
		EncryptionKey: encKey,
		Logger:        log.With("component", "registry"),
	})
	if err != nil {
		return configError{fmt.Errorf("open registry: %w", err)}
	}
	defer store.Close()

	push, err := buildPush(o, store, log)
	if err != nil {
		return configError{err}
	}
	defer push.close()

	var origins []string
	if o.originPatterns != "" {
		origins = strings.Split(o.originPatterns, ",")
	}
	srv, err := broker.New(broker.Config{
		MaxDatagram:        o.maxDatagram,
		HandshakeTimeout:   o.handshake,
		KeepAliveTimeout:   o.keepAlive,
		SendQueue:          o.sendQueue,
		AuthFailures:       o.authFailures,
		AuthWindow:         o.authWindow,
		MaxSubscriptions:   o.maxSubs,
		DrainTimeout:       o.drainTimeout,
		OriginPatterns:     origins,
		Push:               push.cfg,
		EventRetention:     o.eventRetention,
		EventBuffer:        o.eventBuffer,
		PushAuditRetention: o.auditRetention,
		Logger:             log,
	}, store)
	if err != nil {
		return configError{err}
	}
	push.observe = srv.ObserveTokenFetch

	wsLn, err := net.Listen("tcp", o.listen)
	if err != nil {
		return configError{fmt.Errorf("--listen: %w", err)}
	}
	adminLn, err := net.Listen("tcp", o.adminListen)
	if err != nil {
		wsLn.Close()
		return configError{fmt.Errorf("--admin-listen: %w", err)}
	}
	mux := http.NewServeMux()
	mux.Handle("/rewind", srv)
	mux.Handle(broker.PushTokenRoute, srv.PushTokenHandler()) // signed background token updates (no session)
	wsServer := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	adminMux := http.NewServeMux()
	if push.devMux != nil {
		adminMux.Handle("/dev/", push.devMux)
	}
	adminMux.Handle("/dashboard/", srv.DashboardHandler())
	adminMux.Handle("/", srv.AdminHandler(adminKey))
	adminServer := &http.Server{Handler: adminMux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}

	errs := make(chan error, 2)
	scheme := "ws"
	go func() {
		if o.tlsCert != "" {
			errs <- wsServer.ServeTLS(wsLn, o.tlsCert, o.tlsKey)
		} else {
			errs <- wsServer.Serve(wsLn)
		}
	}()
	if o.tlsCert != "" {
		scheme = "wss"
	}
	go func() { errs <- adminServer.Serve(adminLn) }()
	log.Info("broker listening",
		"terminals", scheme+"://"+wsLn.Addr().String()+"/rewind",
		"admin", "http://"+adminLn.Addr().String(),
		"data", o.dataDir, "encrypted", encKey != nil)

	var runErr error
	select {
	case s := <-signals:
		log.Info("draining", "signal", s.String())
	case err := <-errs:
		runErr = fmt.Errorf("listener failed: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.drainTimeout+shutdownGrace)
	defer cancel()
	// Stop accepting new connections first, then drain the sessions, then the admin API.
	wsServer.SetKeepAlivesEnabled(false)
	wsLn.Close()
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn("drain incomplete; remaining sessions dropped", "err", err)
	}
	wsServer.Shutdown(ctx)
	adminServer.Shutdown(ctx)
	log.Info("broker stopped")
	return runErr
}

// loadAdminKey returns the admin key from the flag, the key file, or <data>/admin.key; it
// generates the latter on first run and prints it once with the next steps.
func loadAdminKey(o options, stdout io.Writer) (string, error) {
	if o.adminKey != "" {
		return o.adminKey, nil
	}
	path := o.adminKeyFile
	if path == "" {
		path = filepath.Join(o.dataDir, "admin.key")
	}
	b, err := os.ReadFile(path)
	if err == nil {
		key := strings.TrimSpace(string(b))
		if key == "" {
			return "", fmt.Errorf("admin key file %s is empty", path)
		}
		return key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) || o.adminKeyFile != "" {
		return "", fmt.Errorf("admin key: %w", err)
	}
	var raw [32]byte
	rand.Read(raw[:])
	key := base64.RawURLEncoding.EncodeToString(raw[:])
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write admin key: %w", err)
	}
	fmt.Fprintf(stdout, `
Rewind Broker: first run. A new admin key was generated and stored in %[1]s (mode 0600):

    %[2]s

It is shown only this once. Next steps:
    go run ./cmd/brokerctl --admin-key-file %[1]s terminal add 262000101 --password s3cret --name "My phone"
    go run ./cmd/testclient listen --id 262000101 --password s3cret

`, path, key)
	return key, nil
}

func loadEncryptionKey(o options) ([]byte, error) {
	v := o.encKey
	if o.encKeyFile != "" {
		if v != "" {
			return nil, errors.New("give --encryption-key or --encryption-key-file, not both")
		}
		b, err := os.ReadFile(o.encKeyFile)
		if err != nil {
			return nil, fmt.Errorf("encryption key: %w", err)
		}
		v = strings.TrimSpace(string(b))
	}
	if v == "" {
		return nil, nil
	}
	key, err := registry.ParseEncryptionKey(v)
	if err != nil {
		return nil, fmt.Errorf("encryption key: %w", err)
	}
	return key, nil
}
