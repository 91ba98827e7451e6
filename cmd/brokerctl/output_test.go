package main

import (
	"strings"
	"testing"
	"time"

	"github.com/rewind-broker/rewind/broker"
)

func TestAge(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{-5 * time.Second, "0s"},
		{0, "0s"},
		{900 * time.Millisecond, "0s"},
		{42*time.Second + 700*time.Millisecond, "42s"},
		{3*time.Minute + 12*time.Second, "3m12s"},
		{time.Hour - time.Second, "59m59s"},
		{2*time.Hour + 5*time.Minute + 59*time.Second, "2h5m"},
		{3*24*time.Hour + 4*time.Hour + 30*time.Minute, "3d4h"},
		{3 * time.Minute, "3m"},
		{2*time.Hour + 30*time.Second, "2h"},
		{48*time.Hour + 59*time.Minute, "2d"},
	} {
		if got := age(tc.d); got != tc.want {
			t.Errorf("age(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

func TestClean(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"My phone", 0, "My phone"},
		{"evil\x1b[2Jname\ttab\nnl", 0, "evil\uFFFD[2Jname\uFFFDtab\uFFFDnl"},
		{"abcdef", 6, "abcdef"},
		{"abc defg", 4, "abc…"},
		{"ääääää", 3, "äää…"},
	} {
		if got := clean(tc.in, tc.max); got != tc.want {
			t.Errorf("clean(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
}

func TestWriteSessions(t *testing.T) {
	now := time.Date(2025, 5, 1, 12, 0, 0, 0, time.UTC)
	var b strings.Builder
	err := writeSessions(&b, []sessionRow{
		{SessionInfo: broker.SessionInfo{Terminal: 262000101, User: 2620001, State: "active", Remote: "10.0.0.7", Client: "DroidStar 1.2",
			Since: now.Add(-3*time.Minute - 12*time.Second), LastKeepAlive: now.Add(-2 * time.Second),
			QueueDepth: 3, Talkgroups: []uint32{91, 2620}}, Platform: "apns"},
		{SessionInfo: broker.SessionInfo{Terminal: 1001, User: 1001, State: "active", Remote: "192.168.100.200", Client: "\x1b]0;pwned\x07",
			Since: now.Add(-26 * time.Hour), LastKeepAlive: time.Unix(0, 0)}},
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	want := `TERMINAL   USER     STATE   PLATFORM  CLIENT         REMOTE           SINCE  LAST KEEPALIVE  QUEUE  TALKGROUPS
262000101  2620001  active  apns      DroidStar 1.2  10.0.0.7         3m12s  2s ago          3      91,2620
1001       1001     active  -         ` + "\uFFFD]0;pwned\uFFFD" + `     192.168.100.200  1d2h   -               0      -
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestWriteTerminals(t *testing.T) {
	now := time.Date(2025, 5, 1, 12, 0, 0, 0, time.UTC)
	seen := now.Add(-90 * time.Second)
	var b strings.Builder
	err := writeTerminals(&b, []broker.TerminalInfo{
		{ID: 262000101, User: 2620001, Name: "My phone", Created: now.Add(-48 * time.Hour), LastSeen: &seen},
		{ID: 1001, User: 1001, Created: now.Add(-5 * time.Second)},
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	want := `TERMINAL   USER     NAME      CREATED  LAST SEEN
262000101  2620001  My phone  2d ago   1m30s ago
1001       1001     -         5s ago   never
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}
