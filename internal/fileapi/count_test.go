package fileapi

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/google/uuid"

	"github.com/caddy-upload-gateway/upload-gateway/internal/policy"
)

// Every final completion reports its upload once, with its bytes, parts and
// the time since initiate: stored, or refused when the upload was aborted.
// Failures the client may retry report nothing.
func TestCompleteCounts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		user   policy.Subject
		mod    func(*Config)
		parts  func(e *env, uploadID string)
		status int
		want   *Upload
	}{
		{
			name:   "stored",
			user:   alice,
			parts:  func(e *env, id string) { e.store.addParts(id, 16*mib, 16*mib, 8*mib) },
			status: 200,
			want:   &Upload{Method: MethodMultipart, Stored: true, Bytes: 40 * mib, Parts: 3, Duration: 90 * time.Second},
		},
		{
			name:   "parts mismatch: aborted, refused",
			user:   alice,
			parts:  func(e *env, id string) { e.store.addParts(id, 16*mib, 16*mib, 8*mib-1) },
			status: 400,
			want:   &Upload{Method: MethodMultipart, Bytes: 40*mib - 1, Parts: 3, Duration: 90 * time.Second},
		},
		{
			name:   "over the limit: aborted, refused",
			user:   alice,
			mod:    func(c *Config) { c.MaxFileSize = 40 * mib },
			parts:  func(e *env, id string) { e.store.addParts(id, 16*mib, 16*mib, 16*mib) },
			status: 413,
			want:   &Upload{Method: MethodMultipart, Bytes: 48 * mib, Parts: 3, Duration: 90 * time.Second},
		},
		{
			name: "create-only finds the key taken: aborted, refused",
			user: alice,
			mod:  func(c *Config) { c.CreateOnly = func(context.Context) bool { return true } },
			parts: func(e *env, id string) {
				e.store.addParts(id, 16*mib, 16*mib, 8*mib)
				e.store.objects[e.store.uploads[id].key] = fakeObject{size: 1}
			},
			status: 409,
			want:   &Upload{Method: MethodMultipart, Bytes: 40 * mib, Parts: 3, Duration: 90 * time.Second},
		},
		{
			name: "abort fails: not final",
			user: alice,
			parts: func(e *env, id string) {
				e.store.addParts(id, 16*mib, 16*mib, 8*mib-1)
				e.store.errs["AbortMultipartUpload"] = errors.New("InternalError")
			},
			status: 400,
		},
		{
			name: "a part replaced meanwhile: retryable",
			user: alice,
			parts: func(e *env, id string) {
				e.store.addParts(id, 16*mib, 16*mib, 8*mib)
				e.store.errs["CompleteMultipartUpload"] = opError(400, &smithy.GenericAPIError{Code: "InvalidPart"})
			},
			status: 400,
		},
		{
			name: "S3 fails: retryable",
			user: alice,
			parts: func(e *env, id string) {
				e.store.addParts(id, 16*mib, 16*mib, 8*mib)
				e.store.errs["CompleteMultipartUpload"] = errors.New("InternalError")
			},
			status: 502,
		},
		{
			name:   "denied: no upload",
			user:   bob,
			parts:  func(e *env, id string) { e.store.addParts(id, 16*mib, 16*mib, 8*mib) },
			status: 403,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mods []func(*Config)
			if tt.mod != nil {
				mods = append(mods, tt.mod)
			}
			e := newEnv(t, mods...)
			up := e.initiate(t, alice, map[string]any{"fileName": "a.pdf", "fileSize": 40 * mib, "contentType": "application/pdf"})
			tt.parts(e, up.UploadID)
			e.svc.now = func() time.Time { return testNow.Add(90 * time.Second) }
			res := e.do(t, &tt.user, "POST", "/files/multipart/complete", map[string]any{
				"fileId": up.FileID, "uploadId": up.UploadID, "uploadToken": up.UploadToken,
			})
			if res.status != tt.status {
				t.Fatalf("status %d %s %s, want %d", res.status, res.Error.Code, res.Error.Message, tt.status)
			}
			if !equalUpload(e.resolved.Upload, tt.want) {
				t.Errorf("Resolved.Upload %+v, want %+v", e.resolved.Upload, tt.want)
			}
		})
	}
}

