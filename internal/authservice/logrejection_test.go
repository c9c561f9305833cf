package authservice

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// A token sent in the query (token_query) must not reach the log with a
// rejection.
func TestLogRejectionLeavesTheQueryOut(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	r := httptest.NewRequest("GET", "/files/report.pdf?access_token=SECRET-TOKEN&x=1", nil)
	LogRejection(zap.New(core), r, errors.New("token is malformed"))
	entries := logs.All()
	if len(entries) != 1 {
		t.Fatalf("%d log entries, want 1", len(entries))
	}
	fields := entries[0].ContextMap()
	for k, v := range fields {
		if s, ok := v.(string); ok && strings.Contains(s, "SECRET-TOKEN") {
			t.Errorf("field %s logs the token: %q", k, s)
		}
	}
	if fields["path"] != "/files/report.pdf" {
		t.Errorf("path field %v", fields["path"])
	}
}
