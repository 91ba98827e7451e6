package main

const manualSend = `brokerctl send — store a private text for a terminal, or for every terminal of a user

USAGE
  brokerctl send <id> TEXT --from ID
  brokerctl send --user DMRID TEXT --from ID

Publishes a private MESSAGE_TEXT from DMR id --from. For a terminal, brokerctl builds the
datagram and posts it as it is (POST /v1/terminals/<id>/datagrams); with --user the broker
builds one text for every terminal of the DMR user (POST /v1/users/<dmrid>/texts). Either
way the text is stored in the terminal's outbox first, then delivered over its live session
or announced by a push, like a text from another terminal. Needs a broker with push
(store-and-forward) enabled; otherwise the API answers "store-and-forward is not enabled".

FLAGS
  --from ID      the DMR id the text appears to come from (required), 1..4294967295
  --user DMRID   send to every terminal of this DMR user instead of one terminal; the only
                 argument is then the text
  and the global flags (brokerctl --help)

OUTPUT
  One row per terminal the text was stored for:
    TERMINAL   the terminal
    SEQUENCE   its position in the terminal's outbox (what DELIVERY_ACK acknowledges)
    STATE      the terminal when the text was stored: active (delivered over its socket),
               idle (socket kept, woken by push) or offline
    PUSH       the wake: not_needed (active), sent, already_pending (a push for earlier texts
               is on its way), no_push_channel (never attached: the text waits for the next
               login), token_invalid (the provider said the device token is gone), retrying
               (provider or token service unavailable, retried with backoff), rejected,
               overloaded (wake queue full), queued (no outcome within the broker's wait)
  With --json the API's answer: {"terminal", "sequence", "state", "push"}, or with --user
  {"results": [...]} of those.

EXAMPLES
  brokerctl send 262000101 "Net starts at 20:00 on TG 91" --from 2620001
  brokerctl send --user 2620001 "Your account was renewed" --from 9990
  brokerctl --json send 262000101 "ping" --from 9990 | jq -r .push

` + exitStatusHelp
