//go:build integration

package integration_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/crypto/bcrypt"

	"github.com/caddy-upload-gateway/upload-gateway/integration/harness"
	"github.com/caddy-upload-gateway/upload-gateway/internal/s3limits"
)

// localUser is one account of the built-in identity provider.
type localUser struct {
	email, sub string
	groups     []string
}

// localIdPSite writes a users file (password "pw-"+email for everyone) and
// returns an upload_auth block of the built-in identity provider for it.
func localIdPSite(t *testing.T, users []localUser) string {
	t.Helper()
	dir := t.TempDir()
	var entries []string
	for _, u := range users {
		hash, err := bcrypt.GenerateFromPassword([]byte("pw-"+u.email), 10)
		if err != nil {
			t.Fatal(err)
		}
		groups := `[]`
		if len(u.groups) > 0 {
			groups = `["` + strings.Join(u.groups, `","`) + `"]`
		}
		sub := ""
		if u.sub != "" {
			sub = fmt.Sprintf(`,"sub":%q`, u.sub)
		}
		entries = append(entries, fmt.Sprintf(`{"email":%q,"password_hash":%q,"groups":%s%s}`, u.email, hash, groups, sub))
	}
	usersFile := filepath.Join(dir, "users.json")
	if err := os.WriteFile(usersFile, []byte(`{"users":[`+strings.Join(entries, ",")+`]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`upload_auth {
		local {
			users_file %s
			keys_dir %s
			issuer https://idp.example.com
		}
	}`, usersFile, filepath.Join(dir, "keys"))
}

// tokenOf signs a local user in at the gateway base and returns the token.
func tokenOf(t *testing.T, client *http.Client, base, email string) string {
	t.Helper()
	l := login(t, client, base, email, "pw-"+email)
	if l.status != http.StatusOK || l.body.Data.Token == "" {
		t.Fatalf("login %s: %d %+v", email, l.status, l.body)
	}
	return l.body.Data.Token
}

// A gateway behind the identity provider, with no allowed_roles set: only
// admins and uploaders may write. A viewer and a self-registered user
// without a group are refused (403), a request without a token gets 401;
// anonymous uploads need an explicit allow_anonymous.
func TestUploadNeedsUploaderRoleByDefault(t *testing.T) {
	prefix := testPrefix(t)
	users := []localUser{
		{email: "uploader@example.com", groups: []string{"uploader"}},
		{email: "admin@example.com", groups: []string{"admin"}},
		{email: "viewer@example.com", groups: []string{"viewer"}},
		{email: "nogroup@example.com"},
	}
	gw := startGateway(t, localIdPSite(t, users)+"\n\t"+gatewayOpts{prefix: prefix, auth: true}.block())

	for _, tt := range []struct {
		email      string
		wantStatus int
		wantCode   string
	}{
		{"uploader@example.com", http.StatusCreated, ""},
		{"admin@example.com", http.StatusCreated, ""},
		{"viewer@example.com", http.StatusForbidden, "FORBIDDEN"},
		{"nogroup@example.com", http.StatusForbidden, "FORBIDDEN"},
	} {
		t.Run(tt.email, func(t *testing.T) {
			resp := putWithToken(t, gw.Client, gw.URL+"/notes.txt", tokenOf(t, gw.Client, gw.URL, tt.email))
			if tt.wantCode != "" {
				expectError(t, resp, tt.wantStatus, tt.wantCode)
				return
			}
			if r := decodeResponse(t, resp); resp.StatusCode != tt.wantStatus || !r.Success {
				t.Errorf("got %d %+v, want %d", resp.StatusCode, r, tt.wantStatus)
			}
		})
	}
	t.Run("no token", func(t *testing.T) {
		expectError(t, putWithToken(t, gw.Client, gw.URL+"/x.txt", ""), http.StatusUnauthorized, "UNAUTHENTICATED")
	})

	t.Run("no token, no upload_auth, no allow_anonymous", func(t *testing.T) {
		open := startGateway(t, gatewayOpts{prefix: prefix, auth: true}.block())
		expectError(t, putWithToken(t, open.Client, open.URL+"/x.txt", ""), http.StatusUnauthorized, "UNAUTHENTICATED")
	})
	t.Run("no token with allow_anonymous", func(t *testing.T) {
		anon := startGateway(t, gatewayOpts{prefix: prefix, lines: []string{"allow_anonymous"}, auth: true}.block())
		resp := putWithToken(t, anon.Client, anon.URL+"/x.txt", "")
		if r := decodeResponse(t, resp); resp.StatusCode != http.StatusCreated || !r.Success {
			t.Errorf("got %d %+v, want 201", resp.StatusCode, r)
		}
	})
}

// Users whose ids hold "/" or ".." upload under a key template with
// {http.auth.user.id}: each id stays one key segment, so "victim/x" cannot
// put files in the folder of the user "victim", and "a/../b" neither climbs
// nor is refused.
func TestUserIDStaysOneKeySegment(t *testing.T) {
	prefix := testPrefix(t)
	users := []localUser{
		{email: "victim@example.com", sub: "victim", groups: []string{"uploader"}},
		{email: "nester@example.com", sub: "victim/x", groups: []string{"uploader"}},
		{email: "climber@example.com", sub: "a/../b", groups: []string{"uploader"}},
	}
	gw := startGateway(t, localIdPSite(t, users)+"\n\t"+gatewayOpts{prefix: prefix, auth: true,
		lines: []string{"key users/{http.auth.user.id}/{upload.filename}"}}.block())

	for _, tt := range []struct{ email, wantKey string }{
		{"victim@example.com", prefix + "users/victim/notes.txt"},
		{"nester@example.com", prefix + "users/victim%2Fx/notes.txt"},
		{"climber@example.com", prefix + "users/a%2F..%2Fb/notes.txt"},
	} {
		t.Run(tt.email, func(t *testing.T) {
			resp := putWithToken(t, gw.Client, gw.URL+"/notes.txt", tokenOf(t, gw.Client, gw.URL, tt.email))
			r := decodeResponse(t, resp)
			if resp.StatusCode != http.StatusCreated || len(r.Data.Files) != 1 {
				t.Fatalf("got %d %+v", resp.StatusCode, r)
			}
			if got := r.Data.Files[0].S3Key; got != tt.wantKey {
				t.Errorf("key = %q, want %q", got, tt.wantKey)
			}
		})
	}
	// The victim's folder holds the victim's file only.
	out, err := env.S3().ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: &env.Bucket, Prefix: ptr(prefix + "users/victim/")})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Contents) != 1 {
		var keys []string
		for _, o := range out.Contents {
			keys = append(keys, *o.Key)
		}
		t.Errorf("users/victim/ holds %q, want only notes.txt", keys)
	}
}

func ptr[T any](v T) *T { return &v }

// Client metadata that leaves room for the gateway's sha256 but not for
// its write id is refused with 400 before anything reaches S3; S3 (here
// SeaweedFS behind a proxy enforcing AWS's 2 KiB rule) would refuse it, and
// the client would get 502. Metadata that fits exactly is stored.
func TestMetadataNearTheLimitIsRefusedUpFront(t *testing.T) {
	prefix := testPrefix(t)
	gw, proxy := faultProxyGateway(t, prefix, "client_metadata")
	proxy.EnforceMetadataLimit(s3limits.MaxMetadataSize)

	put := func(t *testing.T, extra int) *http.Response {
		t.Helper()
		// original-name "m.txt", a: 1000 bytes, b: the rest.
		used := len("original-name") + len("m.txt") + len("a") + 1000 + len("b") + s3limits.UploaderMetadataSize
		req, _ := http.NewRequest(http.MethodPut, gw.URL+"/up", strings.NewReader("meta"))
		req.Header.Set("Content-Type", "text/plain")
		req.Header.Set("X-File-Name", "m.txt")
		req.Header.Set("X-Upload-Meta-A", strings.Repeat("a", 1000))
		req.Header.Set("X-Upload-Meta-B", strings.Repeat("b", s3limits.MaxMetadataSize-used+extra))
		resp, err := gw.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	t.Run("20 bytes over, within the write id's 40", func(t *testing.T) {
		expectError(t, put(t, 20), http.StatusBadRequest, "METADATA_TOO_LARGE")
	})
	t.Run("one byte over", func(t *testing.T) {
		expectError(t, put(t, 1), http.StatusBadRequest, "METADATA_TOO_LARGE")
	})
	t.Run("exactly at the limit", func(t *testing.T) {
		resp := put(t, 0)
		if r := decodeResponse(t, resp); resp.StatusCode != http.StatusCreated {
			t.Errorf("got %d %+v, want 201", resp.StatusCode, r)
		}
	})
	if n := proxy.Count(harness.OpPutObject, http.StatusBadRequest); n != 0 {
		t.Errorf("S3 refused %d PutObjects for their metadata", n)
	}
}
