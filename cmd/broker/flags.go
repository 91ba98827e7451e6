package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rewind-broker/rewind/broker"
)

const manual = `broker — Rewind Broker node

Keeps long-lived Rewind sessions (binary WebSocket, path /rewind) with DMR terminal apps,
authenticates them by challenge/response, and routes their texts, statuses and location
requests live. State (terminals and their passwords) lives in an embedded badger database.

USAGE
  broker [flags]

With no flags the broker keeps its data in ./data, listens for terminals on
127.0.0.1:4000 and for operators on 127.0.0.1:4001. On first run it generates an admin key,
stores it in <data>/admin.key (mode 0600) and prints it once.

FLAGS (each can also be set by the environment variable shown; a flag wins over its variable)
%s
ENDPOINTS
  ws://<listen>/rewind          terminals (wss:// with --tls-cert/--tls-key)
  http://<admin-listen>/v1/...  admin API, "Authorization: Bearer <admin key>":
      PUT/GET/DELETE /v1/terminals/{id}, GET /v1/terminals, GET /v1/sessions,
      POST /v1/terminals/{id}/datagrams (raw datagram), POST /v1/users/{dmrid}/texts
  http://<admin-listen>/metrics Prometheus metrics (same bearer key)
  http://<admin-listen>/dashboard/ live dashboard (log in with the admin key)
  http://<admin-listen>/v1/events  Server-Sent Events (sessions, attaches, pushes, deliveries)
  http://<admin-listen>/healthz liveness, no key

SIGNALS
  SIGINT, SIGTERM  drain: every terminal gets REDIRECTION (reconnect after a short random
                   delay) and close 1012; the process exits within --drain-timeout plus a
                   few seconds even if peers do not answer.

PUSH FALLBACK
  Private texts and location requests are stored (fsync'd) in the destination's outbox and
  delivered in order with acknowledgement. Terminals that sent TERMINAL_IDLE, or have no
  session, are woken through FCM or APNs with credentials from their vendor's token service.
  Only token services on --vendor-hosts are used (https only, unless --insecure-token-urls).

MEMORY
  About 18–19 KB per connected terminal with the Go runtime's defaults (docs/benchmarks.md). The
  runtime's own variables apply: GOGC=50 cuts that to about 15 KB for a few %% more CPU;
  GOMEMLIMIT (e.g. 3GiB) makes the runtime collect harder near that budget. See
  docs/operator-guide.md.

EXAMPLES
  broker                                        # development defaults
  broker --dev                                  # plus fake FCM/APNs and a dev token service
  broker --vendor-hosts tokens.vendor.example,*.other-vendor.example
  broker --listen :4000 --tls-cert c.pem --tls-key k.pem --data /var/lib/rewind \
         --encryption-key-file /etc/rewind/registry.key
  brokerctl --admin-key-file data/admin.key terminal add 262000101 --password s3cret
  testclient listen --id 262000101 --password s3cret

EXIT STATUS
  0 after a clean drain, 1 on a runtime failure, 2 on a configuration error.
`

type options struct {
	listen, adminListen, dataDir string
	adminKey, adminKeyFile       string
	encKey, encKeyFile           string
	tlsCert, tlsKey              string
	logLevel, logFormat          string
	maxDatagram, sendQueue       int
	authFailures, maxSubs        int
	wakeWorkers                  int
	keepAlive, handshake         time.Duration
	authWindow, drainTimeout     time.Duration
	originPatterns               string

	// Push fallback.
	vendorHosts, vendorKeysFile    string
	insecureTokenURLs, plainLegacy bool
	outboxTTL, wakeQuiet           time.Duration
	fcmEndpoint                    string
	apnsHost, apnsDevHost          string
	dev                            bool

	// Operators.
	eventRetention, auditRetention time.Duration
	eventBuffer                    int
}

// envFlags registers each flag with an environment default and collects the help text.
type envFlags struct {
	fs    *flag.FlagSet
	lines []string
	err   error
}

func (e *envFlags) env(name, envName, usage string) (string, bool) {
	e.lines = append(e.lines, fmt.Sprintf("  --%s  ($%s)\n        %s", name, envName, usage))
	v, ok := os.LookupEnv(envName)
	return v, ok
}

func (e *envFlags) str(p *string, name, envName, def, usage string) {
	if v, ok := e.env(name, envName, usage+fmt.Sprintf(" (default %q)", def)); ok {
		def = v
	}
	e.fs.StringVar(p, name, def, usage)
}

