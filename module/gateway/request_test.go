package gateway

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-upload-gateway/upload-gateway/internal/formstream"
	"github.com/caddy-upload-gateway/upload-gateway/internal/s3limits"
)

func TestAuthorize(t *testing.T) {
	tests := []struct {
		name      string
		allowed   []string
		anonymous bool
		id, role  string
		want      error
	}{
		{"uploader by default", nil, false, "u1", "uploader", nil},
		{"admin by default", nil, false, "u1", "admin", nil},
		{"viewer not by default", nil, false, "u1", "viewer", errForbidden},
		{"group-less user not by default", nil, false, "u1", "", errForbidden},
		{"anonymous refused by default", nil, false, "", "", errUnauthenticated},
		{"anonymous with allow_anonymous", nil, true, "", "", nil},
		{"identity still checked with allow_anonymous", nil, true, "u1", "viewer", errForbidden},
		{"viewer when allowed", []string{"viewer"}, false, "u1", "viewer", nil},
		{"uploader when only admins", []string{"admin"}, false, "u1", "uploader", errForbidden},
		{"anonymous with allowed_roles", []string{"admin"}, false, "", "", errUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &Gateway{AllowedRoles: tt.allowed, AllowAnonymous: tt.anonymous}
			repl := caddy.NewReplacer()
			if tt.id != "" {
				repl.Set("http.auth.user.id", tt.id)
				repl.Set("http.auth.user.role", tt.role)
			}
			err := g.authorize(repl)
			if (tt.want == nil) != (err == nil) || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Errorf("authorize() = %v, want %v", err, tt.want)
			}
		})
	}
}

// The uploader adds sha256 and gateway-write-id after the check: metadata
// that leaves less room than they take must be refused up front (400), not
// by S3 (502).
func TestMetadataReservesUploaderFields(t *testing.T) {
	g := &Gateway{ClientMetadata: true}
	base := len(s3limits.MetaOriginalName) + len("a.txt")
	for _, tt := range []struct {
		name    string
		free    int // bytes left under the limit once the uploader's fields are added
		wantErr bool
	}{
		{"fits exactly", 0, false},
		{"one byte over", -1, true},
		{"over by the write id only", -(len(s3limits.MetaWriteID) + s3limits.WriteIDLen), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("PUT", "/up", nil)
			// Two values: one is cut at 1024 bytes.
			r.Header.Set("X-Upload-Meta-Note1", strings.Repeat("x", 1000))
			n := s3limits.MaxMetadataSize - s3limits.UploaderMetadataSize - base - len("note1") - 1000 - len("note2") - tt.free
			r.Header.Set("X-Upload-Meta-Note2", strings.Repeat("x", n))
			q := &request{g: g, r: r, repl: caddy.NewReplacer()}
			meta, err := q.metadata("", "a.txt")
			if tt.wantErr != (err != nil) {
				t.Fatalf("metadata() error = %v, want error %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, errMetadataTooLarge) {
				t.Errorf("error %v is not errMetadataTooLarge", err)
			}
			if err == nil {
				meta[s3limits.MetaSHA256] = strings.Repeat("0", s3limits.SHA256HexLen)
				meta[s3limits.MetaWriteID] = strings.Repeat("0", s3limits.WriteIDLen)
				if got := s3limits.MetadataSize(meta); got > s3limits.MaxMetadataSize {
					t.Errorf("metadata as stored is %d bytes, over %d", got, s3limits.MaxMetadataSize)
				}
			}
		})
	}
}

// A client cannot set the gateway's own metadata, the write id included.
func TestMetadataDropsReservedNames(t *testing.T) {
	r := httptest.NewRequest("PUT", "/up", nil)
	r.Header.Set("X-Upload-Meta-Gateway-Write-Id", "forged")
	r.Header.Set("X-Upload-Meta-Uploaded-By", "forged")
	r.Header.Set("X-Upload-Meta-Ok", "yes")
	q := &request{g: &Gateway{ClientMetadata: true}, r: r, repl: caddy.NewReplacer()}
	meta, err := q.metadata("", "a.txt")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := meta[s3limits.MetaWriteID]; ok || meta[s3limits.MetaUploadedBy] != "" || meta["ok"] != "yes" {
		t.Errorf("metadata = %v", meta)
	}
}

// A user id or name inserted in a key template stays one key segment: it
// can neither climb out of its folder nor nest files in another user's.
func TestObjectKeyEscapesIdentity(t *testing.T) {
	tests := []struct {
		id, want string
	}{
		{"alice", "uploads/users/alice/f"},
		{"victim/x", "uploads/users/victim%2Fx/f"},
		{"a/../b", "uploads/users/a%2F..%2Fb/f"},
		{"..", "uploads/users/%2E%2E/f"},
		{`evil\victim`, "uploads/users/evil%5Cvictim/f"},
		{"50%", "uploads/users/50%25/f"},
		{"zoë", "uploads/users/zoë/f"},
	}
	for _, tt := range tests {
		g := &Gateway{Prefix: "uploads/", Key: "users/{http.auth.user.id}/f"}
		repl := caddy.NewReplacer()
		repl.Set("http.auth.user.id", tt.id)
		q := &request{g: g, r: httptest.NewRequest("PUT", "/", nil), repl: repl}
		got, err := q.objectKey("", "x")
		if err != nil || got != tt.want {
			t.Errorf("id %q: key = %q, %v; want %q", tt.id, got, err, tt.want)
		}
	}
	// Other placeholders are inserted as they are.
	g := &Gateway{Prefix: "uploads/", Key: "{http.vars.dir}/{http.auth.user.username}"}
	repl := caddy.NewReplacer()
	repl.Set("http.vars.dir", "a/b")
	repl.Set("http.auth.user.username", "c/d")
	q := &request{g: g, r: httptest.NewRequest("PUT", "/", nil), repl: repl}
	if got, err := q.objectKey("", "x"); err != nil || got != "uploads/a/b/c%2Fd" {
		t.Errorf("key = %q, %v", got, err)
	}
}

// The documented verification (README) accepts the gateway's signature.
func TestPassSignatureVerifies(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	fields := []formstream.Field{{Name: "avatar.name", Value: "a\nb.png"}, {Name: "avatar.key", Value: "uploads/k"}}
	sig := passSignature(key, "avatar", fields)

	verify := func(secret []byte, field string, values []string, sig string) bool {
		mac := hmac.New(sha256.New, secret)
		for _, v := range append([]string{field}, values...) {
			fmt.Fprintf(mac, "%d:%s\n", len(v), v)
		}
		return hmac.Equal([]byte(hex.EncodeToString(mac.Sum(nil))), []byte(sig))
	}
	if !verify(key, "avatar", []string{"a\nb.png", "uploads/k"}, sig) {
		t.Errorf("signature %s does not verify", sig)
	}
	for _, forged := range [][]string{{"a\nb.png", "uploads/other"}, {"a", "b.png\n9:uploads/k"}} {
		if verify(key, "avatar", forged, sig) {
			t.Errorf("signature verifies for %q", forged)
		}
	}
	if verify(key, "photo", []string{"a\nb.png", "uploads/k"}, sig) {
		t.Error("signature verifies for another field")
	}
}
