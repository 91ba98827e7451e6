package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/pprof"

	"github.com/rewind-broker/rewind/testclient"
)

const loadManual = `testclient load - load a broker with many terminals and report

USAGE
  testclient load --admin-key KEY [flags]

A bounded benchmark that stops by itself:

  1. create  PUT {admin-url}/v1/terminals/{id} for ids base-id … base-id+N-1,
             with passwords derived from --password-seed (so a later run with
             --no-create reuses them), --create-workers calls at a time.
  2. connect every terminal at --ramp sessions/s, at most --dial-concurrency
             handshakes at a time, source addresses spread over 127.0.0.1 …
             127.0.0.{--sources}. With --attach (broker --dev) each terminal
             also attaches a push channel before it counts as set up: the dev
             token service as URL, a device token of its own, one set of push
             keys for the run. The setup rate counts connect + challenge + auth
             (+ attach); with --broker-pid the report adds the broker's CPU per
             session set up.
  3. exchange private texts in pairs (terminal i to terminal i^1) for
             --duration at --rate texts/s in total. Each text carries its send
             time; the receiver measures the latency. Stored deliveries are
             acknowledged as a terminal would.
             With --publish-rate, durable publishes through the admin API
             (POST /v1/terminals/{id}/datagrams, --publish-workers at once) go
             to the active terminals meanwhile: the POST's latency and the
             delivery latency are measured.
  4. drain   wait up to --drain for texts and publishes still in flight.
  5. wake    with --wake-cycles: publish a text to an idle terminal, receive
             its push from GET /dev/pushes/stream, reconnect that terminal
             (TERMINAL_WAKEUP first), receive the stored text, acknowledge it,
             go idle again; --wake-concurrency cycles at once. Measures
             idle → push → reconnect → delivered; "lost" counts texts published
             and never received (up to 3 sessions per cycle), which must be 0.
  6. close every session.

IDLE TERMINALS (--idle-share F) need a broker started with --dev: after step 2
the last F×N terminals register a fake FCM device (POST /dev/devices), attach
it with fresh push keys and the dev token service as URL, send TERMINAL_IDLE
and drop their sockets, as suspended phones do. A broker without --dev is
refused before anything is created.

A progress line is printed on stderr once a second. The report (stdout, or
JSON with --json) gives the setup rate (sessions/s), the text throughput
(texts received/s), p50/p99/max latency, errors by kind (dial_close_4429,
dial_broker_error_401, broker_error_404, session_close_4408, send_backlog
when --rate outruns --send-workers, texts_missing_after_drain, ...), and with
--broker-pid the broker's RSS and CPU seconds before and after, read from
/proc/PID/status and /proc/PID/stat (RSS per session = RSS growth / live
sessions), and the publish, idle and wake figures when asked for (JSON objects
"publish", "idle", "wake").

Only loopback brokers are targeted (127.0.0.0/8, ::1, localhost): a --url or
--admin-url elsewhere is refused unless --allow-remote is given.

Many sessions need many file descriptors (check ulimit -n on both sides) and
ephemeral ports (about 28000 per source address: use --sources).

EXIT CODES
  0 completed without errors, 1 completed with errors or could not run,
  2 usage error

FLAGS
%s
EXAMPLES
  REWIND_ADMIN_KEY=k testclient load --terminals 1000 --ramp 500 --rate 2000 --duration 30s
  testclient load --no-create --terminals 10000 --sources 8 --broker-pid $(pidof broker) --json
  broker --dev &   # then:
  REWIND_ADMIN_KEY=k testclient load --terminals 2000 --idle-share 0.5 --wake-cycles 500 --publish-rate 2000
`

