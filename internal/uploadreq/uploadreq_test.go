package uploadreq

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/caddy-upload-gateway/upload-gateway/internal/bodyrate"
	"github.com/caddy-upload-gateway/upload-gateway/internal/contenttype"
	"github.com/caddy-upload-gateway/upload-gateway/internal/formstream"
	"github.com/caddy-upload-gateway/upload-gateway/internal/objectkey"
	"github.com/caddy-upload-gateway/upload-gateway/internal/s3limits"
	"github.com/caddy-upload-gateway/upload-gateway/internal/s3stream"
)

// placeholders is a map of placeholder values; templates are used as they
// are.
type placeholders map[string]string

func (p placeholders) Set(name string, value any) {
	if p != nil {
		p[name] = fmt.Sprint(value)
	}
}

func (p placeholders) GetString(name string) (string, bool) {
	v, ok := p[name]
	return v, ok
}

func (placeholders) ReplaceAll(input, _ string) string { return input }

func (placeholders) ReplaceKey(template string) (string, error) { return template, nil }

func TestClassify(t *testing.T) {
	c := &Config{MaxFileSize: 10, AllowedTypes: []string{"image/*"}}
	wrap := func(err error) error { return fmt.Errorf("storing file %q: %w", "a", err) }
	tests := []struct {
		name       string
		err        error
		bodyErr    error
		wantStatus int
		wantCode   string
	}{
		{"request too large", &http.MaxBytesError{Limit: 5}, nil, 413, "REQUEST_TOO_LARGE"},
		{"request too large seen by the body", wrap(s3stream.ErrRead), &http.MaxBytesError{Limit: 5}, 413, "REQUEST_TOO_LARGE"},
		{"client dropped the connection", wrap(fmt.Errorf("%w: %w", s3stream.ErrRead, io.ErrUnexpectedEOF)), io.ErrUnexpectedEOF, 499, "CLIENT_CLOSED_REQUEST"},
		{"request cancelled", wrap(context.Canceled), nil, 499, "CLIENT_CLOSED_REQUEST"},
		{"server read timeout", wrap(fmt.Errorf("%w: %w", s3stream.ErrRead, context.Canceled)), &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, 408, "REQUEST_TIMEOUT"},
		{"broken chunked encoding", wrap(s3stream.ErrRead), errors.New("malformed chunked encoding"), 400, "BODY_READ_ERROR"},
		{"form truncated but body complete", wrap(fmt.Errorf("%w: %w", s3stream.ErrRead, io.ErrUnexpectedEOF)), nil, 400, "MALFORMED_FORM"},
		{"file too large", wrap(s3stream.ErrTooLarge), nil, 413, "FILE_TOO_LARGE"},
		{"too many files", formstream.ErrTooManyFiles, nil, 413, "TOO_MANY_FILES"},
		{"field too large", formstream.ErrFieldTooLarge, nil, 413, "FORM_TOO_LARGE"},
		{"type not allowed", wrap(contenttype.ErrNotAllowed), nil, 415, "UNSUPPORTED_MEDIA_TYPE"},
		{"type spoofed", wrap(contenttype.ErrMismatch), nil, 415, "UNSUPPORTED_MEDIA_TYPE"},
		{"not a form", formstream.ErrNotMultipart, nil, 415, "UNSUPPORTED_MEDIA_TYPE"},
		{"malformed form", formstream.ErrMalformed, nil, 400, "MALFORMED_FORM"},
		{"bad key", objectkey.ErrInvalidKey, nil, 400, "INVALID_KEY"},
		{"metadata too large", ErrMetadataTooLarge, nil, 400, "METADATA_TOO_LARGE"},
		{"storage timeout", wrap(s3stream.ErrStorageTimeout), nil, 504, "STORAGE_TIMEOUT"},
		{"storage error", wrap(s3stream.ErrStorage), nil, 502, "STORAGE_ERROR"},
		{"unknown", errors.New("boom"), nil, 500, "INTERNAL_ERROR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := c.Classify(tt.err, tt.bodyErr)
			if got.Status != tt.wantStatus || got.Code != tt.wantCode || got.Message == "" {
				t.Errorf("Classify(%v, %v) = %d %s %q, want %d %s", tt.err, tt.bodyErr, got.Status, got.Code, got.Message, tt.wantStatus, tt.wantCode)
			}
			if strings.Contains(got.Message, "boom") {
				t.Errorf("message leaks the internal error: %q", got.Message)
			}
		})
	}
}

