package files

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	"github.com/caddy-upload-gateway/upload-gateway/internal/policy"
	"github.com/caddy-upload-gateway/upload-gateway/internal/rolecreds"
	"github.com/caddy-upload-gateway/upload-gateway/internal/roles"
	"github.com/caddy-upload-gateway/upload-gateway/module/shared"
)

// adapt turns a Caddyfile into indented JSON, as module/adapt_test.go does.
func adapt(t *testing.T, caddyfile []byte) ([]byte, error) {
	t.Helper()
	out, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt(caddyfile, map[string]any{"filename": "Caddyfile"})
	if err != nil {
		return nil, err
	}
	for _, w := range warnings {
		t.Logf("warning: %s", w.String())
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, out, "", "\t"); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// provisionAPI adapts a Caddyfile site holding one upload_api block with
// the given subdirectives, then decodes, provisions and validates the
// handler, as Caddy does when it loads the config.
func provisionAPI(t *testing.T, lines ...string) (*API, error) {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	return provisionAPIIn(t, ctx, lines...)
}

// provisionAPIIn is provisionAPI in the given Caddy context.
func provisionAPIIn(t *testing.T, ctx caddy.Context, lines ...string) (*API, error) {
	t.Helper()
	caddyfile := fmt.Sprintf(":8080 {\n\tupload_api {\n\t\tbucket files\n\t\tregion eu-west-1\n\t\taccess_key_id AKIDEXAMPLE\n\t\tsecret_access_key example-secret\n\t\tkms_key alias/files\n\t\t%s\n\t}\n}\n",
		strings.Join(lines, "\n\t\t"))
	cfg, err := adapt(t, []byte(caddyfile))
	if err != nil {
		t.Fatalf("adapting:\n%s\n%v", caddyfile, err)
	}
	raws, err := shared.HandlerJSON(cfg, func(name string) bool { return name == "upload_api" })
	if err != nil {
		t.Fatal(err)
	}
	if len(raws) == 0 {
		t.Fatalf("no upload_api handler in\n%s", cfg)
	}
	raw := raws[0]
	a := new(API)
	if err := json.Unmarshal(raw, a); err != nil {
		t.Fatalf("decoding %s: %v", raw, err)
	}
	if err := a.Provision(ctx); err != nil {
		return nil, err
	}
	return a, a.Validate()
}

// serveAPI sends one request to the API as the given user; placeholders
// are extra user placeholders ("email" for {http.auth.user.email}).
func serveAPI(t *testing.T, a *API, method, target, userID string, role roles.Role, body string, placeholders ...string) *httptest.ResponseRecorder {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, target, rd)
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	repl := caddy.NewReplacer()
	repl.Set("http.auth.user.id", userID)
	repl.Set("http.auth.user.role", string(role))
	for i := 0; i+1 < len(placeholders); i += 2 {
		repl.Set("http.auth.user."+placeholders[i], placeholders[i+1])
	}
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
	w := httptest.NewRecorder()
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
		t.Errorf("%s %s was passed on", method, target)
		return nil
	})
	if err := a.ServeHTTP(w, r, next); err != nil {
		t.Fatalf("ServeHTTP: %v", err)
	}
	return w
}

// `policy <role> <action> none` in a Caddyfile takes the action away: the
// API refuses it and the role's STS session policy no longer holds it.
func TestAPIPolicyNoneRemovesTheAction(t *testing.T) {
	a, err := provisionAPI(t,
		"secret 0123456789abcdef0123456789abcdef",
		"policy viewer download none",
		"policy uploader delete none",
	)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		role   roles.Role
		action policy.Action
		want   policy.Scope
	}{
		{roles.Viewer, policy.Download, policy.None},
		{roles.Viewer, policy.List, policy.All},
		{roles.Uploader, policy.Delete, policy.None},
		{roles.Uploader, policy.Upload, policy.Own},
		{roles.Uploader, policy.Download, policy.Own},
		{roles.Admin, policy.Download, policy.All},
	}
	for _, tt := range tests {
		if got := a.policy.ScopeOf(tt.role, tt.action); got != tt.want {
			t.Errorf("%s %s: scope %s, want %s", tt.role, tt.action, got, tt.want)
		}
	}

	sessionPolicy := func(role roles.Role) string {
		t.Helper()
		grants := a.policy.Grants(policy.Subject{ID: "user-1", Role: role})
		doc, err := rolecreds.SessionPolicy(a.Bucket, grants)
		if err != nil {
			t.Fatalf("session policy of %s: %v", role, err)
		}
		return doc
	}
	if doc := sessionPolicy(roles.Viewer); strings.Contains(doc, "s3:GetObject") || !strings.Contains(doc, "s3:ListBucket") {
		t.Errorf("viewer session policy: %s", doc)
	}
	if doc := sessionPolicy(roles.Uploader); strings.Contains(doc, "s3:DeleteObject") || !strings.Contains(doc, "s3:PutObject") {
		t.Errorf("uploader session policy: %s", doc)
	}

	// The API refuses before it asks S3 anything.
	id := base64.RawURLEncoding.EncodeToString([]byte("files/users/someone/0000/report.pdf"))
	if w := serveAPI(t, a, "GET", "/files/"+id+"/download-url", "viewer-1", roles.Viewer, ""); w.Code != http.StatusForbidden {
		t.Errorf("viewer download-url: %d %s", w.Code, w.Body)
	}
	own := base64.RawURLEncoding.EncodeToString([]byte(a.policy.OwnerPrefix("uploader-1") + "0000/report.pdf"))
	if w := serveAPI(t, a, "DELETE", "/files/"+own, "uploader-1", roles.Uploader, ""); w.Code != http.StatusForbidden {
		t.Errorf("uploader delete of an own file: %d %s", w.Code, w.Body)
	}
}

