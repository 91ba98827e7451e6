package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/rewind-broker/rewind/testclient"
)

const phoneManual = `testclient phone - a phone app for "broker --dev": the whole wake cycle

USAGE
  testclient phone --id ID --password PW [--platform fcm|apns] [flags]

A phone app in the background has no connection: the broker stores what
arrives for it and asks FCM or APNs to push it, and the push wakes the app.
"broker --dev" runs fake FCM and APNs inside the broker; this command is the
phone on the other side of them, so the cycle runs on one machine. It prints
every step, until Ctrl-C:

  1. Start. It generates push keys, registers a fake device (POST
     /dev/devices on the admin listener), connects as terminal --id and
     attaches the device: its token, the dev token service
     ADMIN-URL/dev/token/PLATFORM, and its public keys, so that the broker
     seals push bodies for it.
  2. Idle. It sends TERMINAL_IDLE and drops its socket, as a suspended app
     does, then waits for a push (a long poll of GET /dev/pushes/next).
  3. Push. In the other shell, send it a text:
       go run ./cmd/testclient send --id OTHER-ID --password PW2 --to ID "hello"
     The broker stores the text and pushes it. The phone prints
       push received: type data enc aes128gcm (147 bytes) ...
         opened: MESSAGE_TEXT from=OTHER-ID to=ID private text="hello" seq=1 stored
     The text rode in the push, sealed with the phone's keys.
  4. Wake. It reconnects (TERMINAL_WAKEUP first) and prints what the broker
     replays from storage: the same text again, because it stays stored
     until acknowledged. It answers it with MESSAGE_STATUS delivered,
     acknowledges it (DELIVERY_ACK: the broker deletes it) and is idle
     again: back to 2.

What send shows: the phone wakes and answers within a second, while send is
still waiting, so send prints "delivered: terminal ID reported status
delivered" and exits 0. Exit code 3 ("no status within 10s: the text was
accepted ...") means that nobody answered in time: the phone is not running,
or was stopped while its device was attached. That is expected for a phone
that is really asleep. The text stays stored: the phone prints it when you
start it again (step 1 receives what is stored). Its sender has gone by
then, so the broker refuses the phone's MESSAGE_STATUS with "BROKER_ERROR
code=404 ... is not connected", which the phone prints too: statuses are
live traffic, never stored.

Both terminals must exist. With a fresh broker ("./data" is its default
data directory; the first run prints the admin key and stores it there):
  go run ./cmd/broker --dev
  go run ./cmd/brokerctl --admin-key-file data/admin.key terminal add 262000201 --password phone
  go run ./cmd/brokerctl --admin-key-file data/admin.key terminal add 262000101 --password desk
Shell 1:
  go run ./cmd/testclient phone --id 262000201 --password phone
Shell 2:
  go run ./cmd/testclient send --id 262000101 --password desk --to 262000201 "hello"

Texts sent while the phone is connected (steps 1 and 4) are received on the
socket without a push. A restarted broker forgets the fake devices: the
phone then stops with an error; start it again.

FLAGS
%s
EXIT CODES
  0 stopped by Ctrl-C, or --once after one wake cycle; 1 broker or admin
  listener failure; 2 usage error
`

func runPhone(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := newFlagSet("phone", phoneManual)
	var sf sessionFlags
	sf.register(fs)
	platform := fs.String("platform", testclient.PlatformFCM, "push platform of the fake device: fcm or apns")
	adminURL := fs.String("admin-url", "http://127.0.0.1:4001", "admin listener of the broker started with --dev")
	fs.envVar("admin-url", "REWIND_ADMIN_URL")
	once := fs.Bool("once", false, "exit after the first wake cycle (push, reconnect, acknowledgement, idle)")
	if code, ok := fs.parse(args, getenv, stdout, stderr); !ok {
		return code
	}
	if err := sf.check(); err != nil {
		return fs.usageError(stderr, err)
	}
	if *platform != testclient.PlatformFCM && *platform != testclient.PlatformAPNs {
		return fs.usageError(stderr, fmt.Errorf("--platform %q: want fcm or apns", *platform))
	}
	if u, err := url.Parse(*adminURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fs.usageError(stderr, fmt.Errorf("--admin-url %q: want http://HOST:PORT", *adminURL))
	}
	if fs.NArg() > 0 {
		return fs.usageError(stderr, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	err := testclient.RunDevPhone(ctx, testclient.DevPhoneConfig{
		Client: testclient.Config{
			URL: sf.url, ID: uint32(sf.id), Password: sf.password, Description: sf.description, Logger: logger(sf.verbose, stderr),
		},
		AdminURL: strings.TrimRight(*adminURL, "/"),
		Platform: *platform,
		Once:     *once,
	}, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "testclient phone: %v\n", err)
		return exitFailed
	}
	return exitOK
}
