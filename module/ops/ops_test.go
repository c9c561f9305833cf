package ops

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	"github.com/caddy-upload-gateway/upload-gateway/internal/readiness"
	_ "github.com/caddy-upload-gateway/upload-gateway/module/files"
	_ "github.com/caddy-upload-gateway/upload-gateway/module/gateway"
)

const twoHandlers = `
:8080 {
	route /upload {
		upload_gateway {
			bucket uploads
			kms_key alias/upload-gateway
			prefix in/
			disable_tags
		}
	}
	handle /api/* {
		upload_api {
			bucket files-bucket
			encryption AES256
			base_path /api
			role_arn uploader arn:aws:iam::1:role/up
			sts_endpoint http://sts.local
		}
	}
	handle /readyz {
		upload_health ready {
			bucket uploads
			kms_key alias/upload-gateway
		}
	}
}
`

func TestFindHandlers(t *testing.T) {
	t.Parallel()
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(twoHandlers), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatal(err)
	}
	hs, err := FindHandlers(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 2 {
		t.Fatalf("found %d handlers, want 2: %+v", len(hs), hs)
	}
	byName := map[string]HandlerConfig{}
	for _, h := range hs {
		byName[h.Handler] = h
	}
	gwCfg, apiCfg := byName[handlerGateway], byName[handlerAPI]
	gw, err := gwCfg.Target()
	if err != nil {
		t.Fatal(err)
	}
	if gw.Name != "upload_gateway #1" || gw.Bucket != "uploads" || gw.Prefix != "in/" || gw.Tags || gw.FileAPI ||
		gw.Encryption.Mode != types.ServerSideEncryptionAwsKms || gw.Encryption.KMSKeyID != "alias/upload-gateway" {
		t.Errorf("gateway target = %+v", gw)
	}
	api, err := apiCfg.Target()
	if err != nil {
		t.Fatal(err)
	}
	if api.Name != "upload_api #1" || api.Bucket != "files-bucket" || api.Prefix != "files/" || !api.FileAPI ||
		api.Encryption.Mode != types.ServerSideEncryptionAes256 || api.RoleARNs["uploader"] != "arn:aws:iam::1:role/up" {
		t.Errorf("api target = %+v", api)
	}
	if byName[handlerAPI].STSEndpoint != "http://sts.local" {
		t.Errorf("sts endpoint = %q", byName[handlerAPI].STSEndpoint)
	}
}

func TestTargetRejectsInvalidStorage(t *testing.T) {
	t.Parallel()
	h := HandlerConfig{Handler: handlerGateway}
	_, err := h.Target()
	if err == nil || !strings.Contains(err.Error(), "bucket is required") {
		t.Fatalf("Target = %v, want bucket is required", err)
	}
}

func TestRunCheckErrors(t *testing.T) {
	t.Parallel()
	if code, err := runCheck(nil, "", "", 0); code != 1 || err == nil {
		t.Errorf("no --config: %d %v", code, err)
	}
}

type fakeS3 struct{ err error }

func (f fakeS3) HeadBucket(context.Context, *s3.HeadBucketInput, ...func(*s3.Options)) (*s3.HeadBucketOutput, error) {
	return &s3.HeadBucketOutput{}, f.err
}

func (f fakeS3) CreateMultipartUpload(context.Context, *s3.CreateMultipartUploadInput, ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	return &s3.CreateMultipartUploadOutput{UploadId: aws.String("u")}, nil
}

func (f fakeS3) AbortMultipartUpload(context.Context, *s3.AbortMultipartUploadInput, ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error) {
	return &s3.AbortMultipartUploadOutput{}, nil
}

func TestHealthServeHTTP(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		checker    *readiness.Checker
		method     string
		wantStatus int
		wantBody   string
	}{
		{"live", nil, http.MethodGet, 200, `"ok"`},
		{"live head", nil, http.MethodHead, 200, ""},
		{"ready", &readiness.Checker{S3: fakeS3{}, Bucket: "b"}, http.MethodGet, 200, `"ready"`},
		{"not ready", &readiness.Checker{S3: fakeS3{err: errors.New("dial tcp: connection refused")}, Bucket: "b"}, http.MethodGet, 503, "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := &Health{checker: tt.checker, logger: zap.NewNop()}
			w := httptest.NewRecorder()
			err := h.ServeHTTP(w, httptest.NewRequest(tt.method, "/readyz", nil), nil)
			if err != nil {
				t.Fatal(err)
			}
			if w.Code != tt.wantStatus || !strings.Contains(w.Body.String(), tt.wantBody) {
				t.Errorf("got %d %q, want %d with %q", w.Code, w.Body.String(), tt.wantStatus, tt.wantBody)
			}
			if w.Header().Get("Cache-Control") != "no-store" {
				t.Error("probe answer is cacheable")
			}
		})
	}
	err := (&Health{logger: zap.NewNop()}).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/healthz", nil), nil)
	var he caddyhttp.HandlerError
	if !errors.As(err, &he) || he.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %v, want 405", err)
	}
}

func TestHealthCaddyfile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		input   string
		want    Health
		wantErr string
	}{
		{"live", `upload_health`, Health{}, ""},
		{"ready", `upload_health ready {
			bucket b
			kms_key alias/k
			prefix p/
			cache_for 10s
			timeout 2s
		}`, Health{Probe: "ready", Prefix: "p/", CacheFor: 1e10, Timeout: 2e9}, ""},
		{"bad duration", "upload_health ready {\ncache_for soon\n}", Health{}, "invalid duration"},
		{"unknown", "upload_health {\nfoo\n}", Health{}, "unrecognized subdirective foo"},
		{"two args", "upload_health ready live", Health{}, "wrong argument count"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var h Health
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Probe != tt.want.Probe || h.Prefix != tt.want.Prefix || h.CacheFor != tt.want.CacheFor || h.Timeout != tt.want.Timeout {
				t.Errorf("got %+v, want %+v", h, tt.want)
			}
		})
	}
}

func TestHealthValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		h       Health
		wantErr string
	}{
		{"live", Health{Probe: ProbeLive}, ""},
		{"live with bucket", func() Health { h := Health{Probe: ProbeLive}; h.Bucket = "b"; return h }(), "need probe ready"},
		{"ready without bucket", Health{Probe: ProbeReady}, "bucket is required"},
		{"unknown", Health{Probe: "dead"}, "unknown probe"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.h.Validate()
			if (err == nil) != (tt.wantErr == "") || err != nil && !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Validate = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestRunProbe(t *testing.T) {
	t.Parallel()
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(status) }))
	defer srv.Close()
	if err := runProbe(t.Context(), srv.URL, time.Second); err != nil {
		t.Errorf("200: %v", err)
	}
	status = http.StatusServiceUnavailable
	if err := runProbe(t.Context(), srv.URL, time.Second); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("503: %v", err)
	}
	if err := runProbe(t.Context(), "http://127.0.0.1:1/", time.Second); err == nil {
		t.Error("closed port: no error")
	}
}
