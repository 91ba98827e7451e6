// Command tokensvc is the reference vendor token service: it holds a terminal
// vendor's Google service-account key and Apple .p8 key and hands brokers
// short-lived FCM access tokens and APNs provider JWTs. Run "tokensvc --help"
// for the manual; the logic lives in package tokensvc.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rewind-broker/rewind/tokensvc"
)

// HTTP server limits, each with its reason.
const (
	// readHeaderTimeout stops slow-loris clients; a broker sends a few
	// hundred bytes of headers at once.
	readHeaderTimeout = 10 * time.Second
	// writeTimeout covers the longest answer: a Google mint (bounded at 20 s
	// inside tokensvc) plus slack.
	writeTimeout = 40 * time.Second
	// idleTimeout lets a broker reuse its connection for a burst of apps
	// without holding sockets open for long.
	idleTimeout = 2 * time.Minute
	// maxHeaderBytes: requests carry only a bearer key and a short URL.
	maxHeaderBytes = 16 << 10
)

const manual = `tokensvc - the reference vendor token service for Rewind brokers

A terminal vendor runs tokensvc next to its own keys. Brokers never see those
keys: when a broker needs to wake one of the vendor's terminals it asks
tokensvc for a short-lived credential and pushes with that.

  FCM apps   an OAuth 2.0 access token for FCM HTTP v1, minted from the
             app's Google service-account key; one token is shared by all
             brokers until 5 minutes before it expires.
  APNs apps  an APNs provider JWT (ES256) signed with the app's .p8 key,
             reused for 40 minutes (configurable 20-50) as Apple requires.

Brokers send  GET <path>/<app>  (or GET <path>?app=<app>) and receive JSON:

  {"type":"FCM HTTP v1","project":"mydmrapp-jaso42","token":"ya29...","expires":3299}
  {"type":"APNs","topic":"com.example.mydmrapp","token":"eyJ...","expires":2400,"environment":"production"}

"expires" is relative: seconds the broker may use the token. Callers can be
verified by a verification code in the URL (?broker=<identity>&code=<hex
HMAC-SHA-256(secret, identity)>), a per-broker bearer key (Authorization:
Bearer <key>) and an address allow-list, in any combination, per app or for
the whole service. Refusals are 401/403 JSON, counted in metrics and
rate-limited per address (429 with Retry-After).

USAGE
  tokensvc --config FILE (--tls-cert FILE --tls-key FILE | --insecure-http) [flags]

FLAGS (every flag can also be set by the environment variable shown)
%s
EXAMPLE CONFIGURATION (JSON; relative paths are relative to the config file)
%s
  brokers.keys holds "<broker identity> <key>" lines; mydmrapp.secrets holds
  one verification secret per line. Secrets never go in the config itself.
  The full schema is in docs/vendor-guide.md.

EXAMPLES
  Check a configuration and its keys, then exit:
    tokensvc --config /etc/tokensvc/config.json --check-config

  Serve HTTPS on all interfaces:
    tokensvc --config /etc/tokensvc/config.json --listen :8443 \
      --tls-cert /etc/tokensvc/tls/fullchain.pem --tls-key /etc/tokensvc/tls/privkey.pem

  Behind a TLS-terminating reverse proxy on the same host:
    TOKENSVC_CONFIG=/etc/tokensvc/config.json TOKENSVC_INSECURE_HTTP=true tokensvc

  What a broker sends:
    curl -H 'Accept: application/json' \
      -H 'Authorization: Bearer k3y-for-bm-example-net-0123456789' \
      'https://tokens.example.com:8443/token/mydmrapp?broker=bm.example.net&code=2da5e198514d33ffb70ce6c9af9b5f87565cab96cd0f94b8a2ceb1b018e446fb'

  Compute a verification code (secret example-app-secret-2024, broker
  bm.example.net; gives the code above):
    printf %%s 'bm.example.net' | openssl dgst -sha256 -hmac 'example-app-secret-2024'

  Health and metrics:
    curl https://tokens.example.com:8443/healthz
    curl https://tokens.example.com:8443/metrics

SIGNALS
  SIGINT, SIGTERM  stop accepting requests, finish those in progress (at most
                   --shutdown-timeout), exit 0.
  SIGHUP           reload the configuration, keys, secrets and TLS
                   certificate without dropping a request; on any error the
                   running configuration stays and the error is logged.
                   Unchanged apps keep their cached credentials.

EXIT STATUS
  0 on a clean stop or after --help / --check-config, 1 on a runtime or
  configuration error, 2 on bad flags.
`

