package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Reconnection of "events --follow".
var (
	// eventsRetryMin is the first wait before reconnecting after the stream failed; it doubles
	// up to eventsRetryMax while reconnecting keeps failing, and starts over once events flow.
	// A "retry:" field from the broker replaces the first wait. Variables so that tests can
	// shorten them.
	eventsRetryMin = time.Second
	eventsRetryMax = 30 * time.Second
)

// maxEventLine bounds one line of the event stream; events are small JSON objects.
const maxEventLine = 1 << 20

// sseMessage is one dispatched Server-Sent Events message.
type sseMessage struct {
	id    string // the stream's last event id after this message
	event string // "event:" field; "message" when absent
	data  []byte // "data:" lines joined by "\n"
}

// events: GET /v1/events, the broker's event stream (Server-Sent Events).
func (c *cli) events(cmd *command, args []string) error {
	fs := c.flagSet(cmd)
	var follow bool
	var terminal uint64
	var types, after string
	fs.BoolVar(&follow, "follow", false, "keep the stream open")
	fs.Uint64Var(&terminal, "terminal", 0, "only this terminal's events")
	fs.StringVar(&types, "types", "", "only these event types, comma separated")
	fs.StringVar(&after, "after", "", "start after this event id")
	if _, err := c.parse(cmd, fs, args, 0); err != nil {
		return err
	}
	q := url.Values{}
	if !follow {
		q.Set("follow", "false")
	}
	if setFlags(fs)["terminal"] {
		if terminal == 0 || terminal > math.MaxUint32 {
			return usagef(cmd.path, "--terminal %d is not a terminal id (1..4294967295)", terminal)
		}
		q.Set("terminal", strconv.FormatUint(terminal, 10))
	}
	if types != "" {
		var list []string
		for _, t := range strings.Split(types, ",") {
			t = strings.TrimSpace(t)
			if t == "" || strings.IndexFunc(t, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0 {
				return usagef(cmd.path, "--types %q: want event types separated by commas", types)
			}
			list = append(list, t)
		}
		q.Set("types", strings.Join(list, ","))
	}
	if after != "" {
		if _, err := strconv.ParseUint(after, 10, 64); err != nil {
			return usagef(cmd.path, "--after %q is not an event id", after)
		}
	}
	api, done, err := c.client(cmd.path)
	if err != nil {
		return err
	}
	defer done()

	ctx := c.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	if follow {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
	}
	p := &eventPrinter{w: c.stdout, notes: c.stderr, json: c.g.json}
	last := after
	wait := eventsRetryMin
	for {
		got := 0
		end, err := api.stream(ctx, []string{"v1", "events"}, q, last, func(m sseMessage) error {
			got++
			last = m.id
			return p.print(m)
		})
		if ctx.Err() != nil {
			return nil // interrupted: the normal end of --follow
		}
		if !follow {
			return err
		}
		var ae *apiError
		if errors.As(err, &ae) && ae.Status/100 == 4 && ae.Status != http.StatusTooManyRequests {
			return err // a refusal that reconnecting will not change (bad key, bad filter)
		}
		if got > 0 {
			wait = eventsRetryMin
		}
		if end.retry > 0 && got > 0 {
			wait = end.retry
		}
		why := "ended"
		switch {
		case err != nil:
			why = "failed: " + err.Error()
		case end.comment != "":
			why += " (" + clean(end.comment, 200) + ")"
		}
		fmt.Fprintf(c.stderr, "brokerctl: event stream %s; reconnecting in %s\n", why, wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		wait = min(2*wait, eventsRetryMax)
	}
}

// stream GETs an event stream and calls fn for every message until the stream ends (nil), fn
// fails, ctx ends or the connection fails. lastID, when not empty, is sent as Last-Event-ID.
// --timeout bounds the wait for the answer's headers, not the stream.
func (c *client) stream(ctx context.Context, path []string, query url.Values, lastID string, fn func(sseMessage) error) (end streamEnd, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	u := c.base.JoinPath(path...)
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return end, err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	req.Header.Set("User-Agent", "brokerctl")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	timedOut := make(chan struct{})
	timer := time.AfterFunc(c.timeout, func() { close(timedOut); cancel() })
	resp, err := c.hc.Do(req)
	if !timer.Stop() {
		<-timedOut
		if err == nil {
			resp.Body.Close()
		}
		return end, c.unreachable(context.DeadlineExceeded)
	}
	if err != nil {
		return end, c.unreachable(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
		return end, &apiError{Status: resp.StatusCode, Message: errorMessage(resp, data)}
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		return end, fmt.Errorf("GET %s: unexpected answer of type %q, want an event stream", u.Path, resp.Header.Get("Content-Type"))
	}
	end, readErr, fnErr := readEvents(resp.Body, lastID, fn)
	switch {
	case fnErr != nil:
		return end, fnErr
	case readErr != nil && ctx.Err() == nil:
		return end, c.unreachable(fmt.Errorf("reading the event stream: %w", readErr))
	}
	return end, nil
}

// streamEnd is what the broker said about the stream besides its messages.
type streamEnd struct {
	retry   time.Duration // the last "retry:" advice; 0 if none
	comment string        // the last comment other than a heartbeat: why the broker ended it
}

// readEvents parses a Server-Sent Events stream (the WHATWG HTML "event stream" format) and
// calls fn for each message. It returns what the broker said besides messages, the read error
// that ended the stream (nil at its end) or the error fn returned.
func readEvents(r io.Reader, lastID string, fn func(sseMessage) error) (end streamEnd, readErr, fnErr error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxEventLine)
	sc.Split(scanSSELines)
	var data bytes.Buffer
	event, hasData := "", false
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 { // dispatch
			if hasData {
				if event == "" {
					event = "message"
				}
				if err := fn(sseMessage{id: lastID, event: event, data: bytes.Clone(data.Bytes())}); err != nil {
					return end, nil, err
				}
			}
			data.Reset()
			event, hasData = "", false
			continue
		}
		if line[0] == ':' { // comment: a heartbeat, or why the broker ends the stream
			if c := strings.TrimSpace(string(line[1:])); c != "" && !strings.HasPrefix(c, "heartbeat") {
				end.comment = c
			}
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "data":
			if hasData {
				data.WriteByte('\n')
			}
			data.Write(value)
			hasData = true
		case "event":
			event = string(value)
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				lastID = string(value)
			}
		case "retry":
			if ms, err := strconv.ParseUint(string(value), 10, 32); err == nil {
				end.retry = time.Duration(ms) * time.Millisecond
			}
		}
	}
	return end, sc.Err(), nil // a message without its final blank line is not dispatched
}

