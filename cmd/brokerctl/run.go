package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Exit statuses; the manual documents them for scripts.
const (
	exitOK          = 0
	exitAPI         = 1 // the API answered 4xx (except 401) or 5xx
	exitUsage       = 2 // bad command line or configuration: nothing was sent
	exitUnreachable = 3 // no HTTP answer at all
	exitAuth        = 4 // the API answered 401
)

// Defaults.
const (
	defaultAdminURL = "http://127.0.0.1:4001" // the broker's default --admin-listen
	// defaultTimeout is per request: the admin API answers from memory and the local
	// registry, so ten seconds without an answer means something is wrong.
	defaultTimeout = 10 * time.Second
	// defaultKeyFile is where a broker started without flags keeps its generated key, so
	// brokerctl works with no flags from the directory the broker was started in.
	defaultKeyFile = "data/admin.key"
	// maxSecret bounds a password or key read from a file or standard input.
	maxSecret = 4 << 10
)

// usageError is a command line that cannot be run; it maps to exit status 2. cmd, when
// set, names the command whose --help explains the right usage.
type usageError struct {
	cmd string
	msg string
}

func (e *usageError) Error() string {
	see := "brokerctl --help"
	if e.cmd != "" {
		see = "brokerctl " + e.cmd + " --help"
	}
	return fmt.Sprintf("%s (see %s)", e.msg, see)
}

func usagef(cmd, format string, args ...any) error {
	return &usageError{cmd: cmd, msg: fmt.Sprintf(format, args...)}
}

// errHelpShown ends a run that printed a manual: exit status 0.
var errHelpShown = errors.New("help shown")

// globals are the flags every command accepts, before or after its name.
type globals struct {
	adminURL     string
	adminKey     string // flag only; $REWIND_ADMIN_KEY is looked at in resolveKey
	adminKeyFile string // flag only; likewise $REWIND_ADMIN_KEY_FILE
	json         bool
	timeout      time.Duration
}

// cli is one invocation.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	g              globals
	now            func() time.Time
	fs             *flag.FlagSet // the command's flags once parse has run (for tests)
	// ctx ends the commands that can run until interrupted (events --follow). run sets it
	// to context.Background(); tests cancel it.
	ctx context.Context
}

// run executes the command line args and returns the process exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runContext(context.Background(), args, stdin, stdout, stderr)
}

// runContext is run with a context that ends long-running commands (events --follow) early.
func runContext(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr, now: time.Now, ctx: ctx}
	c.g.adminURL = defaultAdminURL
	if v := os.Getenv("REWIND_ADMIN_URL"); v != "" {
		c.g.adminURL = v
	}
	c.g.timeout = defaultTimeout
	err := c.dispatch(args)
	code := exitCode(err)
	if code != exitOK {
		fmt.Fprintf(stderr, "brokerctl: %v\n", err)
		if code == exitAuth {
			fmt.Fprintln(stderr, "brokerctl: check --admin-key-file / $REWIND_ADMIN_KEY_FILE (the broker's <data>/admin.key) or --admin-key / $REWIND_ADMIN_KEY")
		}
	}
	return code
}

// exitCode maps an error to the documented exit statuses.
func exitCode(err error) int {
	var ue *usageError
	var ae *apiError
	switch {
	case err == nil, errors.Is(err, errHelpShown):
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, errUnreachable):
		return exitUnreachable
	case errors.As(err, &ae) && ae.Status == http.StatusUnauthorized:
		return exitAuth
	default:
		return exitAPI
	}
}

// addGlobals registers the global flags on fs, each defaulting to its current value, so that
// they may come before or after the command name.
func (c *cli) addGlobals(fs *flag.FlagSet) {
	fs.StringVar(&c.g.adminURL, "admin-url", c.g.adminURL, "admin API base URL")
	fs.StringVar(&c.g.adminKey, "admin-key", c.g.adminKey, "admin bearer key")
	fs.StringVar(&c.g.adminKeyFile, "admin-key-file", c.g.adminKeyFile, "file holding the admin key")
	fs.BoolVar(&c.g.json, "json", c.g.json, "print the API's JSON")
	fs.DurationVar(&c.g.timeout, "timeout", c.g.timeout, "per-request timeout")
}