func (e *envFlags) secret(p *string, name, envName, usage string) {
	v, _ := e.env(name, envName, usage)
	e.fs.StringVar(p, name, v, usage)
}

func (e *envFlags) num(p *int, name, envName string, def int, usage string) {
	if v, ok := e.env(name, envName, usage+fmt.Sprintf(" (default %d)", def)); ok {
		n, err := strconv.Atoi(v)
		if err != nil && e.err == nil {
			e.err = fmt.Errorf("$%s: %q is not a number", envName, v)
		}
		def = n
	}
	e.fs.IntVar(p, name, def, usage)
}

func (e *envFlags) flag(p *bool, name, envName, usage string) {
	def := false
	if v, ok := e.env(name, envName, usage); ok {
		b, err := strconv.ParseBool(v)
		if err != nil && e.err == nil {
			e.err = fmt.Errorf("$%s: %q is not true or false", envName, v)
		}
		def = b
	}
	e.fs.BoolVar(p, name, def, usage)
}

func (e *envFlags) dur(p *time.Duration, name, envName string, def time.Duration, usage string) {
	if v, ok := e.env(name, envName, usage+fmt.Sprintf(" (default %s)", def)); ok {
		d, err := time.ParseDuration(v)
		if err != nil && e.err == nil {
			e.err = fmt.Errorf("$%s: %q is not a duration (e.g. 15s)", envName, v)
		}
		def = d
	}
	e.fs.DurationVar(p, name, def, usage)
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	e := &envFlags{fs: flag.NewFlagSet("broker", flag.ContinueOnError)}
	e.fs.SetOutput(io.Discard)
	e.str(&o.listen, "listen", "REWIND_LISTEN", "127.0.0.1:4000", "address for terminal WebSocket sessions")
	e.str(&o.adminListen, "admin-listen", "REWIND_ADMIN_LISTEN", "127.0.0.1:4001", "address for the admin API and metrics; keep it private")
	e.str(&o.dataDir, "data", "REWIND_DATA", "./data", "data directory (registry database, admin.key)")
	e.secret(&o.adminKey, "admin-key", "REWIND_ADMIN_KEY", "admin API bearer key (default: <data>/admin.key, generated on first run)")
	e.str(&o.adminKeyFile, "admin-key-file", "REWIND_ADMIN_KEY_FILE", "", "read the admin key from this file instead")
	e.secret(&o.encKey, "encryption-key", "REWIND_ENCRYPTION_KEY", "registry encryption key at rest: 16/24/32 bytes as hex or base64 (prefer the file)")
	e.str(&o.encKeyFile, "encryption-key-file", "REWIND_ENCRYPTION_KEY_FILE", "", "file holding the registry encryption key; the same key is needed on every start")
	e.str(&o.tlsCert, "tls-cert", "REWIND_TLS_CERT", "", "PEM certificate for wss:// (with --tls-key); without it, terminate TLS in a proxy")
	e.str(&o.tlsKey, "tls-key", "REWIND_TLS_KEY", "", "PEM private key for --tls-cert")
	e.str(&o.logLevel, "log-level", "REWIND_LOG_LEVEL", "info", "debug, info, warn or error")
	e.str(&o.logFormat, "log-format", "REWIND_LOG_FORMAT", "text", "text or json")
	e.num(&o.maxDatagram, "max-datagram", "REWIND_MAX_DATAGRAM", broker.DefaultMaxDatagram, "largest datagram accepted from a terminal, header included (max 65553)")
	e.num(&o.sendQueue, "send-queue", "REWIND_SEND_QUEUE", broker.DefaultSendQueue, "datagrams queued per terminal before it is closed as a slow consumer (4503)")
	e.num(&o.authFailures, "auth-failures", "REWIND_AUTH_FAILURES", broker.DefaultAuthFailures, "failed logins per terminal id or address within --auth-window before lockout (4429)")
	e.num(&o.maxSubs, "max-subscriptions", "REWIND_MAX_SUBSCRIPTIONS", broker.DefaultMaxSubscriptions, "talkgroups one session may subscribe to")
	e.dur(&o.keepAlive, "keepalive-timeout", "REWIND_KEEPALIVE_TIMEOUT", broker.DefaultKeepAliveTimeout, "silence after which an active session is closed (4408)")
	e.dur(&o.handshake, "handshake-timeout", "REWIND_HANDSHAKE_TIMEOUT", broker.DefaultHandshakeTimeout, "time allowed for hello, challenge and authentication")
	e.dur(&o.authWindow, "auth-window", "REWIND_AUTH_WINDOW", broker.DefaultAuthWindow, "lockout window for --auth-failures")
	e.dur(&o.drainTimeout, "drain-timeout", "REWIND_DRAIN_TIMEOUT", broker.DefaultDrainTimeout, "how long shutdown waits for sessions to close")
	e.str(&o.originPatterns, "origin-patterns", "REWIND_ORIGIN_PATTERNS", "", "comma-separated browser Origin host patterns allowed to open sessions (apps send none)")
	e.str(&o.vendorHosts, "vendor-hosts", "REWIND_VENDOR_HOSTS", "", "comma-separated token-service hosts terminals may attach (exact, or *.example.com); empty refuses every attach")
	e.str(&o.vendorKeysFile, "vendor-keys-file", "REWIND_VENDOR_KEYS_FILE", "", "file of \"host bearer-key\" lines: the key sent as Authorization to that vendor's token service")
	e.flag(&o.insecureTokenURLs, "insecure-token-urls", "REWIND_INSECURE_TOKEN_URLS", "development only: allow http:// and loopback/private token-service URLs")
	e.flag(&o.plainLegacy, "plain-legacy", "REWIND_PLAIN_LEGACY", "send the datagram unencrypted in pushes to legacy attaches (no keys); default: wake-only")
	e.dur(&o.outboxTTL, "outbox-ttl", "REWIND_OUTBOX_TTL", broker.DefaultOutboxTTL, "how long a stored datagram waits for its terminal before it expires")
	e.dur(&o.wakeQuiet, "wake-quiet", "REWIND_WAKE_QUIET", broker.DefaultWakeQuiet, "after a push, no further push to that terminal for this long unless it reconnects")
	e.num(&o.wakeWorkers, "wake-workers", "REWIND_WAKE_WORKERS", broker.DefaultWakeWorkers, "pushes sent at once at most; a worker waits for the provider's answer, so pushes/s ≈ workers ÷ round trip (32 at 30 ms ≈ 1 000/s)")
	e.str(&o.fcmEndpoint, "fcm-endpoint", "REWIND_FCM_ENDPOINT", "https://fcm.googleapis.com/v1", "FCM HTTP v1 base URL (regional endpoints, tests)")
	e.str(&o.apnsHost, "apns-host", "REWIND_APNS_HOST", "https://api.push.apple.com", "APNs production host")
	e.str(&o.apnsDevHost, "apns-dev-host", "REWIND_APNS_DEV_HOST", "https://api.sandbox.push.apple.com", "APNs development (sandbox) host")
	e.dur(&o.eventRetention, "event-retention", "REWIND_EVENT_RETENTION", broker.DefaultEventRetention, "how long /v1/events keeps events for reconnecting consumers (Last-Event-ID)")
	e.num(&o.eventBuffer, "event-buffer", "REWIND_EVENT_BUFFER", broker.DefaultEventBuffer, "at most this many events are kept for /v1/events")
	e.dur(&o.auditRetention, "push-audit-retention", "REWIND_PUSH_AUDIT_RETENTION", broker.DefaultPushAuditRetention, "how long the per-terminal push audit trail (/v1/terminals/{id}/pushes) is kept")
	e.flag(&o.dev, "dev", "REWIND_DEV", "developer mode: in-process fake FCM and APNs and a dev token service on the admin listener (/dev/...); implies --insecure-token-urls")
	help := func() { fmt.Fprintf(stderr, manual, strings.Join(e.lines, "\n")+"\n  --help\n        this manual\n") }
	if err := e.fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			help()
			return o, err
		}
		return o, fmt.Errorf("%v (see broker --help)", err)
	}
	if e.err != nil {
		return o, e.err
	}
	if e.fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q (see broker --help)", e.fs.Arg(0))
	}
	if o.wakeWorkers < 1 || o.wakeWorkers > broker.MaxWakeWorkers {
		return o, fmt.Errorf("--wake-workers must be 1…%d, got %d", broker.MaxWakeWorkers, o.wakeWorkers)
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return o, fmt.Errorf("--tls-cert and --tls-key go together")
	}
	return o, nil
}