// scanSSELines splits lines ending in CRLF, LF or CR.
func scanSSELines(data []byte, atEOF bool) (advance int, token []byte, err error) {
	if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
		if data[i] == '\r' {
			if i+1 == len(data) && !atEOF {
				return 0, nil, nil // a CR that may be followed by LF
			}
			if i+1 < len(data) && data[i+1] == '\n' {
				return i + 2, data[:i], nil
			}
		}
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// eventPrinter writes events as they arrive: one line each, or with --json the event's JSON
// on one line. The stream's own messages go to notes: "hello" is dropped, "gap" (events that
// can no longer be replayed) is reported.
type eventPrinter struct {
	w, notes io.Writer
	json     bool
}

func (p *eventPrinter) print(m sseMessage) error {
	switch m.event {
	case "hello":
		return nil
	case "gap":
		var g struct {
			After  uint64 `json:"after"`
			Oldest uint64 `json:"oldest"`
			Reason string `json:"reason"`
		}
		json.Unmarshal(m.data, &g)
		switch g.Reason {
		case "unknown_id":
			fmt.Fprintf(p.notes, "brokerctl: event %d is not from this run of the broker (restarted?); replaying from its oldest event, %d\n", g.After, g.Oldest)
		default:
			fmt.Fprintf(p.notes, "brokerctl: events after %d are no longer held by the broker; some were missed, resuming at %d\n", g.After, g.Oldest)
		}
		return nil
	}
	if p.json {
		var buf bytes.Buffer
		if err := json.Compact(&buf, m.data); err != nil {
			return fmt.Errorf("event %s: not JSON: %w", m.id, err)
		}
		buf.WriteByte('\n')
		_, err := p.w.Write(buf.Bytes())
		return err
	}
	var ev event
	if err := json.Unmarshal(m.data, &ev); err != nil {
		return fmt.Errorf("event %s: unexpected data: %w", m.id, err)
	}
	if ev.Type == "" {
		ev.Type = m.event
	}
	_, err := io.WriteString(p.w, formatEvent(ev)+"\n")
	return err
}

// formatEvent is an event's line: time, type, terminal and key=value details.
func formatEvent(ev event) string {
	terminal := "-"
	if ev.Terminal != 0 {
		terminal = strconv.FormatUint(uint64(ev.Terminal), 10)
	}
	var details []string
	add := func(k, v string) {
		if v != "" {
			details = append(details, k+"="+quoteIfNeeded(clean(v, 0)))
		}
	}
	add("session", ev.Session)
	add("platform", ev.Platform)
	add("reason", ev.Reason)
	details = append(details, detailFields(ev.Detail)...)
	line := fmt.Sprintf("%-20s  %-18s  %-10s", timeColumn(ev.Time), clean(ev.Type, 0), terminal)
	if len(details) > 0 {
		line += "  " + strings.Join(details, " ")
	}
	return strings.TrimRight(line, " ")
}

// detailFields renders an event's "detail": an object as sorted key=value pairs, anything
// else as detail=value.
func detailFields(raw json.RawMessage) []string {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" || s == "{}" {
		return nil
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) == nil {
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var out []string
		for _, k := range keys {
			out = append(out, clean(k, 0)+"="+quoteIfNeeded(clean(jsonScalar(obj[k]), 0)))
		}
		return out
	}
	return []string{"detail=" + quoteIfNeeded(clean(jsonScalar(raw), 0))}
}

// jsonScalar is a JSON value as text: a string without its quotes, anything else compact.
func jsonScalar(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var buf bytes.Buffer
	if json.Compact(&buf, raw) == nil {
		return buf.String()
	}
	return string(raw)
}

// quoteIfNeeded quotes a value holding spaces, quotes or '=' so that the line stays one
// key=value list.
func quoteIfNeeded(s string) string {
	if s == "" || strings.ContainsAny(s, " \t\"=") {
		return strconv.Quote(s)
	}
	return s
}
