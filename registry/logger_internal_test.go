package registry

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestBadgerLoggerLevels(t *testing.T) {
	var buf bytes.Buffer
	l := newBadgerLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	l.Debugf("debug %d\n", 1)
	l.Infof("info %d\n", 2)
	l.Warningf("warning %d\n", 3)
	l.Errorf("error %d\n", 4)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2 (WARN and ERROR):\n%s", len(lines), buf.String())
	}
	for i, want := range []string{`level=WARN msg="warning 3" component=badger`, `level=ERROR msg="error 4" component=badger`} {
		if !strings.Contains(lines[i], want) {
			t.Errorf("line %d = %q, want it to contain %q", i, lines[i], want)
		}
	}
}
