package main

const manualTerminalPasswd = `brokerctl terminal passwd — change a terminal's password

USAGE
  brokerctl terminal passwd <id> [--password-file PATH | < FILE] [--kick]

Sets a new password for terminal <id> (POST /v1/terminals/<id>/password); its name and push
attachment are kept. Without --kick a live session stays up and the new password applies at
the next login; with --kick the session is closed now (WebSocket close 4403 for the app),
so a stolen or shared password stops working at once.

The password comes from the first of:
  --password-file PATH   the file's first line (the line ending is not part of it)
  standard input         its first line, when standard input is a pipe or a file
It is never taken from the command line (other users could read it with ps) and never printed.

FLAGS
  --password-file PATH   read the new password from this file
  --kick                 close the terminal's live session as well
  and the global flags (brokerctl --help)

OUTPUT
  "changed the password of terminal 262000101", plus "and closed its live session" when
  --kick closed one, or "(it had no live session)"; with --json the API's answer,
  {"terminal": ID, "updated": TIME, "kicked": BOOL}.

EXAMPLES
  brokerctl terminal passwd 262000101 --password-file new-pw.txt
  pwgen -s 24 1 | tee /dev/stderr | brokerctl terminal passwd 262000101 --kick

` + exitStatusHelp

const manualTerminalDetach = `brokerctl terminal detach — remove a terminal's push attachment

USAGE
  brokerctl terminal detach <id>

Removes terminal <id>'s push attachment (POST /v1/terminals/<id>/detach), as if the app had
sent TERMINAL_DETACH: no more pushes are sent to its device. Datagrams for it are still
stored and delivered at its next login; the app attaches again when it next goes idle. Use
it for a lost or decommissioned phone, or an attachment whose token keeps failing.

FLAGS
  the global flags (brokerctl --help)

OUTPUT
  "detached terminal 262000101 (fcm): no more pushes until it attaches again"; with --json
  the API's answer, {"terminal": ID, "detached": true, "platform": "fcm"}. A terminal without
  a push attachment is an error (exit status 1, "terminal 262000101 has no push attachment").

EXAMPLES
  brokerctl terminal detach 262000101
  brokerctl terminal show 262000101 | grep -A3 '^push attach'   # check first

` + exitStatusHelp

const manualUserDevices = `brokerctl user devices — a DMR user's terminals

USAGE
  brokerctl user devices <dmrid>

Lists every terminal of DMR user <dmrid> (GET /v1/users/<dmrid>/terminals): the user's own id
if registered as a terminal, and its 9-digit device ids (<dmrid> followed by 00..99). Useful
before "send --user", or to find which of a user's phones is reachable.

FLAGS
  the global flags (brokerctl --help)

COLUMNS
  TERMINAL, NAME, PLATFORM (push platform of its attachment: fcm or apns, "(token invalid)"
  when the provider declared its device token gone, - without an attachment), STATE (active,
  idle or offline), LAST SEEN ("now" with a live session, else how long ago it last logged
  in or out, or never)

EXAMPLES
  brokerctl user devices 2620001
  brokerctl --json user devices 2620001 | jq '.terminals[] | select(.state != "offline") | .id'

` + exitStatusHelp

const manualKick = `brokerctl kick — close a terminal's live session

USAGE
  brokerctl kick <id>

Closes terminal <id>'s live session (POST /v1/terminals/<id>/kick; WebSocket close 4403
"kicked by operator"). The terminal stays registered and may log in again at once: kick
clears a stuck session, or makes an app reconnect after a broker-side change. To keep it out,
change its password with "terminal passwd --kick" or remove it with "terminal rm".

FLAGS
  the global flags (brokerctl --help)

OUTPUT
  "closed the live session of terminal 262000101", or "terminal 262000101 has no live
  session" (still exit status 0); with --json {"terminal": ID, "kicked": BOOL}.

EXAMPLES
  brokerctl kick 262000101
  brokerctl --json kick 262000101 | jq .kicked

` + exitStatusHelp

const manualPushes = `brokerctl pushes — the push audit of a terminal

USAGE
  brokerctl pushes <id> [--limit N] [--before TIME]

Shows the pushes the broker sent, or tried to send, to terminal <id>, newest first
(GET /v1/terminals/<id>/pushes): when, through which provider, what the provider answered and
how long it took. It answers "did the phone get woken up?" days later: the broker keeps
the audit for a week by default. When there may be older records, stderr says how to ask
for them.

FLAGS
  --limit N          records to show, 1..1000 (default: the broker's, 50)
  --before TIME      records older than TIME, RFC 3339 (2026-11-24T20:53:07Z; stderr prints
                     the value for the next page)
  and the global flags (brokerctl --help)

COLUMNS
  TIME (UTC), PLATFORM (fcm, apns), OUTCOME (sent, token_invalid, retrying, rejected,
  no_push_channel, already_pending, ...),
  LATENCY (from the request to the provider's answer), MESSAGE ID (FCM message name or
  APNs apns-id, for the provider's own logs), REASON (the provider's error, when it failed)

EXAMPLES
  brokerctl pushes 262000101
  brokerctl pushes 262000101 --limit 5
  brokerctl pushes 262000101 --before 2026-11-24T20:53:07.5Z
  brokerctl --json pushes 262000101 | jq '.pushes[] | select(.outcome != "sent")'

` + exitStatusHelp

const manualEvents = `brokerctl events — the broker's event stream

USAGE
  brokerctl events [--follow] [--terminal ID] [--types a,b] [--after ID]

Prints what happened on the broker (GET /v1/events, Server-Sent Events), one line per event:
sessions opened and closed, attaches and detaches, idle and active, pushes sent or failed,
invalidated tokens, deliveries and expired outbox entries. The broker keeps recent events
in memory (by default an hour); a restart starts a new stream.

Without --follow, prints the events the broker still holds and exits. With --follow, prints
new events as they happen (after replaying those after --after, if given) until Ctrl-C; when
the connection fails or the broker restarts, it reconnects with the id of the last event
printed, so nothing is missed or printed twice. If events were dropped in between (the
broker no longer held them), stderr says so.

FLAGS
  --follow         keep the stream open until interrupted (Ctrl-C exits with status 0)
  --terminal ID    only events of this terminal
  --types a,b      only these event types: session_opened, session_closed, attached,
                   detached, push_token_updated, idle, active, woken, push_sent, push_failed,
                   token_invalidated, outbox_expired, delivered
  --after ID       start after event ID (the "id" of an event in --json output)
  and the global flags (brokerctl --help); with --follow, --timeout bounds only the wait
  for the broker to answer each (re)connection, not the stream

OUTPUT
  TIME (UTC)  TYPE  TERMINAL  then key=value details (session, platform, reason and the
  event's detail), e.g.
    2026-11-24 20:53:07Z  push_sent           262000101   platform=fcm kind=data latency_ms=84
  With --json each event is its JSON object on one line (newline-delimited JSON):
    {"id":42,"time":"...","type":"push_sent","terminal":262000101,"platform":"fcm","detail":{...}}
  Reconnection notes and dropped-event warnings go to stderr.

EXAMPLES
  brokerctl events
  brokerctl events --follow --terminal 262000101
  brokerctl events --follow --types push_sent,push_failed,token_invalidated
  brokerctl --json events --follow | jq -c 'select(.type == "session_closed")'
  brokerctl events --follow --after 1234      # resume where a previous run stopped

` + exitStatusHelp
