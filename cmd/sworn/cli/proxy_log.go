package cli

import (
	"context"
	"fmt"
	"log/slog"
)

// spiffeLogger hands go-spiffe's Workload API client messages (the agent
// gone, a watch retried) to the proxy's structured log. go-spiffe drops
// them by default, so a proxy whose agent died said nothing until clients
// started failing on its expired SVID.
type spiffeLogger struct{ log *slog.Logger }

func (l spiffeLogger) Debugf(format string, args ...any) { l.emit(slog.LevelDebug, format, args) }
func (l spiffeLogger) Infof(format string, args ...any)  { l.emit(slog.LevelInfo, format, args) }
func (l spiffeLogger) Warnf(format string, args ...any)  { l.emit(slog.LevelWarn, format, args) }
func (l spiffeLogger) Errorf(format string, args ...any) { l.emit(slog.LevelError, format, args) }

func (l spiffeLogger) emit(level slog.Level, format string, args []any) {
	// go-spiffe's interface carries no context.
	l.log.Log(context.Background(), level, fmt.Sprintf(format, args...), "component", "workloadapi")
}
