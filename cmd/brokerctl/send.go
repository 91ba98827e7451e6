package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"

	"github.com/rewind-broker/rewind/protocol"
)

// send: a private text to one terminal (a MESSAGE_TEXT datagram built here and POSTed raw to
// /v1/terminals/{id}/datagrams) or, with --user, to every terminal of a DMR user
// (POST /v1/users/{dmrid}/texts).
func (c *cli) send(cmd *command, args []string) error {
	fs := c.flagSet(cmd)
	var from, user uint64
	fs.Uint64Var(&from, "from", 0, "DMR id the text comes from")
	fs.Uint64Var(&user, "user", 0, "send to every terminal of this DMR user")
	pos, err := c.parseAny(cmd, fs, args)
	if err != nil {
		return err
	}
	set := setFlags(fs)
	want := 2
	if set["user"] {
		want = 1
	}
	if err := checkOperands(cmd, pos, want); err != nil {
		return err
	}
	text := pos[want-1]
	if !set["from"] {
		return usagef(cmd.path, "send needs --from ID, the DMR id the text appears to come from")
	}
	if from == 0 || from > math.MaxUint32 {
		return usagef(cmd.path, "--from %d is not a DMR id (1..4294967295)", from)
	}
	if text == "" {
		return usagef(cmd.path, "the text is empty")
	}
	if set["user"] {
		if user == 0 || user > math.MaxUint32 {
			return usagef(cmd.path, "--user %d is not a DMR user id (1..4294967295)", user)
		}
		return c.sendUser(cmd, uint32(user), uint32(from), text)
	}
	id, err := parseID(cmd.path, pos[0])
	if err != nil {
		return err
	}
	data, err := protocol.TextMessage{Source: uint32(from), Destination: id, Option: protocol.OptionPrivate, Text: text}.Encode()
	if err != nil {
		return usagef(cmd.path, "the text cannot be sent: %v", err)
	}
	raw, err := protocol.Datagram{Type: protocol.TypeMessageText, Data: data}.Encode()
	if err != nil {
		return usagef(cmd.path, "the text cannot be sent: %v", err)
	}
	api, done, err := c.client(cmd.path)
	if err != nil {
		return err
	}
	defer done()
	_, answer, err := api.do(context.Background(), http.MethodPost, []string{"v1", "terminals", formatID(id), "datagrams"}, nil,
		rawBody{contentType: "application/octet-stream", data: raw})
	if err != nil {
		return err
	}
	if c.g.json {
		return printJSON(c.stdout, answer)
	}
	var res publishResult
	if err := json.Unmarshal(answer, &res); err != nil {
		return fmt.Errorf("POST /v1/terminals/%d/datagrams: unexpected answer: %w", id, err)
	}
	return writePublishResults(c.stdout, []publishResult{res})
}

func (c *cli) sendUser(cmd *command, user, from uint32, text string) error {
	api, done, err := c.client(cmd.path)
	if err != nil {
		return err
	}
	defer done()
	body := struct {
		From uint32 `json:"from"`
		Text string `json:"text"`
	}{from, text}
	_, answer, err := api.do(context.Background(), http.MethodPost, []string{"v1", "users", formatID(user), "texts"}, nil, body)
	if err != nil {
		return err
	}
	if c.g.json {
		return printJSON(c.stdout, answer)
	}
	var res userPublish
	if err := json.Unmarshal(answer, &res); err != nil {
		return fmt.Errorf("POST /v1/users/%d/texts: unexpected answer: %w", user, err)
	}
	return writePublishResults(c.stdout, res.Results)
}

// writePublishResults renders one row per terminal a text was stored for.
func writePublishResults(w io.Writer, rs []publishResult) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "TERMINAL\tSEQUENCE\tSTATE\tPUSH")
	for _, r := range rs {
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\n", r.Terminal, r.Sequence, orDash(clean(r.State, 0)), orDash(clean(r.Push, 0)))
	}
	return tw.Flush()
}
