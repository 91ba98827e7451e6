package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/rewind-broker/rewind/testclient"
)

const listenManual = `testclient listen - print everything a terminal receives

USAGE
  testclient listen --id ID --password PW [--group TG ...] [flags]
  testclient listen ... --attach-url URL --attach-token TOKEN

Connects as terminal --id, subscribes to every --group talkgroup, and prints
one line per datagram received until Ctrl-C:

  MESSAGE_TEXT from=262000201 to=262000101 private text="hello" seq=4 stored
  MESSAGE_TEXT from=262000301 to=91 group text="net check" seq=9
  BROKER_ERROR code=404 offending=MESSAGE_TEXT reason="no such terminal" seq=12

It behaves as a well-behaved terminal: it answers every private text with
MESSAGE_STATUS "delivered" and acknowledges stored deliveries ("stored", the
seq is then the outbox sequence) with DELIVERY_ACK, so the broker deletes
them. Keep-alive echoes are not printed. A second session for the same id
replaces this one (close 4409): listen then exits with code 1.

With --attach-url and --attach-token it first attaches a push channel in the
legacy form ("URL TOKEN", platform FCM, no keys: the broker can only send it
wake-ups); a refused attach ends listen with code 1 and the broker's reason.

FLAGS
%s
EXAMPLES
  REWIND_ID=262000201 REWIND_PASSWORD=pw testclient listen --group 91 --group 92
`

func runListen(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := newFlagSet("listen", listenManual)
	var sf sessionFlags
	sf.register(fs)
	var groups uint32List
	fs.Var(&groups, "group", "subscribe to this `talkgroup` (repeatable, or comma-separated)")
	var attachURL, attachToken string
	fs.StringVar(&attachURL, "attach-url", "", "attach a push channel: the token service `URL` (with --attach-token)")
	fs.StringVar(&attachToken, "attach-token", "", "attach a push channel: the FCM device `token` (with --attach-url)")
	if code, ok := fs.parse(args, getenv, stdout, stderr); !ok {
		return code
	}
	if err := sf.check(); err != nil {
		return fs.usageError(stderr, err)
	}
	if (attachURL == "") != (attachToken == "") {
		return fs.usageError(stderr, errors.New("--attach-url and --attach-token go together"))
	}
	opt := testclient.ListenOptions{Groups: groups}
	if attachURL != "" {
		opt.Attach = &testclient.AttachOptions{URL: attachURL, Token: attachToken, Legacy: true}
		if _, err := testclient.EncodeAttach(*opt.Attach); err != nil {
			return fs.usageError(stderr, err)
		}
	}
	if fs.NArg() > 0 {
		return fs.usageError(stderr, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	err := testclient.Listen(ctx, testclient.Config{
		URL: sf.url, ID: uint32(sf.id), Password: sf.password, Description: sf.description, Logger: logger(sf.verbose, stderr),
	}, opt, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "testclient listen: %v\n", err)
		return exitFailed
	}
	return exitOK
}