// command is one leaf of the command tree.
type command struct {
	path string // e.g. "terminal add"
	// operands names the arguments for the "needs ..." usage error; empty means "a terminal id".
	operands string
	summary  string
	manual   string
	run      func(c *cli, cmd *command, args []string) error
}

func (c *cli) dispatch(args []string) error {
	fs := flag.NewFlagSet("brokerctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.addGlobals(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(c.stdout, toolManual())
			return errHelpShown
		}
		return usagef("", "%v", err)
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return usagef("", "no command given")
	}
	if rest[0] == "help" {
		return c.help(rest[1:])
	}
	cmd, rest, err := lookup(rest)
	if err != nil {
		return err
	}
	if cmd == nil { // "terminal --help"
		fmt.Fprint(c.stdout, groupManual(groupName(args[0])))
		return errHelpShown
	}
	return cmd.run(c, cmd, rest)
}

// groups are the command names that take a subcommand, with what they are about.
var groups = map[string]string{
	"terminal": "manage registered terminals",
	"user":     "a DMR user's terminals",
}

// groupName maps a plural alias ("terminals") to its group; other names are returned as they are.
func groupName(name string) string {
	if g := strings.TrimSuffix(name, "s"); groups[g] != "" {
		return g
	}
	return name
}

// subcommands lists a group's subcommands for error messages: "add, rm, show or list".
func subcommands(group string) string {
	var names []string
	for _, cmd := range commands {
		if sub, ok := strings.CutPrefix(cmd.path, group+" "); ok {
			names = append(names, sub)
		}
	}
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// lookup finds the command named by the first words of args and returns the rest. A group
// name followed by a help flag returns a nil command.
func lookup(args []string) (*command, []string, error) {
	name := groupName(args[0])
	group := groups[name] != ""
	if group {
		if len(args) < 2 {
			return nil, nil, usagef(name, "%s needs a subcommand: %s", name, subcommands(name))
		}
		if isHelpFlag(args[1]) {
			return nil, nil, nil
		}
		name += " " + args[1]
		args = args[1:]
	}
	for _, cmd := range commands {
		if cmd.path == name {
			return cmd, args[1:], nil
		}
	}
	if group {
		g, _, _ := strings.Cut(name, " ")
		return nil, nil, usagef(g, "unknown command %q", name)
	}
	return nil, nil, usagef("", "unknown command %q", name)
}

func isHelpFlag(s string) bool {
	switch s {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

// help prints the manual of the command named by args, or the tool's.
func (c *cli) help(args []string) error {
	if len(args) == 0 {
		fmt.Fprint(c.stdout, toolManual())
		return errHelpShown
	}
	if g := groupName(args[0]); groups[g] != "" && len(args) == 1 {
		fmt.Fprint(c.stdout, groupManual(g))
		return errHelpShown
	}
	cmd, _, err := lookup(args)
	if err != nil {
		return err
	}
	fmt.Fprint(c.stdout, cmd.manual)
	return errHelpShown
}

// flagSet returns a FlagSet for cmd with the global flags on it.
func (c *cli) flagSet(cmd *command) *flag.FlagSet {
	fs := flag.NewFlagSet(cmd.path, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.addGlobals(fs)
	return fs
}

// parse parses a command's flags, which may come before, between and after its arguments
// ("--" ends flags), and returns the arguments. want is the number of arguments expected.
func (c *cli) parse(cmd *command, fs *flag.FlagSet, args []string, want int) ([]string, error) {
	pos, err := c.parseAny(cmd, fs, args)
	if err != nil {
		return nil, err
	}
	return pos, checkOperands(cmd, pos, want)
}

// checkOperands checks that there are want arguments.
func checkOperands(cmd *command, pos []string, want int) error {
	switch {
	case len(pos) == want:
		return nil
	case want == 0:
		return usagef(cmd.path, "unexpected argument %q", pos[0])
	case len(pos) < want:
		operands := cmd.operands
		if operands == "" {
			operands = "a terminal id"
		}
		return usagef(cmd.path, "%s needs %s", cmd.path, operands)
	default:
		return usagef(cmd.path, "unexpected argument %q", pos[want])
	}
}

// parseAny is parse for commands whose number of arguments depends on their flags; the caller
// checks the arguments (checkOperands).
func (c *cli) parseAny(cmd *command, fs *flag.FlagSet, args []string) ([]string, error) {
	c.fs = fs
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprint(c.stdout, cmd.manual)
				return nil, errHelpShown
			}
			return nil, usagef(cmd.path, "%v", err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if c.g.timeout <= 0 {
		return nil, usagef(cmd.path, "--timeout must be positive")
	}
	return pos, nil
}

// parseID parses a terminal id as the API does: 1..4294967295.
func parseID(cmd, s string) (uint32, error) {
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil || v == 0 {
		return 0, usagef(cmd, "%q is not a terminal id (1..4294967295)", s)
	}
	return uint32(v), nil
}

// client builds the API client from the global flags and the environment.
func (c *cli) client(cmd string) (*client, func(), error) {
	raw := c.g.adminURL
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	base, err := url.Parse(raw)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, nil, usagef(cmd, "--admin-url %q: want http://host:port or https://host:port", c.g.adminURL)
	}
	key, err := c.resolveKey(cmd)
	if err != nil {
		return nil, nil, err
	}
	// A transport of our own, closed when the command ends: nothing lingers after run.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // the admin API is private; a proxy from the environment is not wanted
	cl := &client{base: base, key: key, timeout: c.g.timeout, hc: &http.Client{Transport: tr}}
	return cl, tr.CloseIdleConnections, nil
}

// resolveKey finds the admin key: --admin-key, --admin-key-file, $REWIND_ADMIN_KEY,
// $REWIND_ADMIN_KEY_FILE, then ./data/admin.key, first found wins.
func (c *cli) resolveKey(cmd string) (string, error) {
	if c.g.adminKey != "" && c.g.adminKeyFile != "" {
		return "", usagef(cmd, "--admin-key and --admin-key-file are alternatives; give one")
	}
	var key string
	switch {
	case c.g.adminKey != "":
		key = c.g.adminKey
	case c.g.adminKeyFile != "":
		return readKeyFile(cmd, c.g.adminKeyFile)
	case os.Getenv("REWIND_ADMIN_KEY") != "":
		key = os.Getenv("REWIND_ADMIN_KEY")
	case os.Getenv("REWIND_ADMIN_KEY_FILE") != "":
		return readKeyFile(cmd, os.Getenv("REWIND_ADMIN_KEY_FILE"))
	default:
		if _, err := os.Stat(defaultKeyFile); err == nil {
			return readKeyFile(cmd, defaultKeyFile)
		}
		return "", usagef(cmd, "no admin key: give --admin-key-file (the broker's <data>/admin.key) or set $REWIND_ADMIN_KEY_FILE")
	}
	return checkKey(cmd, strings.TrimSpace(key), "the admin key")
}

func readKeyFile(cmd, path string) (string, error) {
	b, err := readSecretFile(path)
	if err != nil {
		return "", usagef(cmd, "admin key file: %v", err)
	}
	return checkKey(cmd, strings.TrimSpace(string(b)), "admin key file "+filepath.Clean(path))
}

func checkKey(cmd, key, what string) (string, error) {
	if key == "" {
		return "", usagef(cmd, "%s is empty", what)
	}
	for _, r := range key {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return "", usagef(cmd, "%s contains spaces or control characters", what)
		}
	}
	return key, nil
}

// readSecretFile reads a small file holding a secret.
func readSecretFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecret+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxSecret {
		return nil, fmt.Errorf("%s: larger than %d bytes, not a secret", path, maxSecret)
	}
	return b, nil
}
