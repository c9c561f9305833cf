package module

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-upload-gateway/upload-gateway/internal/policy"
	"github.com/caddy-upload-gateway/upload-gateway/internal/roles"
	"github.com/caddy-upload-gateway/upload-gateway/internal/stscreds"
)

// provisionAPI adapts a Caddyfile site holding one upload_api block with
// the given subdirectives, then decodes, provisions and validates the
// handler, as Caddy does when it loads the config.
func provisionAPI(t *testing.T, lines ...string) (*API, error) {
	t.Helper()
	caddyfile := fmt.Sprintf(":8080 {\n\tupload_api {\n\t\tbucket files\n\t\tregion eu-west-1\n\t\taccess_key_id AKIDEXAMPLE\n\t\tsecret_access_key example-secret\n\t\tkms_key alias/files\n\t\t%s\n\t}\n}\n",
		strings.Join(lines, "\n\t\t"))
	cfg, err := adapt(t, []byte(caddyfile))
	if err != nil {
		t.Fatalf("adapting:\n%s\n%v", caddyfile, err)
	}
	var raw json.RawMessage
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if x["handler"] == "upload_api" {
				raw, _ = json.Marshal(x)
				return
			}
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	var doc any
	if err := json.Unmarshal(cfg, &doc); err != nil {
		t.Fatal(err)
	}
	walk(doc)
	if raw == nil {
		t.Fatalf("no upload_api handler in\n%s", cfg)
	}
	a := new(API)
	if err := json.Unmarshal(raw, a); err != nil {
		t.Fatalf("decoding %s: %v", raw, err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := a.Provision(ctx); err != nil {
		return nil, err
	}
	return a, a.Validate()
}

// serveAPI sends one request to the API as the given user.
func serveAPI(t *testing.T, a *API, method, target, userID string, role roles.Role) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, target, nil)
	repl := caddy.NewReplacer()
	repl.Set("http.auth.user.id", userID)
	repl.Set("http.auth.user.role", string(role))
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
		doc, err := stscreds.SessionPolicy(a.Bucket, grants)
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
	if w := serveAPI(t, a, "GET", "/files/"+id+"/download-url", "viewer-1", roles.Viewer); w.Code != http.StatusForbidden {
		t.Errorf("viewer download-url: %d %s", w.Code, w.Body)
	}
	own := base64.RawURLEncoding.EncodeToString([]byte(a.policy.OwnerPrefix("uploader-1") + "0000/report.pdf"))
	if w := serveAPI(t, a, "DELETE", "/files/"+own, "uploader-1", roles.Uploader); w.Code != http.StatusForbidden {
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