// exampleConfig is the configuration shown in --help; a test keeps it valid.
const exampleConfig = `  {
    "auth": {
      "bearer_keys_file": "brokers.keys",
      "allow_cidrs": ["203.0.113.0/24", "2001:db8:42::/48"]
    },
    "apps": [
      {"name": "mydmrapp", "kind": "fcm",
       "service_account_file": "mydmrapp-firebase-adminsdk.json",
       "auth": {"bearer_keys_file": "brokers.keys",
                "hmac_secret_file": "mydmrapp.secrets"}},
      {"name": "mydmrapp-ios", "kind": "apns",
       "key_file": "AuthKey_ABC123DEFG.p8", "key_id": "ABC123DEFG",
       "team_id": "DEF123GHIJ", "topic": "com.example.mydmrapp",
       "environment": "production"}
    ]
  }
`

// runEnv is what run takes from its surroundings, so tests can drive it.
type runEnv struct {
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
	// reload delivers SIGHUP.
	reload <-chan os.Signal
	// ready, if set, is called with the listening address.
	ready func(net.Addr)
	// reloaded, if set, is called after each reload with its outcome.
	reloaded func(error)
}

// usageError marks bad flags (exit status 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() + " (see tokensvc --help)" }
func (e usageError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	err := run(ctx, os.Args[1:], runEnv{getenv: os.Getenv, stdout: os.Stdout, stderr: os.Stderr, reload: hup})
	if err != nil {
		fmt.Fprintln(os.Stderr, "tokensvc:", err)
		if errors.As(err, new(usageError)) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// options are the parsed flags.
type options struct {
	config          string
	listen          string
	tlsCert         string
	tlsKey          string
	insecureHTTP    bool
	path            string
	logLevel        string
	logFormat       string
	shutdownTimeout time.Duration
	checkConfig     bool
}

// flagSpec describes one flag and its environment variable.
type flagSpec struct {
	name, env, def, help string
	isBool               bool
}

var flagSpecs = []flagSpec{
	{name: "config", env: "TOKENSVC_CONFIG", help: "path of the JSON configuration file (required)"},
	{name: "listen", env: "TOKENSVC_LISTEN", def: "127.0.0.1:8443", help: "address to listen on; use :8443 to accept brokers from other hosts"},
	{name: "tls-cert", env: "TOKENSVC_TLS_CERT", help: "PEM certificate chain for HTTPS (reloaded on SIGHUP)"},
	{name: "tls-key", env: "TOKENSVC_TLS_KEY", help: "PEM private key for HTTPS"},
	{name: "insecure-http", env: "TOKENSVC_INSECURE_HTTP", def: "false", isBool: true, help: "serve plain HTTP; brokers only call https URLs, so use this only behind a TLS-terminating proxy or for development"},
	{name: "path", env: "TOKENSVC_PATH", def: tokensvc.DefaultPathPrefix, help: "URL path prefix credentials are served under"},
	{name: "log-level", env: "TOKENSVC_LOG_LEVEL", def: "info", help: "debug, info, warn or error"},
	{name: "log-format", env: "TOKENSVC_LOG_FORMAT", def: "text", help: "text or json"},
	{name: "shutdown-timeout", env: "TOKENSVC_SHUTDOWN_TIMEOUT", def: "10s", help: "how long a stop waits for requests in progress"},
	{name: "check-config", env: "TOKENSVC_CHECK_CONFIG", def: "false", isBool: true, help: "load the configuration and every key and secret it names, report, and exit"},
}

func flagsHelp() string {
	var b strings.Builder
	for _, f := range flagSpecs {
		arg := " VALUE"
		if f.isBool {
			arg = ""
		}
		fmt.Fprintf(&b, "  --%s%s  (%s", f.name, arg, f.env)
		if f.def != "" && f.def != "false" {
			fmt.Fprintf(&b, ", default %s", f.def)
		}
		fmt.Fprintf(&b, ")\n      %s\n", f.help)
	}
	return b.String()
}

// parseFlags reads args over environment defaults.
func parseFlags(args []string, getenv func(string) string) (options, bool, error) {
	fs := flag.NewFlagSet("tokensvc", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	values := make(map[string]*string)
	bools := make(map[string]*bool)
	for _, f := range flagSpecs {
		def := f.def
		if v := getenv(f.env); v != "" {
			def = v
		}
		if f.isBool {
			b, err := strconv.ParseBool(def)
			if err != nil {
				return options{}, false, usageError{fmt.Errorf("%s=%q: want true or false", f.env, def)}
			}
			bools[f.name] = fs.Bool(f.name, b, f.help)
			continue
		}
		values[f.name] = fs.String(f.name, def, f.help)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return options{}, true, nil
		}
		return options{}, false, usageError{err}
	}
	if fs.NArg() > 0 {
		return options{}, false, usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	o := options{
		config:       *values["config"],
		listen:       *values["listen"],
		tlsCert:      *values["tls-cert"],
		tlsKey:       *values["tls-key"],
		insecureHTTP: *bools["insecure-http"],
		path:         *values["path"],
		logLevel:     *values["log-level"],
		logFormat:    *values["log-format"],
		checkConfig:  *bools["check-config"],
	}
	d, err := time.ParseDuration(*values["shutdown-timeout"])
	if err != nil || d <= 0 {
		return options{}, false, usageError{fmt.Errorf("--shutdown-timeout %q: want a positive duration such as 10s", *values["shutdown-timeout"])}
	}
	o.shutdownTimeout = d
	switch {
	case o.config == "":
		return options{}, false, usageError{errors.New("--config (TOKENSVC_CONFIG) is required")}
	case o.checkConfig:
	case (o.tlsCert == "") != (o.tlsKey == ""):
		return options{}, false, usageError{errors.New("--tls-cert and --tls-key go together")}
	case o.tlsCert != "" && o.insecureHTTP:
		return options{}, false, usageError{errors.New("--insecure-http contradicts --tls-cert/--tls-key")}
	case o.tlsCert == "" && !o.insecureHTTP:
		return options{}, false, usageError{errors.New("brokers only call https token services: give --tls-cert and --tls-key, or --insecure-http when a proxy terminates TLS")}
	}
	return o, false, nil
}

func newLogger(o options, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return nil, usageError{fmt.Errorf("--log-level %q: want debug, info, warn or error", o.logLevel)}
	}
	hopts := &slog.HandlerOptions{Level: level}
	switch o.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, hopts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, hopts)), nil
	}
	return nil, usageError{fmt.Errorf("--log-format %q: want text or json", o.logFormat)}
}

