package main

import (
	"fmt"
	"strings"
)

// The manuals. Every flag a command defines must appear in its manual (TestManualsMentionFlags).

const globalFlagsHelp = `GLOBAL FLAGS (before or after the command; a flag wins over its variable)
  --admin-url URL        ($REWIND_ADMIN_URL) the broker's admin API (default http://127.0.0.1:4001,
                         the broker's default --admin-listen); a path prefix is kept
  --admin-key-file PATH  ($REWIND_ADMIN_KEY_FILE) file holding the admin key, e.g. the broker's
                         <data>/admin.key
  --admin-key KEY        ($REWIND_ADMIN_KEY) the admin key itself; other users can read it with
                         ps, prefer the file or the variable
  --json                 print the API's JSON (indented) instead of tables, for scripts
  --timeout DURATION     give up on a request with no answer after this long (default 10s)
  -h, --help             the manual of the tool or of the command

  The key is taken from the first of --admin-key, --admin-key-file, $REWIND_ADMIN_KEY,
  $REWIND_ADMIN_KEY_FILE and ./data/admin.key (where a broker started without flags keeps it).
`

const exitStatusHelp = `EXIT STATUS
  0  success
  1  the API refused or failed the request (4xx other than 401, or 5xx); its "error"
     message is printed on stderr, e.g. "no such terminal"
  2  usage error: unknown command or flag, bad terminal id, no admin key; nothing was sent
  3  cannot reach the broker: connection refused, DNS, TLS, or no answer within --timeout
  4  authentication refused (401): the admin key is missing or wrong
`

func toolManual() string {
	var cmds strings.Builder
	for _, c := range commands {
		fmt.Fprintf(&cmds, "  %-16s %s\n", c.path, c.summary)
	}
	fmt.Fprintf(&cmds, "  %-16s %s\n", "help [command]", "this manual, or a command's")
	return `brokerctl — operator CLI for a Rewind Broker's admin API

Registers the terminals allowed to connect, shows them, their live sessions and push
attachments, and removes them; changes passwords, closes sessions, sends texts, shows the
push audit and follows the broker's event stream. Talks HTTP to the broker's admin listener
with its bearer key; run it on the broker's host or through a tunnel, as the admin API
listens on localhost by default.

USAGE
  brokerctl [global flags] <command> [arguments] [flags]

COMMANDS
` + cmds.String() + `
  Terminal ids are 1..4294967295. A 9-digit id (100000000..999999999) is a 7-digit DMR user
  id followed by a 2-digit device suffix: terminal 262000101 is device 01 of user 2620001.
  Any other id is a user id itself.

` + globalFlagsHelp + `
OUTPUT
  Tables and messages for people on stdout; errors and paging hints on stderr. Ages read
  "42s", "3m12s", "2h5m", "3d4h", "2d"; times in tables are UTC. With --json, stdout is
  exactly the API's JSON: a terminal object, {"items": [...], "next": ID} pages,
  {"deleted": ID, "session_closed": BOOL}; "events --json" prints one event per line.
  Passwords are never printed: the API never returns them.

` + exitStatusHelp + `
EXAMPLES
  export REWIND_ADMIN_KEY_FILE=/var/lib/rewind/admin.key
  brokerctl terminal add 262000101 --password-file pw.txt --name "My phone"
  brokerctl sessions
  brokerctl terminal show 262000101
  brokerctl --json terminal list --all | jq -r '.items[].id'
  brokerctl --admin-url http://10.0.0.5:4001 terminal rm 262000101
  brokerctl terminal passwd 262000101 --password-file new-pw.txt --kick
  brokerctl user devices 2620001
  brokerctl send 262000101 "hello" --from 2620009
  brokerctl pushes 262000101
  brokerctl events --follow --terminal 262000101

Run "brokerctl <command> --help" for a command's manual.
`
}

func groupManual(group string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "brokerctl %s — %s\n\nCOMMANDS\n", group, groups[group])
	for _, c := range commands {
		if strings.HasPrefix(c.path, group+" ") {
			fmt.Fprintf(&b, "  brokerctl %-16s %s\n", c.path, c.summary)
		}
	}
	b.WriteString("\nRun \"brokerctl " + group + " <command> --help\" for a command's manual.\n")
	return b.String()
}

