package registry

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/dgraph-io/badger/v4"
)

// badgerLogger adapts badger's printf-style logger to slog. Badger logs
// routine INFO lines (tables opened, compactions, …) on stderr by default;
// here everything below WARN is dropped and the rest becomes one structured
// record each.
type badgerLogger struct {
	log *slog.Logger
}

var _ badger.Logger = badgerLogger{}

func newBadgerLogger(log *slog.Logger) badgerLogger {
	if log == nil {
		log = slog.Default()
	}
	return badgerLogger{log: log.With("component", "badger")}
}

// Errorf implements badger.Logger.
func (l badgerLogger) Errorf(format string, args ...any) {
	l.emit(slog.LevelError, format, args)
}

// Warningf implements badger.Logger.
func (l badgerLogger) Warningf(format string, args ...any) {
	l.emit(slog.LevelWarn, format, args)
}

// Infof implements badger.Logger; INFO is dropped.
func (badgerLogger) Infof(string, ...any) {}

// Debugf implements badger.Logger; DEBUG is dropped.
func (badgerLogger) Debugf(string, ...any) {}

func (l badgerLogger) emit(level slog.Level, format string, args []any) {
	ctx := context.Background()
	if !l.log.Enabled(ctx, level) {
		return
	}
	l.log.Log(ctx, level, strings.TrimSpace(fmt.Sprintf(format, args...)))
}
