package files

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-upload-gateway/upload-gateway/internal/fileapi"
)

// A request that finished a presigned upload counts it in the upload
// series (by the user's role and the result its status says) and writes
// the upload's audit line; any other request only its own series.
func TestAPIRecordCountsPresignedUploads(t *testing.T) {
	tests := []struct {
		name       string
		res        fileapi.Resolved
		status     int
		wantSeries map[string]float64
		wantAudit  map[string]any
	}{
		{
			name: "multipart completed",
			res: fileapi.Resolved{Route: "POST /files/multipart/complete", Action: "multipart_complete", Key: "k", UploadID: "u",
				Upload: &fileapi.Upload{Method: fileapi.MethodMultipart, Stored: true, Bytes: 100, Parts: 2, Duration: time.Second}},
			status:     200,
			wantSeries: map[string]float64{`uploads_total{result="ok",role="uploader"}`: 1, `upload_bytes_total{role="uploader"}`: 100},
			wantAudit:  map[string]any{"action": "upload", "method": "multipart", "result": "ok", "parts": int64(2), "size": int64(100), "files": int64(1)},
		},
		{
			name: "confirm refused the object",
			res: fileapi.Resolved{Route: "POST /files/{fileId}/confirm", Action: "confirm", Key: "k",
				Upload: &fileapi.Upload{Method: fileapi.MethodPresigned, Bytes: 7}},
			status:     415,
			wantSeries: map[string]float64{`uploads_total{result="rejected",role="uploader"}`: 1},
			wantAudit:  map[string]any{"action": "upload", "method": "presigned", "result": "rejected", "status": int64(415)},
		},
		{
			name:       "a confirm that counted nothing",
			res:        fileapi.Resolved{Route: "POST /files/{fileId}/confirm", Action: "confirm", Key: "k"},
			status:     200,
			wantSeries: map[string]float64{},
			wantAudit:  map[string]any{"action": "confirm", "result": "ok"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			a, err := provisionAPIIn(t, ctx, "secret 0123456789abcdef0123456789abcdef")
			if err != nil {
				t.Fatal(err)
			}
			core, logs := observer.New(zapcore.InfoLevel)
			a.rec.Audit = zap.New(core)
			r := httptest.NewRequest("POST", "/files/x/confirm", nil)
			repl := caddy.NewReplacer()
			repl.Set("http.auth.user.id", "alice")
			repl.Set("http.auth.user.role", "uploader")
			r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))

			a.record(r, &tt.res, tt.status, 10*time.Millisecond)

			families, err := ctx.GetMetricsRegistry().Gather()
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]float64{}
			for _, f := range families {
				for _, m := range f.GetMetric() {
					if m.GetCounter() == nil || m.GetCounter().GetValue() == 0 {
						continue
					}
					name := f.GetName()[len("upload_gateway_"):] + "{"
					for i, l := range m.GetLabel() {
						if i > 0 {
							name += ","
						}
						name += l.GetName() + `="` + l.GetValue() + `"`
					}
					got[name+"}"] = m.GetCounter().GetValue()
				}
			}
			for series, want := range tt.wantSeries {
				if got[series] != want {
					t.Errorf("%s = %v, want %v (all: %v)", series, got[series], want, got)
				}
			}
			if len(tt.wantSeries) == 0 {
				for series := range got {
					if len(series) > 6 && series[:6] == "upload" {
						t.Errorf("counted an upload: %s", series)
					}
				}
			}
			entries := logs.All()
			if len(entries) != 1 {
				t.Fatalf("audit lines %v, want one", entries)
			}
			fields := entries[0].ContextMap()
			for k, want := range tt.wantAudit {
				if fields[k] != want {
					t.Errorf("audit %s = %#v, want %#v (%v)", k, fields[k], want, fields)
				}
			}
		})
	}
}