// run is the whole program: flags → config → server → serve until ctx ends.
func run(ctx context.Context, args []string, env runEnv) error {
	o, help, err := parseFlags(args, env.getenv)
	if err != nil {
		return err
	}
	if help {
		_, err := fmt.Fprintf(env.stdout, manual, flagsHelp(), exampleConfig)
		return err
	}
	log, err := newLogger(o, env.stderr)
	if err != nil {
		return err
	}
	cfg, err := tokensvc.LoadServerConfig(o.config)
	if err != nil {
		return err
	}
	srv, err := tokensvc.NewServer(cfg, tokensvc.ServerOptions{PathPrefix: o.path, Logger: log, Getenv: env.getenv})
	if err != nil {
		return err
	}
	defer srv.Close()
	if o.checkConfig {
		_, err := fmt.Fprintf(env.stdout, "configuration OK: %d apps (%s)\n", len(srv.Apps()), strings.Join(srv.Apps(), ", "))
		return err
	}

	var cert atomic.Pointer[tls.Certificate]
	if o.tlsCert != "" {
		c, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
		if err != nil {
			return fmt.Errorf("TLS certificate: %w", err)
		}
		cert.Store(&c)
	}
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: readHeaderTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelInfo),
	}
	if o.tlsCert != "" {
		hs.TLSConfig = &tls.Config{
			MinVersion: tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
				return cert.Load(), nil
			},
		}
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	scheme := "https"
	if o.tlsCert == "" {
		scheme = "http"
		log.Warn("serving plain HTTP: brokers only call https token services, so a TLS-terminating proxy must sit in front")
	}
	log.Info("tokensvc listening", "addr", ln.Addr().String(), "scheme", scheme, "path", o.path, "apps", strings.Join(srv.Apps(), ","))
	if env.ready != nil {
		env.ready(ln.Addr())
	}

	serveErr := make(chan error, 1)
	go func() {
		if scheme == "https" {
			serveErr <- hs.ServeTLS(ln, "", "")
		} else {
			serveErr <- hs.Serve(ln)
		}
	}()

	for {
		select {
		case err := <-serveErr:
			return fmt.Errorf("serve: %w", err)
		case <-env.reload:
			err := reload(o, srv, &cert)
			if err != nil {
				log.Error("reload failed; the running configuration stays", "err", err)
			} else {
				log.Info("reloaded configuration and certificate")
			}
			if env.reloaded != nil {
				env.reloaded(err)
			}
		case <-ctx.Done():
			log.Info("shutting down", "timeout", o.shutdownTimeout)
			sctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
			defer cancel()
			err := hs.Shutdown(sctx)
			<-serveErr // http.ErrServerClosed once Serve has returned
			if err != nil {
				hs.Close()
				return fmt.Errorf("shutdown: requests still running after %v: %w", o.shutdownTimeout, err)
			}
			log.Info("stopped")
			return nil
		}
	}
}

// reload re-reads the configuration, its keys and the TLS certificate. It
// checks everything before changing anything.
func reload(o options, srv *tokensvc.Server, cert *atomic.Pointer[tls.Certificate]) error {
	cfg, err := tokensvc.LoadServerConfig(o.config)
	if err != nil {
		return err
	}
	var c tls.Certificate
	if o.tlsCert != "" {
		if c, err = tls.LoadX509KeyPair(o.tlsCert, o.tlsKey); err != nil {
			return fmt.Errorf("TLS certificate: %w", err)
		}
	}
	if err := srv.Reload(cfg); err != nil {
		return err
	}
	if o.tlsCert != "" {
		cert.Store(&c)
	}
	return nil
}
