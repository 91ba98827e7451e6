package main

import (
	"fmt"
	"io"
	"time"
)

// The push blocks of "terminal show": attachment, outbox and last push, written to the same
// table as the terminal so that the labels line up.

func writeAttach(tw io.Writer, a *attachInfo, now time.Time) {
	if a == nil {
		fmt.Fprintf(tw, "push attach\tnone\n")
		return
	}
	fmt.Fprintf(tw, "push attach\t%s\n", orDash(clean(a.Platform, 0)))
	fmt.Fprintf(tw, "  token service\t%s\n", orDash(clean(a.TokenServiceHost, 0)))
	fmt.Fprintf(tw, "  device token\t%s\n", orDash(clean(a.DeviceToken, 0)))
	if a.Topic != "" {
		fmt.Fprintf(tw, "  topic\t%s\n", clean(a.Topic, 0))
	}
	fmt.Fprintf(tw, "  name\t%s\n", orDash(clean(a.Name, 0)))
	if a.P256DHFingerprint != "" {
		fmt.Fprintf(tw, "  encryption key\tp256dh %s\n", clean(a.P256DHFingerprint, 0))
	} else {
		fmt.Fprintf(tw, "  encryption key\tnone (wake-only pushes)\n")
	}
	if a.SigKeyFingerprint != "" {
		kind := a.SigKeyKind
		if kind != "" {
			kind += " "
		}
		fmt.Fprintf(tw, "  signing key\t%s%s\n", clean(kind, 0), clean(a.SigKeyFingerprint, 0))
	} else {
		fmt.Fprintf(tw, "  signing key\tnone\n")
	}
	if a.Legacy {
		fmt.Fprintf(tw, "  legacy\tyes (URL SP token form)\n")
	}
	fmt.Fprintf(tw, "  attached\t%s\n", stampOrDash(a.Attached, now))
	fmt.Fprintf(tw, "  token updated\t%s\n", stampOrDash(a.TokenUpdated, now))
	if !a.Invalid {
		fmt.Fprintf(tw, "  invalid\tno\n")
		return
	}
	line := "yes"
	if a.InvalidReason != "" {
		line += ": " + clean(a.InvalidReason, 0)
	}
	if a.InvalidAt != nil {
		line += ", since " + stamp(*a.InvalidAt, now)
	}
	fmt.Fprintf(tw, "  invalid\t%s\n", line)
}

func writeOutbox(tw io.Writer, o *outboxInfo, now time.Time) {
	switch {
	case o == nil || o.Depth == 0:
		fmt.Fprintf(tw, "outbox\tempty\n")
	default:
		if o.OldestStored != nil {
			fmt.Fprintf(tw, "outbox\t%d waiting, oldest stored %s\n", o.Depth, stamp(*o.OldestStored, now))
		} else {
			oldest := time.Duration(o.OldestAgeSeconds) * time.Second
			fmt.Fprintf(tw, "outbox\t%d waiting, oldest %s old\n", o.Depth, age(oldest))
		}
	}
}

// writeLastPush writes the newest push audit record. Without one it says "none" on a broker
// with store-and-forward (it reports an outbox, and keeps the audit) and nothing otherwise.
func writeLastPush(tw io.Writer, p *pushRecord, pushEnabled bool, now time.Time) {
	if p == nil {
		if pushEnabled {
			fmt.Fprintf(tw, "last push\tnone\n")
		}
		return
	}
	fmt.Fprintf(tw, "last push\t%s\n", stampOrDash(p.Time, now))
	fmt.Fprintf(tw, "  platform\t%s\n", orDash(clean(p.Platform, 0)))
	fmt.Fprintf(tw, "  kind\t%s\n", orDash(clean(p.Kind, 0)))
	fmt.Fprintf(tw, "  outcome\t%s\n", orDash(clean(p.Outcome, 0)))
	if p.Reason != "" {
		fmt.Fprintf(tw, "  reason\t%s\n", clean(p.Reason, 0))
	}
	fmt.Fprintf(tw, "  latency\t%s\n", p.Latency)
	fmt.Fprintf(tw, "  message id\t%s\n", orDash(clean(p.MessageID, 0)))
}

func stampOrDash(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return stamp(t, now)
}

// String formats a push latency for people: "850µs", "120ms", "1.25s"; zero is "-".
func (l latency) String() string {
	d := time.Duration(l)
	switch {
	case d <= 0:
		return "-"
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	default:
		return d.Round(10 * time.Millisecond).String()
	}
}