func runLoad(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := newFlagSet("load", loadManual)
	url := fs.String("url", "ws://127.0.0.1:4000/rewind", "broker WebSocket URL")
	fs.envVar("url", "REWIND_URL")
	adminURL := fs.String("admin-url", "http://127.0.0.1:4001", "broker admin API base URL")
	fs.envVar("admin-url", "REWIND_ADMIN_URL")
	adminKey := fs.String("admin-key", "", "admin API bearer key (required unless --no-create)")
	fs.envVar("admin-key", "REWIND_ADMIN_KEY")
	noCreate := fs.Bool("no-create", false, "do not create the terminals: they exist from an earlier run with the same --base-id and --password-seed")
	allowRemote := fs.Bool("allow-remote", false, "allow a --url / --admin-url that is not a loopback address")
	var base uint32Value = testclient.DefaultLoadBaseID
	fs.Var(&base, "base-id", "first terminal `id`")
	terminals := fs.Int("terminals", testclient.DefaultLoadTerminals, fmt.Sprintf("number of terminals N, 2…%d", testclient.MaxLoadTerminals))
	seed := fs.String("password-seed", testclient.DefaultLoadPasswordSeed, "terminal i's password is the first 32 hex digits of SHA-256(seed:id)")
	fs.envVar("password-seed", "REWIND_LOAD_SEED")
	ramp := fs.Float64("ramp", testclient.DefaultLoadRamp, "new sessions per second")
	dialConc := fs.Int("dial-concurrency", testclient.DefaultLoadDialConc, "handshakes in flight at most")
	createConc := fs.Int("create-workers", testclient.DefaultLoadCreateConc, "admin calls in flight at most")
	sources := fs.Int("sources", 1, fmt.Sprintf("spread source addresses over 127.0.0.1…127.0.0.N, N ≤ %d", testclient.MaxLoadSources))
	duration := fs.Duration("duration", testclient.DefaultLoadDuration, fmt.Sprintf("how long texts are exchanged, ≤ %v", testclient.MaxLoadDuration))
	rate := fs.Float64("rate", testclient.DefaultLoadRate, "texts per second, all pairs together")
	sendConc := fs.Int("send-workers", testclient.DefaultLoadSendConc, "texts being written at once at most")
	drain := fs.Duration("drain", testclient.DefaultLoadDrain, "how long to wait for texts in flight after --duration")
	idleShare := fs.Float64("idle-share", 0, "share 0…1 of the terminals that attach a fake device, go idle and drop their sockets (broker --dev)")
	attach := fs.Bool("attach", false, "every terminal attaches a push channel as part of its setup (broker --dev)")
	publishRate := fs.Float64("publish-rate", 0, "durable publishes per second through the admin API to the active terminals, during --duration")
	publishConc := fs.Int("publish-workers", testclient.DefaultLoadPublishConc, "publishes in flight at most")
	wakeCycles := fs.Int("wake-cycles", 0, "wake cycles over the idle terminals after the exchange (needs --idle-share)")
	wakeConc := fs.Int("wake-concurrency", testclient.DefaultLoadWakeConc, "wake cycles in flight at most")
	pid := fs.Int("broker-pid", 0, "broker process `pid`: report its RSS and CPU before and after")
	fs.envVar("broker-pid", "REWIND_BROKER_PID")
	cpuProfile := fs.String("cpuprofile", "", "write this load generator's CPU profile to `file` (to see what limits a run on a shared box)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	quiet := fs.Bool("quiet", false, "no progress line on stderr")
	verbose := fs.Bool("verbose", false, "log every session's events on stderr (noisy)")
	if code, ok := fs.parse(args, getenv, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return fs.usageError(stderr, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	cfg := testclient.LoadConfig{
		URL: *url, AllowRemote: *allowRemote, BaseID: uint32(base), Terminals: *terminals, PasswordSeed: *seed,
		Ramp: *ramp, DialConcurrency: *dialConc, CreateWorkers: *createConc, Sources: *sources,
		Duration: *duration, Rate: *rate, SendWorkers: *sendConc, Drain: *drain, BrokerPID: *pid,
		IdleShare: *idleShare, Attach: *attach, PublishRate: *publishRate, PublishWorkers: *publishConc,
		WakeCycles: *wakeCycles, WakeConcurrency: *wakeConc,
		Logger: logger(*verbose, stderr),
	}
	if *adminKey != "" {
		cfg.API = &testclient.Admin{URL: *adminURL, Key: *adminKey}
	} else if *publishRate > 0 || *idleShare > 0 || *attach {
		return fs.usageError(stderr, errors.New("--publish-rate, --idle-share and --attach need --admin-key (or REWIND_ADMIN_KEY)"))
	}
	if !*noCreate {
		if *adminKey == "" {
			return fs.usageError(stderr, errors.New("--admin-key (or REWIND_ADMIN_KEY) is required to create terminals; use --no-create if they exist"))
		}
		cfg.Admin = &testclient.Admin{URL: *adminURL, Key: *adminKey}
	}
	if err := testclient.CheckLoadConfig(cfg); err != nil {
		return fs.usageError(stderr, err)
	}
	if !*quiet {
		cfg.Progress = stderr
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "testclient load: %v\n", err)
			return exitFailed
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "testclient load: %v\n", err)
			return exitFailed
		}
		defer pprof.StopCPUProfile()
	}
	rep, err := testclient.RunLoad(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "testclient load: %v\n", err)
		return exitFailed
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
	} else {
		err = rep.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "testclient load: %v\n", err)
		return exitFailed
	}
	if len(rep.Errors) > 0 || ctx.Err() != nil {
		return exitFailed
	}
	return exitOK
}
