// Command testclient is the reference Rewind terminal on the command line: send one text, listen
// to a terminal's traffic, load a broker with many terminals, or play a phone woken by pushes
// against "broker --dev". Run "testclient --help" for the
// manual; the logic lives in package testclient.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
)

// Exit codes.
const (
	exitOK       = 0 // delivered / completed
	exitFailed   = 1 // refused, rejected, session lost, load run with errors
	exitUsage    = 2 // bad flags or arguments
	exitNoStatus = 3 // send: accepted, but no status within --wait
)

const manual = `testclient - the reference Rewind terminal

testclient speaks the Rewind datagram protocol over WebSocket to a Rewind
broker, exactly as a terminal app should (docs/protocol.md): hello, challenge,
SHA-256 authentication, keep-alives every 5 s, cumulative acknowledgement of
stored deliveries, delivery statuses for received texts.

USAGE
  testclient send   [flags] TEXT...     send one text and report its fate
  testclient listen [flags]             print everything a terminal receives
  testclient load   [flags]             many terminals, texts in pairs, a report
  testclient phone  [flags]             a phone for "broker --dev": idle, push, wake
  testclient report [flags]             docs/benchmarks.md from the load runs' JSON
  testclient help   [COMMAND]           this manual, or a command's

Run "testclient COMMAND --help" for a command's flags. Every flag can also be
set by the environment variable shown next to it; a flag on the command line
wins. Prefer REWIND_PASSWORD to --password: command lines are visible to
every user of the machine.

EXIT CODES
  0  delivered (send), stopped by Ctrl-C (listen, phone), completed without
     errors (load), one wake cycle done (phone --once), written (report)
  1  refused by the broker, rejected, session lost, load errors, or report
     data that could not be read or written
  2  usage error
  3  send only: accepted but no status within --wait (the recipient is
     offline or idle: the broker stored the text and will deliver it later)
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole command: it parses args (over environment defaults read with getenv), runs
// the subcommand and returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, manual)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "-h", "-help", "--help":
		fmt.Fprint(stdout, manual)
		return exitOK
	case "help":
		if len(rest) == 0 {
			fmt.Fprint(stdout, manual)
			return exitOK
		}
		cmd, rest = rest[0], []string{"--help"}
	}
	c, ok := commands[cmd]
	if !ok {
		fmt.Fprintf(stderr, "testclient: unknown command %q (see testclient --help)\n", cmd)
		return exitUsage
	}
	return c(ctx, rest, getenv, stdout, stderr)
}

type command func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int

var commands = map[string]command{
	"send":   runSend,
	"listen": runListen,
	"load":   runLoad,
	"phone":  runPhone,
	"report": runReport,
}

// flagSet is a subcommand's flags plus the environment variables that set their defaults.
type flagSet struct {
	*flag.FlagSet
	name   string
	manual string
	env    map[string]string // flag name → environment variable
}

func newFlagSet(name, manual string) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // run prints errors and help itself
	return &flagSet{FlagSet: fs, name: name, manual: manual, env: make(map[string]string)}
}

// envVar binds flag name to environment variable env.
func (fs *flagSet) envVar(name, env string) {
	if fs.Lookup(name) == nil {
		panic("envVar: no flag " + name)
	}
	fs.env[name] = env
}

// parse applies the environment, then args. It returns the exit code to use and false when the
// command must stop (help shown: exitOK; usage error: exitUsage).
func (fs *flagSet) parse(args []string, getenv func(string) string, stdout, stderr io.Writer) (int, bool) {
	for name, env := range fs.env {
		if v := getenv(env); v != "" {
			if err := fs.Set(name, v); err != nil {
				return fs.usageError(stderr, fmt.Errorf("%s=%q: %v", env, v, err)), false
			}
		}
	}
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fs.printHelp(stdout)
		return exitOK, false
	}
	if err != nil {
		return fs.usageError(stderr, err), false
	}
	return exitOK, true
}

func (fs *flagSet) usageError(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "testclient %s: %v (see testclient %s --help)\n", fs.name, err, fs.name)
	return exitUsage
}

// printHelp prints the manual with its flags listed as
//
//	--name ARG  (ENV, default "x")
//	      usage
func (fs *flagSet) printHelp(w io.Writer) {
	var flags strings.Builder
	fs.VisitAll(func(f *flag.Flag) {
		arg, usage := flag.UnquoteUsage(f)
		if arg == "value" {
			arg = "N"
		}
		fmt.Fprintf(&flags, "  --%s", f.Name)
		if arg != "" {
			fmt.Fprintf(&flags, " %s", strings.ToUpper(arg))
		}
		var notes []string
		if env := fs.env[f.Name]; env != "" {
			notes = append(notes, env)
		}
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" {
			notes = append(notes, fmt.Sprintf("default %q", f.DefValue))
		}
		if len(notes) > 0 {
			fmt.Fprintf(&flags, "  (%s)", strings.Join(notes, ", "))
		}
		fmt.Fprintf(&flags, "\n        %s\n", usage)
	})
	fmt.Fprintf(w, fs.manual, flags.String())
}

// sessionFlags are the flags every subcommand that is one terminal has.
type sessionFlags struct {
	url, password, description string
	id                         uint32Value
	verbose                    bool
}

func (s *sessionFlags) register(fs *flagSet) {
	fs.StringVar(&s.url, "url", "ws://127.0.0.1:4000/rewind", "broker WebSocket URL")
	fs.envVar("url", "REWIND_URL")
	fs.Var(&s.id, "id", "terminal `id` (required)")
	fs.envVar("id", "REWIND_ID")
	fs.StringVar(&s.password, "password", "", "terminal password (required)")
	fs.envVar("password", "REWIND_PASSWORD")
	fs.StringVar(&s.description, "description", "", "hello description; empty means \"rewind testclient\"")
	fs.BoolVar(&s.verbose, "verbose", false, "log the session's events on stderr")
}

func (s *sessionFlags) check() error {
	switch {
	case s.id == 0:
		return errors.New("--id (or REWIND_ID) is required")
	case s.password == "":
		return errors.New("--password (or REWIND_PASSWORD) is required")
	case !strings.HasPrefix(s.url, "ws://") && !strings.HasPrefix(s.url, "wss://"):
		return fmt.Errorf("--url %q: want ws:// or wss://", s.url)
	}
	return nil
}

func logger(verbose bool, stderr io.Writer) *slog.Logger {
	if !verbose {
		return nil
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// uint32Value is a flag holding a terminal id, DMR id or talkgroup.
type uint32Value uint32

func (v *uint32Value) String() string { return strconv.FormatUint(uint64(*v), 10) }

func (v *uint32Value) Set(s string) error {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return fmt.Errorf("want a number 0…4294967295")
	}
	*v = uint32Value(n)
	return nil
}

// uint32List is a repeatable flag (--group 91 --group 92, or --group 91,92).
type uint32List []uint32

func (l *uint32List) String() string {
	s := make([]string, len(*l))
	for i, v := range *l {
		s[i] = strconv.FormatUint(uint64(v), 10)
	}
	return strings.Join(s, ",")
}

func (l *uint32List) Set(s string) error {
	for part := range strings.SplitSeq(s, ",") {
		var v uint32Value
		if err := v.Set(strings.TrimSpace(part)); err != nil {
			return err
		}
		*l = append(*l, uint32(v))
	}
	return nil
}
