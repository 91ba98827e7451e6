package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rewind-broker/rewind/broker"
)

// commands is the command tree; help.go holds their manuals.
var commands = []*command{
	{path: "terminal add", summary: "create a terminal, or change its password or name", manual: manualTerminalAdd, run: (*cli).terminalAdd},
	{path: "terminal rm", summary: "delete a terminal (its live session is closed)", manual: manualTerminalRm, run: (*cli).terminalRm},
	{path: "terminal show", summary: "a terminal, its session, push attachment and outbox", manual: manualTerminalShow, run: (*cli).terminalShow},
	{path: "terminal list", summary: "registered terminals", manual: manualTerminalList, run: (*cli).terminalList},
	{path: "terminal passwd", summary: "change a terminal's password (optionally closing its session)", manual: manualTerminalPasswd, run: (*cli).terminalPasswd},
	{path: "terminal detach", summary: "remove a terminal's push attachment", manual: manualTerminalDetach, run: (*cli).terminalDetach},
	{path: "user devices", operands: "a DMR user id", summary: "a DMR user's terminals and their push platform and state", manual: manualUserDevices, run: (*cli).userDevices},
	{path: "sessions", summary: "live sessions", manual: manualSessions, run: (*cli).sessions},
	{path: "kick", summary: "close a terminal's live session", manual: manualKick, run: (*cli).kick},
	{path: "pushes", summary: "the push audit of a terminal", manual: manualPushes, run: (*cli).pushes},
	{path: "events", summary: "the broker's event stream (sessions, attaches, pushes)", manual: manualEvents, run: (*cli).events},
	{path: "send", operands: "a terminal id and a text (or --user DMRID and a text)", summary: "store a private text for a terminal, or for every terminal of a user", manual: manualSend, run: (*cli).send},
}

// terminalAdd: PUT /v1/terminals/{id}.
func (c *cli) terminalAdd(cmd *command, args []string) error {
	fs := c.flagSet(cmd)
	var password, passwordFile, name string
	fs.StringVar(&password, "password", "", "the terminal's password (visible in ps)")
	fs.StringVar(&passwordFile, "password-file", "", "file whose first line is the password")
	fs.StringVar(&name, "name", "", "device name")
	pos, err := c.parse(cmd, fs, args, 1)
	if err != nil {
		return err
	}
	id, err := parseID(cmd.path, pos[0])
	if err != nil {
		return err
	}
	set := setFlags(fs)
	if set["password"] && set["password-file"] {
		return usagef(cmd.path, "--password and --password-file are alternatives; give one")
	}
	switch {
	case set["password-file"]:
		b, err := readSecretFile(passwordFile)
		if err != nil {
			return usagef(cmd.path, "password file: %v", err)
		}
		password = firstLine(string(b))
	case !set["password"] && c.stdin != nil && !isTerminal(c.stdin):
		if password, err = readLine(c.stdin); err != nil {
			return usagef(cmd.path, "reading the password from standard input: %v", err)
		}
	}

	api, done, err := c.client(cmd.path)
	if err != nil {
		return err
	}
	defer done()
	ctx := context.Background()
	path := []string{"v1", "terminals", strconv.FormatUint(uint64(id), 10)}
	if !set["name"] {
		// PUT replaces the name; an update that does not mention it keeps the old one.
		var old broker.TerminalInfo
		_, err := api.getJSON(ctx, path, nil, &old)
		var ae *apiError
		switch {
		case err == nil:
			name = old.Name
		case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
		default:
			return err
		}
	}
	body := struct {
		Password string `json:"password"`
		Name     string `json:"name"`
	}{password, name}
	status, data, err := api.do(ctx, http.MethodPut, path, nil, body)
	if err != nil {
		return err
	}
	if c.g.json {
		return printJSON(c.stdout, data)
	}
	var t broker.TerminalInfo
	if err := json.Unmarshal(data, &t); err != nil {
		return fmt.Errorf("PUT /v1/terminals/%d: unexpected answer: %w", id, err)
	}
	verb := "updated"
	if status == http.StatusCreated {
		verb = "created"
	}
	fmt.Fprintf(c.stdout, "%s terminal %d (user %d", verb, t.ID, t.User)
	if t.Name != "" {
		fmt.Fprintf(c.stdout, ", name %q", clean(t.Name, 0))
	}
	fmt.Fprintln(c.stdout, ")")
	return nil
}

// terminalRm: DELETE /v1/terminals/{id}.
func (c *cli) terminalRm(cmd *command, args []string) error {
	id, api, done, err := c.idCommand(cmd, args)
	if err != nil {
		return err
	}
	defer done()
	_, data, err := api.do(context.Background(), http.MethodDelete, []string{"v1", "terminals", strconv.FormatUint(uint64(id), 10)}, nil, nil)
	if err != nil {
		return err
	}
	if c.g.json {
		return printJSON(c.stdout, data)
	}
	var res struct {
		SessionClosed bool `json:"session_closed"`
	}
	if err := json.Unmarshal(data, &res); err != nil {
		return fmt.Errorf("DELETE /v1/terminals/%d: unexpected answer: %w", id, err)
	}
	if res.SessionClosed {
		fmt.Fprintf(c.stdout, "deleted terminal %d and closed its live session\n", id)
	} else {
		fmt.Fprintf(c.stdout, "deleted terminal %d\n", id)
	}
	return nil
}

