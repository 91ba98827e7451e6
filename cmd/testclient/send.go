package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rewind-broker/rewind/testclient"
)

const sendManual = `testclient send - send one text and report its fate

USAGE
  testclient send --id ID --password PW (--to ID | --group TG) [flags] TEXT...

Connects as terminal --id, sends TEXT (the remaining arguments joined by
spaces) and waits up to --wait for the outcome:

  private text (--to)  the recipient's MESSAGE_STATUS ("delivered", "read"),
                       or the broker's BROKER_ERROR (e.g. 404 unknown
                       destination, 403 not allowed, 413 too large).
  group text (--group) group texts get no status: the text counts as
                       delivered when the broker has processed it (a
                       keep-alive round trip) without a BROKER_ERROR.

Then it closes the session (CLOSE, WebSocket close 1000) and prints one line:
  delivered: terminal 262000201 reported status delivered
  rejected: broker error 404 (MESSAGE_TEXT): no such terminal
  no status within 10s: the text was accepted (the recipient is probably offline or idle; the broker stores private texts and wakes the terminal)

EXIT CODES
  0 delivered, 1 rejected or the session failed, 2 usage error, 3 no status

FLAGS
%s
EXAMPLES
  REWIND_PASSWORD=pw testclient send --id 262000101 --to 262000201 "hello"
  testclient send --id 262000101 --password pw --group 91 "net check"
`

func runSend(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := newFlagSet("send", sendManual)
	var sf sessionFlags
	sf.register(fs)
	var to, group uint32Value
	fs.Var(&to, "to", "send a private text to this terminal or DMR `id`")
	fs.Var(&group, "group", "send a group text to this `talkgroup`")
	wait := fs.Duration("wait", 10*time.Second, "how long to wait for the outcome, connection included")
	if code, ok := fs.parse(args, getenv, stdout, stderr); !ok {
		return code
	}
	text := strings.Join(fs.Args(), " ")
	switch err := sf.check(); {
	case err != nil:
		return fs.usageError(stderr, err)
	case (to == 0) == (group == 0):
		return fs.usageError(stderr, errors.New("give exactly one of --to and --group"))
	case text == "":
		return fs.usageError(stderr, errors.New("no TEXT to send"))
	case *wait <= 0:
		return fs.usageError(stderr, errors.New("--wait must be positive"))
	}

	ctx, cancel := context.WithTimeout(ctx, *wait)
	defer cancel()
	res, err := testclient.SendOnce(ctx, testclient.Config{
		URL: sf.url, ID: uint32(sf.id), Password: sf.password, Description: sf.description, Logger: logger(sf.verbose, stderr),
	}, testclient.SendOptions{To: uint32(to), Group: uint32(group), Text: text})
	if err != nil {
		fmt.Fprintf(stderr, "testclient send: %v\n", err)
		return exitFailed
	}
	switch res.Outcome {
	case testclient.OutcomeDelivered:
		if res.Status != nil {
			fmt.Fprintf(stdout, "delivered: terminal %d reported status %s\n", res.Status.Source, testclient.StatusName(res.Status.Status))
		} else {
			fmt.Fprintf(stdout, "delivered: group %d accepted the text\n", group)
		}
		return exitOK
	case testclient.OutcomeRejected:
		if res.BrokerError != nil {
			fmt.Fprintf(stdout, "rejected: %v\n", *res.BrokerError)
		} else {
			fmt.Fprintf(stdout, "rejected: the recipient reported status %s\n", testclient.StatusName(res.Status.Status))
		}
		return exitFailed
	default:
		fmt.Fprintf(stdout, "no status within %v: the text was accepted (the recipient is probably offline or idle; the broker stores private texts and wakes the terminal)\n", *wait)
		return exitNoStatus
	}
}
