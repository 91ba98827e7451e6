package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// terminalPasswd: POST /v1/terminals/{id}/password {"password": "...", "kick": bool}.
func (c *cli) terminalPasswd(cmd *command, args []string) error {
	fs := c.flagSet(cmd)
	var passwordFile string
	var kick bool
	fs.StringVar(&passwordFile, "password-file", "", "file whose first line is the new password")
	fs.BoolVar(&kick, "kick", false, "close the terminal's live session")
	pos, err := c.parse(cmd, fs, args, 1)
	if err != nil {
		return err
	}
	id, err := parseID(cmd.path, pos[0])
	if err != nil {
		return err
	}
	var password string
	switch {
	case setFlags(fs)["password-file"]:
		b, err := readSecretFile(passwordFile)
		if err != nil {
			return usagef(cmd.path, "password file: %v", err)
		}
		password = firstLine(string(b))
	case c.stdin != nil && !isTerminal(c.stdin):
		if password, err = readLine(c.stdin); err != nil {
			return usagef(cmd.path, "reading the password from standard input: %v", err)
		}
	default:
		return usagef(cmd.path, "give the new password with --password-file or on standard input")
	}
	if password == "" {
		return usagef(cmd.path, "the new password is empty")
	}
	api, done, err := c.client(cmd.path)
	if err != nil {
		return err
	}
	defer done()
	body := struct {
		Password string `json:"password"`
		Kick     bool   `json:"kick"`
	}{password, kick}
	_, data, err := api.do(context.Background(), http.MethodPost, []string{"v1", "terminals", formatID(id), "password"}, nil, body)
	if err != nil {
		return err
	}
	if c.g.json {
		return printJSONOr(c.stdout, data, map[string]any{"terminal": id})
	}
	var res struct {
		Kicked *bool `json:"kicked"`
	}
	json.Unmarshal(data, &res) // an answer without "kicked" (or no body) says nothing about the session
	fmt.Fprintf(c.stdout, "changed the password of terminal %d", id)
	switch {
	case res.Kicked != nil && *res.Kicked:
		fmt.Fprint(c.stdout, " and closed its live session")
	case kick && res.Kicked != nil:
		fmt.Fprint(c.stdout, " (it had no live session)")
	}
	fmt.Fprintln(c.stdout)
	return nil
}

// terminalDetach: POST /v1/terminals/{id}/detach.
func (c *cli) terminalDetach(cmd *command, args []string) error {
	id, api, done, err := c.idCommand(cmd, args)
	if err != nil {
		return err
	}
	defer done()
	_, data, err := api.do(context.Background(), http.MethodPost, []string{"v1", "terminals", formatID(id), "detach"}, nil, nil)
	if err != nil {
		return err
	}
	if c.g.json {
		return printJSONOr(c.stdout, data, map[string]any{"terminal": id})
	}
	var res struct {
		Platform string `json:"platform"`
	}
	json.Unmarshal(data, &res) // the platform is only for the message
	platform := ""
	if res.Platform != "" {
		platform = " (" + clean(res.Platform, 0) + ")"
	}
	fmt.Fprintf(c.stdout, "detached terminal %d%s: no more pushes until it attaches again\n", id, platform)
	return nil
}

// kick: POST /v1/terminals/{id}/kick → {"kicked": bool}.
func (c *cli) kick(cmd *command, args []string) error {
	id, api, done, err := c.idCommand(cmd, args)
	if err != nil {
		return err
	}
	defer done()
	_, data, err := api.do(context.Background(), http.MethodPost, []string{"v1", "terminals", formatID(id), "kick"}, nil, nil)
	if err != nil {
		return err
	}
	if c.g.json {
		return printJSON(c.stdout, data)
	}
	var res struct {
		Kicked bool `json:"kicked"`
	}
	if err := json.Unmarshal(data, &res); err != nil {
		return fmt.Errorf("POST /v1/terminals/%d/kick: unexpected answer: %w", id, err)
	}
	if res.Kicked {
		fmt.Fprintf(c.stdout, "closed the live session of terminal %d\n", id)
	} else {
		fmt.Fprintf(c.stdout, "terminal %d has no live session\n", id)
	}
	return nil
}

// userDevices: GET /v1/users/{dmrid}/terminals.
func (c *cli) userDevices(cmd *command, args []string) error {
	pos, err := c.parse(cmd, c.flagSet(cmd), args, 1)
	if err != nil {
		return err
	}
	user, err := parseID(cmd.path, pos[0])
	if err != nil {
		return usagef(cmd.path, "%q is not a DMR user id (1..4294967295)", pos[0])
	}
	api, done, err := c.client(cmd.path)
	if err != nil {
		return err
	}
	defer done()
	var res struct {
		Items     []userDevice `json:"items"`
		Terminals []userDevice `json:"terminals"`
	}
	data, err := api.getJSON(context.Background(), []string{"v1", "users", formatID(user), "terminals"}, nil, &res)
	if err != nil {
		return err
	}
	if c.g.json {
		return printJSON(c.stdout, data)
	}
	devices := append(res.Items, res.Terminals...)
	if len(devices) == 0 {
		fmt.Fprintf(c.stdout, "user %d has no terminals\n", user)
		return nil
	}
	return writeUserDevices(c.stdout, devices, c.now())
}

// writeUserDevices renders a user's terminals.
func writeUserDevices(w io.Writer, ds []userDevice, now time.Time) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "TERMINAL\tNAME\tPLATFORM\tSTATE\tLAST SEEN")
	for _, d := range ds {
		seen := "never"
		if d.LastSeen != nil {
			seen = age(now.Sub(*d.LastSeen)) + " ago"
		}
		platform := clean(d.Platform, 0)
		if platform == "none" {
			platform = ""
		}
		if d.AttachInvalid {
			platform += " (token invalid)"
		}
		if d.State == "active" || d.State == "idle" {
			seen = "now"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", d.ID, orDash(clean(d.Name, maxNameColumn)), orDash(platform), orDash(clean(d.State, 0)), seen)
	}
	return tw.Flush()
}

// printJSONOr prints the API's JSON answer, or fallback when the answer has no body (204).
func printJSONOr(w io.Writer, data []byte, fallback any) error {
	if strings.TrimSpace(string(data)) == "" {
		b, err := json.Marshal(fallback)
		if err != nil {
			return err
		}
		data = b
	}
	return printJSON(w, data)
}