func equalUpload(got, want *Upload) bool {
	if got == nil || want == nil {
		return got == want
	}
	return *got == *want
}

// v7Key is a key of alice's whose UUID says it was chosen at t.
func v7Key(t time.Time, name string) string {
	var id uuid.UUID
	binary.BigEndian.PutUint64(id[:8], uint64(t.UnixMilli())<<16|0x7000)
	id[8] = 0x80
	return "users/alice/" + id.String() + "/" + name
}

var pngBytes = append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), make([]byte, 64)...)

// confirm checks an object uploaded with a presigned URL, deletes it when it
// does not match, and reports the upload once: the first confirm counts it
// (and tags the object), a second one counts nothing.
func TestConfirm(t *testing.T) {
	t.Parallel()
	sum := sha256.Sum256([]byte("hello"))
	sumHex, sumB64 := hex.EncodeToString(sum[:]), base64.StdEncoding.EncodeToString(sum[:])
	key := v7Key(testNow.Add(-30*time.Second), "a.txt")
	text := fakeObject{size: 5, ct: "text/plain", etag: `"5d41"`, body: []byte("hello"), meta: map[string]string{"uploaded-by": "alice"}}
	with := func(o fakeObject, f func(*fakeObject)) fakeObject { f(&o); return o }
	stored := &Upload{Method: MethodPresigned, Stored: true, Bytes: 5, Duration: 30 * time.Second}
	refused := &Upload{Method: MethodPresigned, Bytes: 5, Duration: 30 * time.Second}
	tests := []struct {
		name      string
		user      policy.Subject
		key       string
		object    *fakeObject // nil: none
		mod       func(*Config)
		errs      map[string]string
		body      any
		status    int
		code      string
		want      *Upload
		wantCalls []string
		wantGone  bool
	}{
		{
			name: "stored, no body", user: alice, key: key, object: &text, status: 200, want: stored,
			wantCalls: []string{"HeadObject", "GetObjectTagging", "GetObject", "PutObjectTagging"},
		},
		{
			name: "stored, what the client says matches", user: alice, key: key, object: &text, status: 200, want: stored,
			body:      map[string]any{"size": 5, "type": "text/plain; charset=utf-8", "sha256": sumHex},
			wantCalls: []string{"HeadObject", "GetObjectTagging", "GetObject", "PutObjectTagging"},
		},
		{
			name: "stored, checksum from S3's own", user: alice, key: key, status: 200, want: stored,
			object:    ptr(with(text, func(o *fakeObject) { o.sha256 = sumB64 })),
			body:      map[string]any{"sha256": sumB64},
			wantCalls: []string{"HeadObject", "GetObjectTagging", "GetObject", "PutObjectTagging"},
		},
		{
			name: "any type allowed: no ranged GET", user: alice, key: key, object: &text, status: 200, want: stored,
			mod:       func(c *Config) { c.Types = nil },
			wantCalls: []string{"HeadObject", "GetObjectTagging", "PutObjectTagging"},
		},
		{
			name: "admin confirms alice's upload", user: ada, key: key, object: &text, status: 200, want: stored,
			wantCalls: []string{"HeadObject", "GetObjectTagging", "GetObject", "PutObjectTagging"},
		},
		{
			name: "a key without a time: duration unknown", user: alice, key: "users/alice/1/a.txt", object: &text, status: 200,
			want:      &Upload{Method: MethodPresigned, Stored: true, Bytes: 5},
			wantCalls: []string{"HeadObject", "GetObjectTagging", "GetObject", "PutObjectTagging"},
		},
		{
			name: "size differs from the client's", user: alice, key: key, object: &text, body: map[string]any{"size": 6},
			status: 400, code: "SIZE_MISMATCH", want: refused, wantGone: true,
			wantCalls: []string{"HeadObject", "GetObjectTagging", "DeleteObject"},
		},
		{
			name: "over max_single_size", user: alice, key: key, object: &text, mod: func(c *Config) { c.MaxSingleSize = 4 },
			status: 413, code: "FILE_TOO_LARGE", want: refused, wantGone: true,
			wantCalls: []string{"HeadObject", "GetObjectTagging", "DeleteObject"},
		},
		{
			name: "type differs from the client's", user: alice, key: key, object: &text, body: map[string]any{"type": "image/png"},
			status: 415, code: "CONTENT_TYPE_MISMATCH", want: refused, wantGone: true,
			wantCalls: []string{"HeadObject", "GetObjectTagging", "DeleteObject"},
		},
		{
			name: "bytes are not the stored type", user: alice, key: key,
			object: ptr(with(text, func(o *fakeObject) { o.ct = "image/png"; o.body = []byte("<html><script>x</script></html>") })),
			status: 415, code: "CONTENT_TYPE_MISMATCH", want: refused, wantGone: true,
			wantCalls: []string{"HeadObject", "GetObjectTagging", "GetObject", "DeleteObject"},
		},
		{
			name: "stored type not allowed", user: alice, key: key,
			object: ptr(with(text, func(o *fakeObject) { o.ct = "application/zip"; o.body = []byte("PK\x03\x04") })),
			status: 415, code: "CONTENT_TYPE_NOT_ALLOWED", want: refused, wantGone: true,
			wantCalls: []string{"HeadObject", "GetObjectTagging", "DeleteObject"},
		},
		{
			name: "png bytes as png", user: alice, key: key, status: 200,
			object:    ptr(with(text, func(o *fakeObject) { o.ct = "image/png"; o.body = pngBytes; o.size = int64(len(pngBytes)) })),
			want:      &Upload{Method: MethodPresigned, Stored: true, Bytes: int64(len(pngBytes)), Duration: 30 * time.Second},
			wantCalls: []string{"HeadObject", "GetObjectTagging", "GetObject", "PutObjectTagging"},
		},
		{
			name: "checksum differs", user: alice, key: key, body: map[string]any{"sha256": hex.EncodeToString(make([]byte, 32))},
			object: ptr(with(text, func(o *fakeObject) { o.meta = map[string]string{"sha256": sumHex} })),
			status: 400, code: "CHECKSUM_MISMATCH", want: refused, wantGone: true,
			wantCalls: []string{"HeadObject", "GetObjectTagging", "DeleteObject"},
		},
		{
			name: "confirmed before: nothing checked or counted", user: alice, key: key, body: map[string]any{"size": 6},
			object:    ptr(with(text, func(o *fakeObject) { o.tags = []types.Tag{{Key: aws.String(ConfirmedTag), Value: aws.String("x")}} })),
			status:    200,
			wantCalls: []string{"HeadObject", "GetObjectTagging"},
		},
		{
			name: "a multipart object: counted on complete", user: alice, key: key, body: map[string]any{"size": 6},
			object:    ptr(with(text, func(o *fakeObject) { o.etag = `"0123abcd-3"` })),
			status:    200,
			wantCalls: []string{"HeadObject"},
		},
		{
			name: "a streamed object: counted by the gateway", user: alice, key: key,
			object:    ptr(with(text, func(o *fakeObject) { o.meta = map[string]string{"Gateway-Write-Id": "w1"} })),
			status:    200,
			wantCalls: []string{"HeadObject"},
		},
		{
			name: "no such object", user: alice, key: key, status: 404, code: "FILE_NOT_FOUND",
			wantCalls: []string{"HeadObject"},
		},
		{
			name: "another user's file", user: bob, key: key, object: &text, status: 403, code: "FORBIDDEN",
		},
		{
			name: "viewer", user: vic, key: "users/vic/1/a.txt", object: &text, status: 403, code: "FORBIDDEN",
		},
		{
			name: "no delete right: the user's own fresh upload is still discarded", user: alice, key: key, object: &text,
			mod: func(c *Config) { c.Authorizer = &fakeAuth{noDelete: true} }, body: map[string]any{"size": 6},
			status: 400, code: "SIZE_MISMATCH", want: refused, wantGone: true,
			wantCalls: []string{"HeadObject", "GetObjectTagging", "DeleteObject"},
		},
		{
			name: "no delete right: an old object is refused but kept", user: alice, key: v7Key(testNow.Add(-72*time.Hour), "old.txt"), object: &text,
			mod: func(c *Config) { c.Authorizer = &fakeAuth{noDelete: true} }, body: map[string]any{"size": 6},
			status: 400, code: "SIZE_MISMATCH",
			wantCalls: []string{"HeadObject", "GetObjectTagging"},
		},
		{
			name: "no delete right: another user's upload is refused but kept", user: alice, key: key,
			object: ptr(with(text, func(o *fakeObject) { o.meta = map[string]string{"uploaded-by": "bob"} })),
			mod:    func(c *Config) { c.Authorizer = &fakeAuth{noDelete: true} }, body: map[string]any{"size": 6},
			status: 400, code: "SIZE_MISMATCH",
			wantCalls: []string{"HeadObject", "GetObjectTagging"},
		},
		{
			name: "delete fails: not final", user: alice, key: key, object: &text, body: map[string]any{"size": 6},
			errs: map[string]string{"DeleteObject": "InternalError"}, status: 502, code: "STORAGE_ERROR",
			wantCalls: []string{"HeadObject", "GetObjectTagging", "DeleteObject"},
		},
		{
			name: "tagging fails: not counted", user: alice, key: key, object: &text,
			errs: map[string]string{"PutObjectTagging": "InternalError"}, status: 502, code: "STORAGE_ERROR",
			wantCalls: []string{"HeadObject", "GetObjectTagging", "GetObject", "PutObjectTagging"},
		},
		{
			name: "bad body", user: alice, key: key, object: &text, body: map[string]any{"size": "five"},
			status: 400, code: "BAD_REQUEST",
		},
		{
			name: "negative size", user: alice, key: key, object: &text, body: map[string]any{"size": -1},
			status: 400, code: "BAD_REQUEST",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mods []func(*Config)
			if tt.mod != nil {
				mods = append(mods, tt.mod)
			}
			e := newEnv(t, mods...)
			if tt.object != nil {
				e.store.objects[tt.key] = *tt.object
			}
			for op, msg := range tt.errs {
				e.store.errs[op] = errors.New(msg)
			}
			res := e.do(t, &tt.user, "POST", "/files/"+fileID(tt.key)+"/confirm", tt.body)
			expect(t, res, tt.status, tt.code)
			if !equalUpload(e.resolved.Upload, tt.want) {
				t.Errorf("Resolved.Upload %+v, want %+v", e.resolved.Upload, tt.want)
			}
			if got := e.store.ops(); !slices.Equal(got, tt.wantCalls) {
				t.Errorf("S3 calls %v, want %v", got, tt.wantCalls)
			}
			if _, exists := e.store.objects[tt.key]; tt.object != nil && exists == tt.wantGone {
				t.Errorf("object exists: %v, want %v", exists, !tt.wantGone)
			}
			if tt.status != 200 {
				return
			}
			var got confirmResponse
			res.data(t, &got)
			if got.FileID != fileID(tt.key) || got.S3Key != tt.key || got.Size != tt.object.size || got.Counted != (tt.want != nil) {
				t.Errorf("response %+v", got)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// A second confirm of the same object counts nothing: the tag the first
// one set says it was counted.
func TestConfirmTwice(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	key := "users/alice/1/a.txt"
	e.store.objects[key] = fakeObject{size: 5, ct: "text/plain", etag: `"5d41"`, body: []byte("hello")}
	var counted []bool
	for range 2 {
		res := e.do(t, &alice, "POST", "/files/"+fileID(key)+"/confirm", nil)
		expect(t, res, 200, "")
		var got confirmResponse
		res.data(t, &got)
		counted = append(counted, got.Counted, e.resolved.Upload != nil)
	}
	if want := []bool{true, true, false, false}; !slices.Equal(counted, want) {
		t.Errorf("counted, reported: %v, want %v", counted, want)
	}
	tags := e.store.objects[key].tags
	if len(tags) != 1 || aws.ToString(tags[0].Key) != ConfirmedTag || aws.ToString(tags[0].Value) != testNow.Format(time.RFC3339) {
		t.Errorf("tags %v", tags)
	}
}

// New keys carry the time they were chosen in a version 7 UUID.
func TestNewKeyCarriesItsTime(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.svc.newID = newUUIDv7
	e.svc.now = time.Now
	key, err := e.svc.newKey(alice, "a.txt")
	if err != nil {
		t.Fatal(err)
	}
	if d := e.svc.sinceIssued(key); d < 0 || d > time.Minute {
		t.Errorf("sinceIssued(%q) = %v", key, d)
	}
}
