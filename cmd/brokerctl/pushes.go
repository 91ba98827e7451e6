package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"time"
)

// maxPushesLimit is the largest --limit brokerctl sends; the broker may cap it lower.
const maxPushesLimit = 1000

// pushes: GET /v1/terminals/{id}/pushes?limit=&before=, newest first.
func (c *cli) pushes(cmd *command, args []string) error {
	fs := c.flagSet(cmd)
	var limit int
	var before string
	fs.IntVar(&limit, "limit", 0, "records to show")
	fs.StringVar(&before, "before", "", "show records older than this time (RFC 3339)")
	pos, err := c.parse(cmd, fs, args, 1)
	if err != nil {
		return err
	}
	id, err := parseID(cmd.path, pos[0])
	if err != nil {
		return err
	}
	if limit < 0 || limit > maxPushesLimit {
		return usagef(cmd.path, "--limit %d: want 1..%d (0: the broker's default)", limit, maxPushesLimit)
	}
	api, done, err := c.client(cmd.path)
	if err != nil {
		return err
	}
	defer done()
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", fmt.Sprint(limit))
	}
	if before != "" {
		at, err := time.Parse(time.RFC3339Nano, before)
		if err != nil {
			return usagef(cmd.path, "--before %q: want a time like 2026-11-24T20:53:07Z", before)
		}
		q.Set("before", at.UTC().Format(time.RFC3339Nano))
	}
	var res struct {
		Pushes     []pushRecord `json:"pushes"`
		NextBefore *time.Time   `json:"next_before,omitempty"`
	}
	data, err := api.getJSON(context.Background(), []string{"v1", "terminals", formatID(id), "pushes"}, q, &res)
	if err != nil {
		return err
	}
	if c.g.json {
		return printJSON(c.stdout, data)
	}
	if len(res.Pushes) == 0 {
		fmt.Fprintf(c.stdout, "no pushes recorded for terminal %d\n", id)
	} else if err := writePushes(c.stdout, res.Pushes); err != nil {
		return err
	}
	if res.NextBefore != nil {
		fmt.Fprintf(c.stderr, "older pushes: add --before %s\n", res.NextBefore.UTC().Format(time.RFC3339Nano))
	}
	return nil
}

// writePushes renders push audit rows.
func writePushes(w io.Writer, ps []pushRecord) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "TIME\tPLATFORM\tOUTCOME\tLATENCY\tMESSAGE ID\tREASON")
	for _, p := range ps {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", timeColumn(p.Time), orDash(clean(p.Platform, 0)), orDash(clean(p.Outcome, 0)),
			p.Latency, orDash(clean(p.MessageID, 0)), orDash(clean(p.Reason, maxReasonColumn)))
	}
	return tw.Flush()
}

// maxReasonColumn bounds the provider's error text in the audit table (--json has all of it).
// Message ids are printed whole: they are what the provider's own logs are searched by.
const maxReasonColumn = 60

// timeColumn is a time for tables and event lines, in UTC at second resolution.
func timeColumn(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}