const manualTerminalAdd = `brokerctl terminal add — create a terminal, or change its password or name

USAGE
  brokerctl terminal add <id> [--name NAME] [--password-file PATH | --password PASSWORD | < FILE]

Stores terminal <id> with its password (PUT /v1/terminals/<id>). A terminal that exists is
updated: its live session, if any, is left alone and its next login uses the new password.

The password comes from the first of:
  --password-file PATH   the file's first line (the line ending is not part of it)
  --password PASSWORD    the command line; other users on the machine can read it with ps
  standard input         its first line, when standard input is not a terminal (a pipe or a file)
An empty password keeps an existing terminal's password (to change only its name); a new
terminal needs one. The password is never printed.

FLAGS
  --name NAME            device name, at most 64 printable characters; without --name an
                         existing terminal keeps its name, and --name "" removes it
  --password-file PATH   read the password from this file
  --password PASSWORD    the password on the command line (see above)
  and the global flags (brokerctl --help)

OUTPUT
  "created terminal 262000101 (user 2620001, name "My phone")", or "updated ...";
  with --json the stored terminal as the API returns it.

EXAMPLES
  brokerctl terminal add 262000101 --password-file pw.txt --name "My phone"
  pass show rewind/262000101 | brokerctl terminal add 262000101
  brokerctl terminal add 262000101 --name "Work phone" < /dev/null   # rename only

` + exitStatusHelp

const manualTerminalRm = `brokerctl terminal rm — delete a terminal

USAGE
  brokerctl terminal rm <id>

Removes terminal <id> and its password (DELETE /v1/terminals/<id>). Its live session, if any,
is closed (WebSocket close 4403) and it can no longer log in.

FLAGS
  the global flags (brokerctl --help)

OUTPUT
  "deleted terminal 262000101" plus "and closed its live session" when it had one;
  with --json {"deleted": 262000101, "session_closed": true}.

EXAMPLES
  brokerctl terminal rm 262000101

` + exitStatusHelp

const manualTerminalShow = `brokerctl terminal show — a terminal, its session, push attachment and outbox

USAGE
  brokerctl terminal show <id>

Shows terminal <id> (GET /v1/terminals/<id>) in labelled blocks:
  terminal      its DMR user, name, when it was created, updated and last seen
  session       its live session, or none: session id, state (active or idle), client (the
                description the terminal sent in its hello), remote address, since when,
                last keep-alive, send queue depth and subscribed talkgroups
  push attach   its push channel (TERMINAL_ATTACH), or none: platform (fcm, apns), token
                service host, device token (masked), APNs topic, device name, fingerprints
                of its encryption key (p256dh; none means wake-only pushes) and signing key
                with its kind, whether it used the legacy form, when it attached and when
                the device token last changed, and whether the provider declared the token
                invalid (with the provider's reason and when)
  outbox        stored datagrams not yet acknowledged by the terminal, and the age of the
                oldest, or empty
  last push     the last push sent or tried: time, platform, kind (data or wake), outcome,
                the provider's reason when it failed, latency and message id; or none
                (brokers that keep a push audit; see brokerctl pushes)

FLAGS
  the global flags (brokerctl --help)

EXAMPLES
  brokerctl terminal show 262000101
  brokerctl --json terminal show 262000101 | jq .session
  brokerctl --json terminal show 262000101 | jq '{attach: .attach.invalid, waiting: .outbox.depth}'

` + exitStatusHelp

const manualTerminalList = `brokerctl terminal list — registered terminals

USAGE
  brokerctl terminal list [--limit N] [--after ID] [--all]

Lists registered terminals in id order (GET /v1/terminals), one page at a time. When there
are more, stderr says where the next page starts.

FLAGS
  --limit N    terminals per page, 1..1000 (default: the broker's, 100)
  --after ID   start after terminal ID (the "next" of the previous page)
  --all        fetch every page; with --json the result is one {"items": [...]}
  and the global flags (brokerctl --help)

COLUMNS
  TERMINAL, USER (DMR user id), NAME, CREATED (age), LAST SEEN (age of the last login, or never)

EXAMPLES
  brokerctl terminal list
  brokerctl terminal list --limit 50 --after 262000199
  brokerctl --json terminal list --all > terminals.json

` + exitStatusHelp

const manualSessions = `brokerctl sessions — live sessions

USAGE
  brokerctl sessions [--state active|idle] [--platform fcm|apns|none] [--limit N] [--after ID] [--all]

Lists authenticated sessions in terminal id order (GET /v1/sessions). Prints "no sessions"
when there are none.

FLAGS
  --state S      only sessions in state S: active or idle (TERMINAL_IDLE sent, socket open)
  --platform P   only terminals whose push attach is P: fcm, apns, or none (no attach).
                 A filtered page may be short or empty and still have a next page: use --all
  --limit N      sessions per page, 1..1000 (default: the broker's, 100)
  --after ID     start after terminal ID
  --all          fetch every page
  and the global flags (brokerctl --help)

COLUMNS
  TERMINAL, USER, STATE, PLATFORM (push attach: fcm, apns, none), CLIENT (the terminal's hello
  description), REMOTE (address),
  SINCE (how long the session has been up), LAST KEEPALIVE (how long ago the terminal was
  last heard), QUEUE (datagrams waiting to be written to it), TALKGROUPS (subscribed)

EXAMPLES
  brokerctl sessions
  brokerctl sessions --state idle --platform apns --all
  brokerctl --json sessions --all | jq '.items[] | select(.queue_depth > 0)'

` + exitStatusHelp