func TestRollsBack(t *testing.T) {
	c := &Config{RollbackOn: []int{5, 409}}
	for status, want := range map[int]bool{500: true, 503: true, 409: true, 404: false, 200: false, 201: false} {
		if got := c.rollsBack(status); got != want {
			t.Errorf("rollsBack(%d) = %v, want %v", status, got, want)
		}
	}
}

func TestReservedField(t *testing.T) {
	c := &Config{SignatureField: "{upload.field}.sig"}
	for _, s := range []string{"name", "key", "bucket", "size", "content_type", "sha256", "etag"} {
		c.PassFields = append(c.PassFields, formstream.Field{Name: "{upload.field}." + s})
	}
	c.PassFields = append(c.PassFields, formstream.Field{Name: "upload_count", Value: "{http.upload_gateway.files}"})
	written := []string{"avatar.name", "avatar.key", "avatar.sig"}
	tests := map[string]bool{
		"doc.key": true, "x.sha256": true, "photo.name": true, ".etag": true, "upload_count": true, "doc.sig": true,
		// What PHP reads as avatar_key, and Rack as avatar.key.
		"avatar_key": true, "avatar key": true, " avatar.key": true, "avatar[key": true, "[avatar.key]": true,
		"api_key": true, "first_name": true, "upload count": true, "avatar_sig": true,
		// Nested in a written field.
		"avatar.key[x]": true, "avatar_name[]": true,
		"title": false, "doc": false, "doc.keys": false, "key": false, "my_upload_count": false,
		"avatar[key]": false, "avatar": false, "keys": false, "signature": false,
	}
	reserved := c.reservedNames()
	for _, w := range written {
		reserved.AddName(w)
	}
	for name, want := range tests {
		if got := reserved.Match(name); got != want {
			t.Errorf("reserved.Match(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestStripControl(t *testing.T) {
	if got := stripControl("a\r\nContent-Disposition: x\x00\x7fé"); got != "aContent-Disposition: xé" {
		t.Errorf("stripControl = %q", got)
	}
}

// The uploader adds sha256 and gateway-write-id after the check: metadata
// that leaves less room than they take must be refused up front (400), not
// by S3 (502).
func TestMetadataReservesUploaderFields(t *testing.T) {
	c := &Config{ClientMetadata: true}
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
			q := c.New(r, placeholders{})
			meta, err := q.metadata("", "a.txt")
			if tt.wantErr != (err != nil) {
				t.Fatalf("metadata() error = %v, want error %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrMetadataTooLarge) {
				t.Errorf("error %v is not ErrMetadataTooLarge", err)
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
	q := (&Config{ClientMetadata: true}).New(r, placeholders{})
	meta, err := q.metadata("", "a.txt")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := meta[s3limits.MetaWriteID]; ok || meta[s3limits.MetaUploadedBy] != "" || meta["ok"] != "yes" {
		t.Errorf("metadata = %v", meta)
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

// The answers to a hostile or overloaded situation: JSON errors with the
// right status, and Retry-After where retrying later helps.
func TestAbuseErrors(t *testing.T) {
	c := &Config{MemoryWait: 30 * time.Second, ReadTimeout: time.Second, MinRate: 1024, MaxUploadsPerClient: 3}
	tests := []struct {
		name           string
		err, bodyErr   error
		wantStatus     int
		wantCode       string
		wantRetryAfter string
	}{
		{"memory exhausted too long", fmt.Errorf("storing file: %w", s3stream.ErrMemoryWait), nil, 503, "SERVER_BUSY", "30"},
		{"too many uploads of one client", ErrTooManyUploads, nil, 429, "TOO_MANY_UPLOADS", "5"},
		{"slowloris", fmt.Errorf("%w: x", s3stream.ErrRead), bodyrate.ErrTooSlow, 408, "REQUEST_TIMEOUT", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			q := c.New(httptest.NewRequest(http.MethodPut, "/up", nil), placeholders{})
			q.body = &bodyReader{err: tt.bodyErr}
			if err := q.Fail(w, tt.err).Write(w); err != nil {
				t.Fatal(err)
			}
			var body struct {
				Success bool
				Error   struct{ Code, Message string }
			}
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q: %v", w.Body, err)
			}
			if w.Code != tt.wantStatus || body.Error.Code != tt.wantCode || body.Success {
				t.Errorf("got %d %+v, want %d %s", w.Code, body, tt.wantStatus, tt.wantCode)
			}
			if got := w.Header().Get("Retry-After"); got != tt.wantRetryAfter {
				t.Errorf("Retry-After = %q, want %q", got, tt.wantRetryAfter)
			}
		})
	}
}

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
		{"viewer not by default", nil, false, "u1", "viewer", ErrForbidden},
		{"group-less user not by default", nil, false, "u1", "", ErrForbidden},
		{"anonymous refused by default", nil, false, "", "", ErrUnauthenticated},
		{"anonymous with allow_anonymous", nil, true, "", "", nil},
		{"identity still checked with allow_anonymous", nil, true, "u1", "viewer", ErrForbidden},
		{"viewer when allowed", []string{"viewer"}, false, "u1", "viewer", nil},
		{"uploader when only admins", []string{"admin"}, false, "u1", "uploader", ErrForbidden},
		{"anonymous with allowed_roles", []string{"admin"}, false, "", "", ErrUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Config{AllowedRoles: tt.allowed, AllowAnonymous: tt.anonymous}
			ph := placeholders{}
			if tt.id != "" {
				ph.Set("http.auth.user.id", tt.id)
				ph.Set("http.auth.user.role", tt.role)
			}
			err := c.New(httptest.NewRequest(http.MethodPost, "/", nil), ph).Authorize()
			if (tt.want == nil) != (err == nil) || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Errorf("Authorize() = %v, want %v", err, tt.want)
			}
		})
	}
}

// A configuration whose templates do not use the digests computes none.
func TestPrepareDigests(t *testing.T) {
	tests := []struct {
		fields           []formstream.Field
		signature        string
		wantMD5, wantCRC bool
	}{
		{fields: []formstream.Field{{Name: "{upload.field}.key", Value: "{upload.key}"}}},
		{fields: []formstream.Field{{Name: "x", Value: "{upload.crc32}"}}, wantCRC: true},
		{fields: []formstream.Field{{Name: "x", Value: "{upload.md5}"}}, wantMD5: true},
		{signature: "{upload.md5}.sig", wantMD5: true},
	}
	for _, tt := range tests {
		c := &Config{PassFields: tt.fields, SignatureField: tt.signature, SignatureKey: make([]byte, MinSignatureKey)}
		if err := c.Prepare(); err != nil {
			t.Fatal(err)
		}
		if c.passMD5 != tt.wantMD5 || c.passCRC32 != tt.wantCRC {
			t.Errorf("%v %q: md5=%v crc32=%v, want %v %v", tt.fields, tt.signature, c.passMD5, c.passCRC32, tt.wantMD5, tt.wantCRC)
		}
	}
}

// A pass signature needs a key of at least MinSignatureKey bytes.
func TestPrepareSignatureKey(t *testing.T) {
	for _, n := range []int{0, MinSignatureKey - 1, MinSignatureKey} {
		c := &Config{SignatureField: "{upload.field}.sig", SignatureKey: make([]byte, n)}
		if err := c.Prepare(); (err == nil) != (n >= MinSignatureKey) {
			t.Errorf("key of %d bytes: Prepare() = %v", n, err)
		}
	}
}