// The secret that signs upload tokens must be set and long enough; a random
// one only with an explicit opt-in.
func TestAPISecretIsRequired(t *testing.T) {
	t.Setenv("UGW_TEST_SECRET", "0123456789abcdef0123456789abcdef")
	t.Setenv("UGW_TEST_EMPTY", "")
	tests := []struct {
		name    string
		lines   []string
		wantErr string // "" for none
	}{
		{"no secret", nil, "secret is required"},
		{"env variable unset", []string{"secret {env.UGW_TEST_EMPTY}"}, "expands to nothing"},
		{"short literal", []string{"secret short-secret"}, "at least 32"},
		{"short after expansion", []string{"secret {env.UGW_TEST_EMPTY}short"}, "at least 32"},
		{"from the environment", []string{"secret {env.UGW_TEST_SECRET}"}, ""},
		{"unset old secret is no old secret", []string{"secret {env.UGW_TEST_SECRET}", "old_secret {env.UGW_TEST_EMPTY}"}, ""},
		{"short old secret", []string{"secret {env.UGW_TEST_SECRET}", "old_secret too-short"}, "old_secret 1"},
		{"random by opt-in", []string{"insecure_random_secret"}, ""},
		{"opt-in and a secret", []string{"secret {env.UGW_TEST_SECRET}", "insecure_random_secret"}, "exclude each other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := provisionAPI(t, tt.lines...)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("provisioning: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("provisioning: %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// Audit lines name the key the API resolved: the new file's key for an
// upload URL, the file asked for on a denial, and nothing for a request the
// API could not resolve. An email is only logged as such once verified.
func TestAPIAuditLinesNameTheResolvedKey(t *testing.T) {
	a, err := provisionAPI(t, "secret 0123456789abcdef0123456789abcdef", "create_only off")
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	a.rec.Audit = zap.New(core)
	other := base64.RawURLEncoding.EncodeToString([]byte(a.policy.OwnerPrefix("bob") + "0000/payroll.pdf"))

	w := serveAPI(t, a, "POST", "/files/upload-url", "alice", roles.Uploader,
		`{"fileName":"report.pdf","fileSize":3,"contentType":"application/pdf"}`,
		"email", "alice@example.com", "email_verified", "true")
	if w.Code != http.StatusOK {
		t.Fatalf("upload-url: %d %s", w.Code, w.Body)
	}
	var out struct {
		Data struct {
			S3Key string `json:"s3Key"`
		} `json:"data"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || out.Data.S3Key == "" {
		t.Fatalf("upload-url answer %s: %v", w.Body, err)
	}
	serveAPI(t, a, "GET", "/files/"+other+"/download-url", "alice", roles.Uploader, "",
		"email", "bob@example.com", "email_verified", "false")
	serveAPI(t, a, "DELETE", "/files/not-a-file-id!", "alice", roles.Uploader, "")

	entries := logs.All()
	if len(entries) != 3 {
		t.Fatalf("%d audit lines, want 3: %v", len(entries), entries)
	}
	tests := []struct {
		name   string
		want   map[string]string
		absent []string
	}{
		{"upload-url", map[string]string{"action": "upload_url", "result": "ok", "key": out.Data.S3Key, "email": "alice@example.com"}, []string{"unverified_email"}},
		{"denied download", map[string]string{"action": "download_url", "result": "denied", "key": a.policy.OwnerPrefix("bob") + "0000/payroll.pdf", "unverified_email": "bob@example.com"}, []string{"email"}},
		{"bad fileId", map[string]string{"result": "rejected"}, []string{"key", "email", "unverified_email"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := entries[i].ContextMap()
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %v, want %q (line %v)", k, got[k], v, got)
				}
			}
			for _, k := range tt.absent {
				if _, ok := got[k]; ok {
					t.Errorf("line has %s: %v", k, got)
				}
			}
		})
	}
}

// Metrics name a request by the pattern of the route that served it,
// whatever the base_path and the fileId or uploadId; a request no route
// serves (404, 405) is "other", so clients cannot create label values.
func TestAPIMetricsLabelIsTheRoutePattern(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	a, err := provisionAPIIn(t, ctx, "secret 0123456789abcdef0123456789abcdef", "base_path /api/")
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range []struct{ method, target, body string }{
		{"POST", "/api/files/upload-url", `{"fileName":"a.pdf","fileSize":3,"contentType":"application/pdf"}`},
		{"GET", "/api/files/multipart/abc123/parts", ""},
		{"GET", "/api/files/ZmlsZXMv/download-url", ""},
		{"DELETE", "/api/files", ""},
		{"GET", "/api/files/x/random-suffix", ""},
		{"POST", "/api/files/multipart/random", "{}"},
	} {
		serveAPI(t, a, req.method, req.target, "alice", roles.Uploader, req.body)
	}
	got := map[string]float64{}
	families, err := ctx.GetMetricsRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "upload_gateway_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "endpoint" {
					got[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	want := map[string]float64{
		"POST /files/upload-url":                1,
		"GET /files/multipart/{uploadId}/parts": 1,
		"GET /files/{fileId}/download-url":      1,
		"other":                                 3,
	}
	if !maps.Equal(got, want) {
		t.Errorf("requests by endpoint %v, want %v", got, want)
	}
}

// create_only on signs If-None-Match: * into upload URLs, as a header the
// client must send; off does not; anything else is a configuration error.
func TestAPICreateOnlyModes(t *testing.T) {
	for _, tt := range []struct {
		mode string
		want string
	}{{"on", "*"}, {"off", ""}} {
		t.Run(tt.mode, func(t *testing.T) {
			a, err := provisionAPI(t, "secret 0123456789abcdef0123456789abcdef", "create_only "+tt.mode)
			if err != nil {
				t.Fatal(err)
			}
			w := serveAPI(t, a, "POST", "/files/upload-url", "alice", roles.Uploader,
				`{"fileName":"report.pdf","fileSize":3,"contentType":"application/pdf"}`)
			var out struct {
				Data struct {
					UploadURL       string            `json:"uploadUrl"`
					RequiredHeaders map[string]string `json:"requiredHeaders"`
				} `json:"data"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || w.Code != http.StatusOK {
				t.Fatalf("upload-url: %d %s", w.Code, w.Body)
			}
			if got := out.Data.RequiredHeaders["If-None-Match"]; got != tt.want {
				t.Errorf("If-None-Match %q, want %q (headers %v)", got, tt.want, out.Data.RequiredHeaders)
			}
			if signed := strings.Contains(out.Data.UploadURL, "if-none-match"); signed != (tt.want != "") {
				t.Errorf("URL %s: if-none-match signed %v", out.Data.UploadURL, signed)
			}
		})
	}
	if _, err := provisionAPI(t, "secret 0123456789abcdef0123456789abcdef", "create_only maybe"); err == nil || !strings.Contains(err.Error(), "create_only") {
		t.Errorf("create_only maybe: %v", err)
	}
}

// Uppy's Companion routes are served under base_path beside /files, and
// sign_all_parts is bounded.
func TestAPIServesUppyRoutes(t *testing.T) {
	a, err := provisionAPI(t, "secret 0123456789abcdef0123456789abcdef", "base_path /api", "sign_all_parts 200", "create_only off")
	if err != nil {
		t.Fatal(err)
	}
	if a.SignAllParts != 200 {
		t.Errorf("sign_all_parts parsed as %d", a.SignAllParts)
	}
	w := serveAPI(t, a, "GET", "/api/s3/params?filename=a.pdf&type=application%2Fpdf", "alice", roles.Uploader, "")
	var params struct {
		Method string            `json:"method"`
		URL    string            `json:"url"`
		Fields map[string]string `json:"fields"`
		Key    string            `json:"key"`
		FileID string            `json:"fileId"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &params); err != nil || w.Code != http.StatusOK {
		t.Fatalf("GET /api/s3/params: %d %s", w.Code, w.Body)
	}
	if params.Method != "POST" || params.Fields["key"] != params.Key || !strings.HasPrefix(params.Key, "files/users/alice/") ||
		params.Fields["x-amz-server-side-encryption"] != "aws:kms" || params.FileID == "" {
		t.Errorf("params %+v", params)
	}
	if _, err := provisionAPI(t, "secret 0123456789abcdef0123456789abcdef", "sign_all_parts 1001"); err == nil || !strings.Contains(err.Error(), "sign all parts") && !strings.Contains(err.Error(), "sign_all_parts") {
		t.Errorf("sign_all_parts 1001: %v", err)
	}
}
