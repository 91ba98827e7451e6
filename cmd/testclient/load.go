package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"sync"

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

SEVERAL PROCESSES (--processes N): one process holds at most as many sessions
as its open-files limit allows (about 19 500 here), so a larger run is split:
this program runs N times at once, process k with terminals base-id + k×T/N … (T = --terminals),
1/N of --rate and --publish-rate, and every other flag as given. The report sums
counts and rates, takes the largest of the processes' latencies (an upper
bound: their histograms are not merged) and the broker's largest RSS
("broker_rss_bytes"), reads the broker's CPU around the whole run, and lists
each process's report under "processes". Idle terminals and wake cycles need
one process.

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
	processes := fs.Int("processes", 1, fmt.Sprintf("split the terminals over N load processes, 1…%d (this program run N times at once, each with 1/N of --terminals, --rate and --publish-rate and its own file descriptors); the report sums them", maxLoadProcesses))
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

	if *processes != 1 {
		if *processes < 1 || *processes > maxLoadProcesses {
			return fs.usageError(stderr, fmt.Errorf("--processes must be 1…%d, got %d", maxLoadProcesses, *processes))
		}
		if *idleShare > 0 || *wakeCycles > 0 {
			return fs.usageError(stderr, errors.New("--idle-share and --wake-cycles run in one process (each would read every push of /dev/pushes/stream); drop --processes"))
		}
		if *terminals%*processes != 0 || (*terminals / *processes)%2 != 0 {
			return fs.usageError(stderr, fmt.Errorf("--terminals %d must split into %d equal shares of an even size (texts go in pairs)", *terminals, *processes))
		}
		return runLoadProcesses(ctx, fs, *processes, uint32(base), *terminals, *rate, *publishRate, *pid, *asJSON, stdout, stderr)
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
	return printLoadReport(ctx, rep, rep, *asJSON, rep.WriteText, stdout, stderr)
}

// maxLoadProcesses bounds --processes.
const maxLoadProcesses = 16

// runLoadProcesses runs this program's load command n times at once, process k on terminals
// base + k×share … with 1/n of the rates, and prints the sum of their reports
// (testclient.MergedLoadReport) with the broker's RSS and CPU read around the whole run.
func runLoadProcesses(ctx context.Context, fs *flagSet, n int, base uint32, terminals int, rate, publishRate float64, pid int, asJSON bool, stdout, stderr io.Writer) int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "testclient load: %v\n", err)
		return exitFailed
	}
	override := map[string]bool{"processes": true, "terminals": true, "base-id": true, "rate": true, "publish-rate": true,
		"json": true, "quiet": true, "cpuprofile": true}
	var common []string
	fs.Visit(func(f *flag.Flag) {
		if !override[f.Name] {
			common = append(common, "--"+f.Name+"="+f.Value.String())
		}
	})
	share := terminals / n
	var before testclient.ProcStats
	if pid > 0 {
		if before, err = testclient.ReadProcStats(pid); err != nil {
			fmt.Fprintf(stderr, "testclient load: broker pid %d: %v\n", pid, err)
			return exitFailed
		}
	}
	reps := make([]*testclient.LoadReport, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for k := range n {
		args := append([]string{"load"}, common...)
		args = append(args, "--json", "--quiet",
			"--terminals="+strconv.Itoa(share), "--base-id="+strconv.FormatUint(uint64(base)+uint64(k*share), 10),
			"--rate="+strconv.FormatFloat(rate/float64(n), 'f', -1, 64),
			"--publish-rate="+strconv.FormatFloat(publishRate/float64(n), 'f', -1, 64))
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.CommandContext(ctx, exe, args...)
			cmd.Stderr = stderr
			out, err := cmd.Output() // exit status 1 means "completed with errors": the report says which
			var rep testclient.LoadReport
			if jerr := json.Unmarshal(out, &rep); jerr != nil {
				errs[k] = fmt.Errorf("process %d (%v): no report: %v", k+1, err, jerr)
				return
			}
			reps[k] = &rep
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			fmt.Fprintf(stderr, "testclient load: %v\n", err)
			return exitFailed
		}
	}
	m := testclient.MergeLoadReports(reps)
	if pid > 0 {
		if after, err := testclient.ReadProcStats(pid); err == nil {
			m.Broker = testclient.NewBrokerUsage(pid, before, after, m.Connected)
		}
	}
	text := func(w io.Writer) error {
		if err := m.WriteText(w); err != nil {
			return err
		}
		_, err := fmt.Fprintf(w, "processes      %d (latencies are the largest of the processes')\n", n)
		return err
	}
	return printLoadReport(ctx, &m.LoadReport, m, asJSON, text, stdout, stderr)
}

// printLoadReport prints v as JSON, or text for a person, and returns the exit status: failed
// when rep counts errors or ctx ended.
func printLoadReport(ctx context.Context, rep *testclient.LoadReport, v any, asJSON bool, text func(io.Writer) error, stdout, stderr io.Writer) int {
	var err error
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(v)
	} else {
		err = text(stdout)
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
