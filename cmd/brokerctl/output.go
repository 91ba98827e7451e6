package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/rewind-broker/rewind/broker"
)

// Column widths for free text in tables; show prints it in full.
const (
	maxNameColumn   = 32
	maxClientColumn = 32
)

// printJSON writes an API answer as indented JSON with a final newline.
func printJSON(w io.Writer, data []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, bytes.TrimSpace(data), "", "  "); err != nil {
		return fmt.Errorf("unexpected answer: %w", err)
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

// writeTerminals renders terminal list rows.
func writeTerminals(w io.Writer, ts []broker.TerminalInfo, now time.Time) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "TERMINAL\tUSER\tNAME\tCREATED\tLAST SEEN")
	for _, t := range ts {
		seen := "never"
		if t.LastSeen != nil {
			seen = age(now.Sub(*t.LastSeen)) + " ago"
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s ago\t%s\n", t.ID, t.User, orDash(clean(t.Name, maxNameColumn)), age(now.Sub(t.Created)), seen)
	}
	return tw.Flush()
}

// writeSessions renders session list rows. SINCE is how long the session has been up, LAST
// KEEPALIVE how long ago the terminal was last heard.
// sessionRow is one item of GET /v1/sessions: the session and its attach platform.
type sessionRow struct {
	broker.SessionInfo
	Platform string `json:"platform"`
}

func writeSessions(w io.Writer, ss []sessionRow, now time.Time) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "TERMINAL\tUSER\tSTATE\tPLATFORM\tCLIENT\tREMOTE\tSINCE\tLAST KEEPALIVE\tQUEUE\tTALKGROUPS")
	for _, s := range ss {
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n",
			s.Terminal, s.User, orDash(clean(s.State, 0)), orDash(clean(s.Platform, 0)), orDash(clean(s.Client, maxClientColumn)),
			orDash(clean(s.Remote, 0)), age(now.Sub(s.Since)), keepAliveAge(s.LastKeepAlive, now),
			s.QueueDepth, talkgroups(s.Talkgroups))
	}
	return tw.Flush()
}

// writeTerminal renders one terminal, its live session, push attachment, outbox and last
// push as labelled lines.
func writeTerminal(w io.Writer, t terminalDetail, now time.Time) error {
	tw := newTable(w)
	fmt.Fprintf(tw, "terminal\t%d\n", t.ID)
	fmt.Fprintf(tw, "user\t%d\n", t.User)
	fmt.Fprintf(tw, "name\t%s\n", orDash(clean(t.Name, 0)))
	fmt.Fprintf(tw, "created\t%s\n", stamp(t.Created, now))
	fmt.Fprintf(tw, "updated\t%s\n", stamp(t.Updated, now))
	if t.LastSeen != nil {
		fmt.Fprintf(tw, "last seen\t%s\n", stamp(*t.LastSeen, now))
	} else {
		fmt.Fprintf(tw, "last seen\tnever\n")
	}
	if t.State != "" {
		fmt.Fprintf(tw, "state\t%s\n", clean(t.State, 0))
	}
	if s := t.Session; s == nil {
		fmt.Fprintf(tw, "session\tnone\n")
	} else {
		fmt.Fprintf(tw, "session\t%s\n", orDash(clean(s.Session, 0)))
		fmt.Fprintf(tw, "  state\t%s\n", orDash(clean(s.State, 0)))
		fmt.Fprintf(tw, "  client\t%s\n", orDash(clean(s.Client, 0)))
		fmt.Fprintf(tw, "  remote\t%s\n", orDash(clean(s.Remote, 0)))
		fmt.Fprintf(tw, "  since\t%s\n", stamp(s.Since, now))
		fmt.Fprintf(tw, "  last keepalive\t%s\n", keepAliveAge(s.LastKeepAlive, now))
		fmt.Fprintf(tw, "  queue\t%d\n", s.QueueDepth)
		fmt.Fprintf(tw, "  talkgroups\t%s\n", talkgroups(s.Talkgroups))
	}
	writeAttach(tw, t.Attach, now)
	writeOutbox(tw, t.Outbox, now)
	writeLastPush(tw, t.LastPush, t.Outbox != nil, now)
	return tw.Flush()
}

// stamp is an absolute time with its age: "2025-05-01 12:00:00 UTC (3m12s ago)".
func stamp(t, now time.Time) string {
	return fmt.Sprintf("%s (%s ago)", t.UTC().Format("2006-01-02 15:04:05 UTC"), age(now.Sub(t)))
}

func keepAliveAge(t, now time.Time) string {
	if t.IsZero() || t.Unix() <= 0 { // never heard since the handshake
		return "-"
	}
	return age(now.Sub(t)) + " ago"
}

// age formats a duration for people at second resolution with at most two units, the
// second left out when zero: "42s", "3m12s", "3m", "2h5m", "3d4h", "2d". Negative durations
// (clock skew between brokerctl and the broker) show as "0s".
func age(d time.Duration) string {
	const day = 24 * time.Hour
	units := []struct {
		size time.Duration
		name string
	}{{day, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}}
	if d < time.Second {
		return "0s"
	}
	for i, u := range units[:3] {
		if d >= u.size {
			s := fmt.Sprintf("%d%s", d/u.size, u.name)
			if next := units[i+1]; d%u.size >= next.size {
				s += fmt.Sprintf("%d%s", d%u.size/next.size, next.name)
			}
			return s
		}
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

func talkgroups(tgs []uint32) string {
	if len(tgs) == 0 {
		return "-"
	}
	parts := make([]string, len(tgs))
	for i, tg := range tgs {
		parts[i] = strconv.FormatUint(uint64(tg), 10)
	}
	return strings.Join(parts, ",")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// clean makes text that terminals chose (names, client descriptions) safe to print: control
// characters, which could drive the operator's terminal or break the table, become U+FFFD.
// max > 0 cuts it to max runes, marking the cut with "…".
func clean(s string, max int) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if max > 0 && n == max {
			return strings.TrimRightFunc(b.String(), unicode.IsSpace) + "…"
		}
		if !unicode.IsPrint(r) && r != ' ' {
			r = unicode.ReplacementChar
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}