// terminalShow: GET /v1/terminals/{id}.
func (c *cli) terminalShow(cmd *command, args []string) error {
	id, api, done, err := c.idCommand(cmd, args)
	if err != nil {
		return err
	}
	defer done()
	var t terminalDetail
	data, err := api.getJSON(context.Background(), []string{"v1", "terminals", strconv.FormatUint(uint64(id), 10)}, nil, &t)
	if err != nil {
		return err
	}
	if c.g.json {
		return printJSON(c.stdout, data)
	}
	return writeTerminal(c.stdout, t, c.now())
}

// idCommand parses a command whose only argument is a terminal id and builds the client.
func (c *cli) idCommand(cmd *command, args []string) (uint32, *client, func(), error) {
	pos, err := c.parse(cmd, c.flagSet(cmd), args, 1)
	if err != nil {
		return 0, nil, nil, err
	}
	id, err := parseID(cmd.path, pos[0])
	if err != nil {
		return 0, nil, nil, err
	}
	api, done, err := c.client(cmd.path)
	if err != nil {
		return 0, nil, nil, err
	}
	return id, api, done, nil
}

// terminalList: GET /v1/terminals.
func (c *cli) terminalList(cmd *command, args []string) error {
	return listCommand(c, cmd, args, []string{"v1", "terminals"}, "terminals", writeTerminals)
}

// sessions: GET /v1/sessions.
func (c *cli) sessions(cmd *command, args []string) error {
	return listCommand(c, cmd, args, []string{"v1", "sessions"}, "sessions", writeSessions, "state", "platform")
}

// listCommand runs a paged list command; write renders the items as a table.
// Each name in filters becomes a string flag passed on as the query parameter of that name.
func listCommand[T any](c *cli, cmd *command, args []string, path []string, noun string, write func(io.Writer, []T, time.Time) error, filters ...string) error {
	fs := c.flagSet(cmd)
	filterValues := make(map[string]*string, len(filters))
	for _, name := range filters {
		filterValues[name] = fs.String(name, "", "only items with this "+name)
	}
	var limit int
	var after uint64
	var all bool
	fs.IntVar(&limit, "limit", 0, "items per page")
	fs.Uint64Var(&after, "after", 0, "start after this terminal id")
	fs.BoolVar(&all, "all", false, "follow every page")
	if _, err := c.parse(cmd, fs, args, 0); err != nil {
		return err
	}
	if limit < 0 || limit > broker.MaxPageSize {
		return usagef(cmd.path, "--limit %d: want 1..%d (0: the broker's default, %d)", limit, broker.MaxPageSize, broker.DefaultPageSize)
	}
	if after > math.MaxUint32 {
		return usagef(cmd.path, "--after %d is not a terminal id", after)
	}
	api, done, err := c.client(cmd.path)
	if err != nil {
		return err
	}
	defer done()
	q := url.Values{}
	for name, v := range filterValues {
		if *v != "" {
			q.Set(name, *v)
		}
	}
	p, err := api.list(context.Background(), path, uint32(after), limit, all, q)
	if err != nil {
		return err
	}
	if c.g.json {
		b, err := json.Marshal(p)
		if err != nil {
			return err
		}
		return printJSON(c.stdout, b)
	}
	items := make([]T, len(p.Items))
	for i, raw := range p.Items {
		if err := json.Unmarshal(raw, &items[i]); err != nil {
			return fmt.Errorf("GET /%s: unexpected item: %w", strings.Join(path, "/"), err)
		}
	}
	if len(items) == 0 {
		fmt.Fprintf(c.stdout, "no %s\n", noun)
	} else if err := write(c.stdout, items, c.now()); err != nil {
		return err
	}
	if p.Next != nil {
		fmt.Fprintf(c.stderr, "more %s after %d: add --after %d, or --all for every page\n", noun, *p.Next, *p.Next)
	}
	return nil
}

// setFlags returns the names of the flags given on the command line.
func setFlags(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// isTerminal reports whether r is an interactive terminal (a character device), in which
// case brokerctl does not wait for a password on it.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// readLine reads the first line of r (at most maxSecret bytes), without its line ending. It
// does not wait for end of file, so a pipe that stays open after the line is fine.
func readLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, maxSecret+1)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	if len(line) > maxSecret {
		return "", fmt.Errorf("longer than %d bytes", maxSecret)
	}
	return firstLine(line), nil
}

// firstLine returns s up to its first line ending.
func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return strings.TrimSuffix(s, "\r")
}
