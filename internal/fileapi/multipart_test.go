package fileapi

import (
	"github.com/caddy-upload-gateway/upload-gateway/internal/policy"

	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

const mib = 1 << 20

func TestChoosePartSize(t *testing.T) {
	t.Parallel()
	p := func(n int64) *int64 { return &n }
	tests := []struct {
		name      string
		fileSize  int64
		requested *int64
		wantSize  int64
		wantParts int
		wantErr   bool
	}{
		{"tiny file, default", 1, nil, 16 * mib, 1, false},
		{"100 MiB, default", 100 * mib, nil, 16 * mib, 7, false},
		{"exactly 10000 default parts", 10000 * 16 * mib, nil, 16 * mib, 10000, false},
		{"one byte more grows the part to 17 MiB", 10000*16*mib + 1, nil, 17 * mib, 9412, false},
		{"200 GiB rounds up to 21 MiB", 200 << 30, nil, 21 * mib, 9753, false},
		{"5 TiB", 5 << 40, nil, 525 * mib, 9987, false},
		{"requested 5 MiB", 10 * mib, p(5 * mib), 5 * mib, 2, false},
		{"requested 5 GiB", 5 << 30, p(5 << 30), 5 << 30, 1, false},
		{"requested 10000 parts", 50000 * mib, p(5 * mib), 5 * mib, 10000, false},
		{"requested 10001 parts", 50000*mib + 1, p(5 * mib), 0, 0, true},
		{"requested under 5 MiB", 10 * mib, p(5*mib - 1), 0, 0, true},
		{"requested over 5 GiB", 10 << 30, p(5<<30 + 1), 0, 0, true},
		{"requested 0", 10 * mib, p(0), 0, 0, true},
		{"part larger than file", 1 * mib, p(8 * mib), 8 * mib, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			size, parts, err := choosePartSize(tt.fileSize, tt.requested, DefaultPartSize)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				if !errors.Is(err, errBadRequest) {
					t.Errorf("error %v is not a bad request", err)
				}
				return
			}
			if size != tt.wantSize || parts != tt.wantParts {
				t.Errorf("choosePartSize(%d) = %d bytes × %d parts, want %d × %d", tt.fileSize, size, parts, tt.wantSize, tt.wantParts)
			}
		})
	}
}

// initiate starts a multipart upload through the API.
func (e *env) initiate(t *testing.T, user policy.Subject, body map[string]any) initiateResponse {
	t.Helper()
	res := e.do(t, &user, "POST", "/files/multipart/initiate", body)
	expect(t, res, 200, "")
	var got initiateResponse
	res.data(t, &got)
	return got
}

func TestInitiate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	got := e.initiate(t, alice, map[string]any{
		"fileName": "vidéo.mp4", "fileSize": 100 * mib, "contentType": "image/png", "metadata": map[string]string{"k": "v"},
	})
	key := "users/alice/00000000-0000-0000-0000-000000000001/vidéo.mp4"
	if got.S3Key != key || got.FileID != fileID(key) || got.UploadID != "upload-1" || got.PartSize != 16*mib ||
		got.TotalParts != 7 || got.ExpiresIn != 900 || got.UploadToken == "" {
		t.Errorf("response %+v", got)
	}
	in := e.store.created[0]
	if *in.Bucket != "bucket" || *in.Key != key || *in.ContentType != "image/png" ||
		in.ServerSideEncryption != types.ServerSideEncryptionAwsKms || aws.ToString(in.SSEKMSKeyId) != "alias/uploads" ||
		!aws.ToBool(in.BucketKeyEnabled) || !strings.HasPrefix(aws.ToString(in.ContentDisposition), "attachment;") {
		t.Errorf("CreateMultipartUploadInput %+v", in)
	}
	if in.Metadata["k"] != "v" || in.Metadata["uploaded-by"] != "alice" || in.Metadata["original-name"] != "=?UTF-8?B?dmlkw6lvLm1wNA==?=" {
		t.Errorf("metadata %v", in.Metadata)
	}
	if len(got.PartURLs) != 7 || len(e.presigner.parts) != 7 || len(e.presigns) != 7 {
		t.Fatalf("%d part URLs, %d presigned, %d reported", len(got.PartURLs), len(e.presigner.parts), len(e.presigns))
	}
	for i, p := range e.presigner.parts {
		want := int64(16 * mib)
		if i == 6 {
			want = 4 * mib
		}
		if p.PartNumber != int32(i+1) || p.ContentLength != want || p.UploadID != "upload-1" || p.Key != key || p.Expires != DefaultURLExpiry {
			t.Errorf("part %d: %+v", i+1, p)
		}
		if got.PartURLs[i].PartNumber != i+1 || !strings.Contains(got.PartURLs[i].URL, "partNumber=") {
			t.Errorf("part URL %d: %+v", i+1, got.PartURLs[i])
		}
	}
	c, err := e.svc.verifyToken(got.UploadToken, key, "upload-1")
	if err != nil {
		t.Fatal(err)
	}
	want := uploadClaims{Key: key, UploadID: "upload-1", FileSize: 100 * mib, PartSize: 16 * mib, ContentType: "image/png", Expires: testNow.Add(24 * time.Hour).Unix()}
	if c != want {
		t.Errorf("token claims %+v, want %+v", c, want)
	}
}

func TestInitiateBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	got := e.initiate(t, alice, map[string]any{"fileName": "a.pdf", "fileSize": 1 << 30, "contentType": "application/pdf", "partSize": 5 * mib})
	if got.TotalParts != 205 || len(got.PartURLs) != DefaultPartBatch || got.PartURLs[19].PartNumber != 20 {
		t.Errorf("totalParts %d, %d URLs", got.TotalParts, len(got.PartURLs))
	}
}

func TestInitiateErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		user       policy.Subject
		body       map[string]any
		mod        func(*env)
		status     int
		code       string
		wantCalls  []string
		wantAborts int
	}{
		{"viewer", vic, map[string]any{"fileName": "a.pdf", "fileSize": 10, "contentType": "application/pdf"}, nil, 403, "FORBIDDEN", nil, 0},
		{"over 5 TiB", alice, map[string]any{"fileName": "a.pdf", "fileSize": 5<<40 + 1, "contentType": "application/pdf"}, nil, 413, "FILE_TOO_LARGE", nil, 0},
		{"empty file", alice, map[string]any{"fileName": "a.pdf", "fileSize": 0, "contentType": "application/pdf"}, nil, 400, "BAD_REQUEST", nil, 0},
		{"part too small", alice, map[string]any{"fileName": "a.pdf", "fileSize": 10 * mib, "contentType": "application/pdf", "partSize": mib}, nil, 400, "BAD_REQUEST", nil, 0},
		{"too many parts", alice, map[string]any{"fileName": "a.pdf", "fileSize": 100 << 30, "contentType": "application/pdf", "partSize": 5 * mib}, nil, 400, "BAD_REQUEST", nil, 0},
		{"bad type", alice, map[string]any{"fileName": "a.svg", "fileSize": 10, "contentType": "text/html"}, nil, 415, "CONTENT_TYPE_NOT_ALLOWED", nil, 0},
		{"create fails", alice, map[string]any{"fileName": "a.pdf", "fileSize": 10, "contentType": "application/pdf"},
			func(e *env) { e.store.errs["CreateMultipartUpload"] = errors.New("internal error") }, 502, "STORAGE_ERROR", []string{"CreateMultipartUpload"}, 0},
		{"create times out", alice, map[string]any{"fileName": "a.pdf", "fileSize": 10, "contentType": "application/pdf"},
			func(e *env) { e.store.errs["CreateMultipartUpload"] = context.DeadlineExceeded }, 504, "STORAGE_TIMEOUT", []string{"CreateMultipartUpload"}, 0},
		{"presign fails: aborted", alice, map[string]any{"fileName": "a.pdf", "fileSize": 10, "contentType": "application/pdf"},
			func(e *env) { e.presigner.err = errors.New("no credentials") }, 502, "STORAGE_ERROR", []string{"CreateMultipartUpload", "AbortMultipartUpload"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			if tt.mod != nil {
				tt.mod(e)
			}
			res := e.do(t, &tt.user, "POST", "/files/multipart/initiate", tt.body)
			expect(t, res, tt.status, tt.code)
			if got := e.store.ops(); !slices.Equal(got, tt.wantCalls) {
				t.Errorf("S3 calls %v, want %v", got, tt.wantCalls)
			}
			if len(e.store.aborted) != tt.wantAborts {
				t.Errorf("aborted %v", e.store.aborted)
			}
		})
	}
}

// tamper rewrites the payload of a token, keeping its signature.
func tamper(t *testing.T, token string, edit func(*uploadClaims)) string {
	t.Helper()
	parts := strings.Split(token, ".")
	raw, err := b64.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c uploadClaims
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	edit(&c)
	raw, _ = json.Marshal(c)
	parts[1] = b64.EncodeToString(raw)
	return strings.Join(parts, ".")
}

func TestSignParts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	up := e.initiate(t, alice, map[string]any{"fileName": "a.pdf", "fileSize": 100*mib + 1, "contentType": "application/pdf", "partSize": 5 * mib})
	other := e.initiate(t, alice, map[string]any{"fileName": "b.pdf", "fileSize": 10 * mib, "contentType": "application/pdf"})
	if up.TotalParts != 21 {
		t.Fatalf("totalParts %d", up.TotalParts)
	}
	body := func(nums ...int) map[string]any {
		return map[string]any{"fileId": up.FileID, "uploadId": up.UploadID, "uploadToken": up.UploadToken, "partNumbers": nums}
	}
	with := func(k string, v any, nums ...int) map[string]any {
		b := body(nums...)
		b[k] = v
		return b
	}
	many := make([]int, 101)
	for i := range many {
		many[i] = i%21 + 1
	}
	otherSecret := newEnv(t, func(c *Config) { c.Secret = []byte("another secret of at least 32 bytes!") })
	forged := otherSecret.svc.signToken(uploadClaims{Key: up.S3Key, UploadID: up.UploadID, FileSize: 200 * mib, PartSize: 5 * mib, Expires: testNow.Add(time.Hour).Unix()})

	tests := []struct {
		name   string
		user   policy.Subject
		body   map[string]any
		now    time.Time
		status int
		code   string
	}{
		{"happy", alice, body(21, 20, 1), testNow, 200, ""},
		{"admin", ada, body(2), testNow, 200, ""},
		{"just before expiry", alice, body(1), testNow.Add(24*time.Hour - time.Second), 200, ""},
		{"no part numbers", alice, body(), testNow, 400, "BAD_REQUEST"},
		{"101 part numbers", alice, body(many...), testNow, 400, "BAD_REQUEST"},
		{"part 0", alice, body(0), testNow, 400, "BAD_REQUEST"},
		{"part after the last", alice, body(22), testNow, 400, "BAD_REQUEST"},
		{"duplicate part", alice, body(3, 3), testNow, 400, "BAD_REQUEST"},
		{"missing token", alice, with("uploadToken", "", 1), testNow, 400, "BAD_REQUEST"},
		{"missing upload id", alice, with("uploadId", "", 1), testNow, 400, "BAD_REQUEST"},
		{"other user", bob, body(1), testNow, 403, "FORBIDDEN"},
		{"viewer", vic, body(1), testNow, 403, "FORBIDDEN"},
		{"expired", alice, body(1), testNow.Add(24 * time.Hour), 403, "UPLOAD_TOKEN_EXPIRED"},
		{"changed size", alice, with("uploadToken", tamper(t, up.UploadToken, func(c *uploadClaims) { c.FileSize *= 2 }), 1), testNow, 403, "INVALID_UPLOAD_TOKEN"},
		{"changed part size", alice, with("uploadToken", tamper(t, up.UploadToken, func(c *uploadClaims) { c.PartSize = 6 * mib }), 1), testNow, 403, "INVALID_UPLOAD_TOKEN"},
		{"changed key", alice, with("uploadToken", tamper(t, up.UploadToken, func(c *uploadClaims) { c.Key = other.S3Key }), 1), testNow, 403, "INVALID_UPLOAD_TOKEN"},
		{"extended expiry", alice, with("uploadToken", tamper(t, up.UploadToken, func(c *uploadClaims) { c.Expires += 3600 }), 1), testNow.Add(24 * time.Hour), 403, "INVALID_UPLOAD_TOKEN"},
		{"other secret", alice, with("uploadToken", forged, 1), testNow, 403, "INVALID_UPLOAD_TOKEN"},
		{"bad signature", alice, with("uploadToken", up.UploadToken[:len(up.UploadToken)-2]+"AA", 1), testNow, 403, "INVALID_UPLOAD_TOKEN"},
		{"no signature", alice, with("uploadToken", up.UploadToken[:strings.LastIndexByte(up.UploadToken, '.')], 1), testNow, 403, "INVALID_UPLOAD_TOKEN"},
		{"other version", alice, with("uploadToken", "v2"+up.UploadToken[2:], 1), testNow, 403, "INVALID_UPLOAD_TOKEN"},
		{"garbage", alice, with("uploadToken", "not a token", 1), testNow, 403, "INVALID_UPLOAD_TOKEN"},
		{"token of another upload", alice, with("uploadToken", other.UploadToken, 1), testNow, 403, "INVALID_UPLOAD_TOKEN"},
		{"fileId of another upload", alice, with("fileId", other.FileID, 1), testNow, 403, "INVALID_UPLOAD_TOKEN"},
		{"uploadId of another upload", alice, with("uploadId", other.UploadID, 1), testNow, 403, "INVALID_UPLOAD_TOKEN"},
		{"fileId not base64", alice, with("fileId", "%%%", 1), testNow, 400, "INVALID_FILE_ID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.presigner.parts = nil
			e.svc.now = func() time.Time { return tt.now }
			defer func() { e.svc.now = func() time.Time { return testNow } }()
			res := e.do(t, &tt.user, "POST", "/files/multipart/sign-parts", tt.body)
			expect(t, res, tt.status, tt.code)
			if tt.status != 200 {
				if len(e.presigner.parts) != 0 {
					t.Errorf("signed %d parts on failure", len(e.presigner.parts))
				}
				return
			}
			var got signPartsResponse
			res.data(t, &got)
			nums := tt.body["partNumbers"].([]int)
			if len(got.PartURLs) != len(nums) {
				t.Fatalf("%d URLs for %v", len(got.PartURLs), nums)
			}
			for i, p := range e.presigner.parts {
				want := int64(5 * mib)
				if nums[i] == 21 {
					want = 1
				}
				if int(p.PartNumber) != nums[i] || p.ContentLength != want || got.PartURLs[i].PartNumber != nums[i] {
					t.Errorf("part %d: %+v", nums[i], p)
				}
				if limit := time.Unix(int64(24*time.Hour/time.Second)+testNow.Unix(), 0).Sub(tt.now); p.Expires > limit {
					t.Errorf("part URL valid for %v, beyond the token (%v)", p.Expires, limit)
				}
			}
		})
	}
}

func TestOldSecretVerifies(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	up := e.initiate(t, alice, map[string]any{"fileName": "a.pdf", "fileSize": 10, "contentType": "application/pdf"})
	rotated := newEnv(t, func(c *Config) {
		c.Secret = []byte("the new secret, also 32 bytes long")
		c.OldSecrets = [][]byte{testSecret}
	})
	res := rotated.do(t, &alice, "POST", "/files/multipart/sign-parts", map[string]any{
		"fileId": up.FileID, "uploadId": up.UploadID, "uploadToken": up.UploadToken, "partNumbers": []int{1},
	})
	expect(t, res, 200, "")
}

func TestComplete(t *testing.T) {
	t.Parallel()
	// 40 MiB in parts of 16 MiB: 16 + 16 + 8.
	tests := []struct {
		name      string
		user      policy.Subject
		mod       func(*Config)
		parts     func(e *env, uploadID string)
		status    int
		code      string
		wantCalls []string
		wantAbort bool
	}{
		{
			name:      "happy, listing paginated, first bytes sniffed",
			user:      alice,
			parts:     func(e *env, id string) { e.store.addParts(id, 16*mib, 16*mib, 8*mib) },
			status:    200,
			wantCalls: []string{"ListParts", "ListParts", "CompleteMultipartUpload", "GetObject"},
		},
		{
			name:      "admin completes another user's upload",
			user:      ada,
			parts:     func(e *env, id string) { e.store.addParts(id, 16*mib, 16*mib, 8*mib) },
			status:    200,
			wantCalls: []string{"ListParts", "ListParts", "CompleteMultipartUpload", "GetObject"},
		},
		{
			name: "an executable declared a PDF: completed, sniffed, deleted",
			user: alice,
			parts: func(e *env, id string) {
				e.store.addParts(id, 16*mib, 16*mib, 8*mib)
				e.store.completedBody = []byte("MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00PE\x00\x00")
			},
			status: 415, code: "CONTENT_TYPE_MISMATCH",
			wantCalls: []string{"ListParts", "ListParts", "CompleteMultipartUpload", "GetObject", "DeleteObject"},
		},
		{
			name: "any type allowed: no sniffing",
			user: alice,
			mod:  func(c *Config) { c.Types = nil },
			parts: func(e *env, id string) {
				e.store.addParts(id, 16*mib, 16*mib, 8*mib)
				e.store.completedBody = []byte("MZ\x90\x00")
			},
			status:    200,
			wantCalls: []string{"ListParts", "ListParts", "CompleteMultipartUpload"},
		},
		{
			name:   "last part short: wrong total",
			user:   alice,
			parts:  func(e *env, id string) { e.store.addParts(id, 16*mib, 16*mib, 8*mib-1) },
			status: 400, code: "PARTS_MISMATCH",
			wantCalls: []string{"ListParts", "ListParts", "AbortMultipartUpload"}, wantAbort: true,
		},
		{
			name:   "extra part: total above the declared size",
			user:   alice,
			parts:  func(e *env, id string) { e.store.addParts(id, 16*mib, 16*mib, 8*mib, 1) },
			status: 400, code: "PARTS_MISMATCH",
			wantCalls: []string{"ListParts", "ListParts", "AbortMultipartUpload"}, wantAbort: true,
		},
		{
			name:   "a middle part of the wrong size",
			user:   alice,
			parts:  func(e *env, id string) { e.store.addParts(id, 15*mib, 17*mib, 8*mib) },
			status: 400, code: "PARTS_MISMATCH",
			wantCalls: []string{"ListParts", "ListParts", "AbortMultipartUpload"}, wantAbort: true,
		},
		{
			name: "a missing part",
			user: alice,
			parts: func(e *env, id string) {
				e.store.addParts(id, 16*mib, 16*mib, 8*mib)
				u := e.store.uploads[id]
				u.parts = slices.Delete(u.parts, 1, 2)
			},
			status: 400, code: "PARTS_MISMATCH",
			wantCalls: []string{"ListParts", "AbortMultipartUpload"}, wantAbort: true,
		},
		{
			name:   "no parts",
			user:   alice,
			parts:  func(*env, string) {},
			status: 400, code: "PARTS_MISMATCH",
			wantCalls: []string{"ListParts", "AbortMultipartUpload"}, wantAbort: true,
		},
		{
			name:   "over the limit",
			user:   alice,
			mod:    func(c *Config) { c.MaxFileSize = 40 * mib },
			parts:  func(e *env, id string) { e.store.addParts(id, 16*mib, 16*mib, 16*mib) },
			status: 413, code: "FILE_TOO_LARGE",
			wantCalls: []string{"ListParts", "ListParts", "AbortMultipartUpload"}, wantAbort: true,
		},
		{
			name:   "other user",
			user:   bob,
			parts:  func(e *env, id string) { e.store.addParts(id, 16*mib, 16*mib, 8*mib) },
			status: 403, code: "FORBIDDEN",
		},
		{
			name:   "upload gone",
			user:   alice,
			parts:  func(e *env, id string) { delete(e.store.uploads, id) },
			status: 404, code: "UPLOAD_NOT_FOUND",
			wantCalls: []string{"ListParts"},
		},
		{
			name: "a part replaced meanwhile: not aborted",
			user: alice,
			parts: func(e *env, id string) {
				e.store.addParts(id, 16*mib, 16*mib, 8*mib)
				e.store.errs["CompleteMultipartUpload"] = opError(400, &smithy.GenericAPIError{Code: "InvalidPart"})
			},
			status: 400, code: "PARTS_MISMATCH",
			wantCalls: []string{"ListParts", "ListParts", "CompleteMultipartUpload"},
		},
		{
			name: "complete fails",
			user: alice,
			parts: func(e *env, id string) {
				e.store.addParts(id, 16*mib, 16*mib, 8*mib)
				e.store.errs["CompleteMultipartUpload"] = errors.New("InternalError")
			},
			status: 502, code: "STORAGE_ERROR",
			wantCalls: []string{"ListParts", "ListParts", "CompleteMultipartUpload"},
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
			e.store.calls = nil
			e.store.pageSize = 2
			tt.parts(e, up.UploadID)
			res := e.do(t, &tt.user, "POST", "/files/multipart/complete", map[string]any{
				"fileId": up.FileID, "uploadId": up.UploadID, "uploadToken": up.UploadToken,
			})
			expect(t, res, tt.status, tt.code)
			if got := e.store.ops(); !slices.Equal(got, tt.wantCalls) {
				t.Errorf("S3 calls %v, want %v", got, tt.wantCalls)
			}
			if aborted := slices.Contains(e.store.aborted, up.UploadID); aborted != tt.wantAbort {
				t.Errorf("aborted = %v, want %v", aborted, tt.wantAbort)
			}
			if tt.status != 200 {
				return
			}
			var got completeResponse
			res.data(t, &got)
			if got.FileID != up.FileID || got.S3Key != up.S3Key || got.Size != 40*mib || got.ETag != "final-2" {
				t.Errorf("response %+v", got)
			}
			in := e.store.completed[0]
			var nums []int32
			for _, p := range in.MultipartUpload.Parts {
				nums = append(nums, *p.PartNumber)
				if want := `"etag-` + string(rune('0'+*p.PartNumber)) + `"`; aws.ToString(p.ETag) != want {
					t.Errorf("part %d ETag %q, want %q", *p.PartNumber, aws.ToString(p.ETag), want)
				}
			}
			if !slices.Equal(nums, []int32{1, 2, 3}) || *in.UploadId != up.UploadID || *in.Key != up.S3Key {
				t.Errorf("CompleteMultipartUploadInput parts %v", nums)
			}
		})
	}
}

func TestCompleteCannotChangeSize(t *testing.T) {
	t.Parallel()
	// The client declared 40 MiB, then tries to complete 48 MiB with a
	// token whose size it edited: the signature stops it before any call.
	e := newEnv(t)
	up := e.initiate(t, alice, map[string]any{"fileName": "a.pdf", "fileSize": 40 * mib, "contentType": "application/pdf"})
	e.store.addParts(up.UploadID, 16*mib, 16*mib, 16*mib)
	e.store.calls = nil
	res := e.do(t, &alice, "POST", "/files/multipart/complete", map[string]any{
		"fileId": up.FileID, "uploadId": up.UploadID,
		"uploadToken": tamper(t, up.UploadToken, func(c *uploadClaims) { c.FileSize = 48 * mib }),
	})
	expect(t, res, 403, "INVALID_UPLOAD_TOKEN")
	if len(e.store.calls) != 0 {
		t.Errorf("S3 calls %v", e.store.calls)
	}
}

func TestListParts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	up := e.initiate(t, alice, map[string]any{"fileName": "a.pdf", "fileSize": 40 * mib, "contentType": "application/pdf"})
	e.store.addParts(up.UploadID, 16*mib, 16*mib)
	e.store.pageSize = 1
	path := func(uploadID, fileID string) string {
		return "/files/multipart/" + url.PathEscape(uploadID) + "/parts?fileId=" + url.QueryEscape(fileID)
	}
	tests := []struct {
		name   string
		user   policy.Subject
		target string
		status int
		code   string
	}{
		{"happy", alice, path(up.UploadID, up.FileID), 200, ""},
		{"admin", ada, path(up.UploadID, up.FileID), 200, ""},
		{"other user", bob, path(up.UploadID, up.FileID), 403, "FORBIDDEN"},
		{"no fileId", alice, "/files/multipart/" + up.UploadID + "/parts", 400, "BAD_REQUEST"},
		{"bad fileId", alice, path(up.UploadID, "x/../y"), 400, "INVALID_FILE_ID"},
		{"unknown upload", alice, path("nope", up.FileID), 404, "UPLOAD_NOT_FOUND"},
		{"upload of another file", alice, path(up.UploadID, fileID("users/alice/x/b.pdf")), 404, "UPLOAD_NOT_FOUND"},
		{"wrong method", alice, path(up.UploadID, up.FileID), 405, "METHOD_NOT_ALLOWED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := "GET"
			if tt.status == 405 {
				method = "POST"
			}
			res := e.do(t, &tt.user, method, tt.target, nil)
			expect(t, res, tt.status, tt.code)
			if tt.status != 200 {
				return
			}
			var got listPartsResponse
			res.data(t, &got)
			want := []partInfo{{1, "etag-1", 16 * mib}, {2, "etag-2", 16 * mib}}
			if got.UploadID != up.UploadID || got.FileID != up.FileID || !slices.Equal(got.Parts, want) {
				t.Errorf("response %+v", got)
			}
		})
	}
}

func TestAbort(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		user      policy.Subject
		body      func(up initiateResponse) map[string]any
		status    int
		code      string
		wantAbort bool
	}{
		{"owner", alice, func(up initiateResponse) map[string]any {
			return map[string]any{"fileId": up.FileID, "uploadId": up.UploadID}
		}, 200, "", true},
		{"admin", ada, func(up initiateResponse) map[string]any {
			return map[string]any{"fileId": up.FileID, "uploadId": up.UploadID}
		}, 200, "", true},
		{"other user", bob, func(up initiateResponse) map[string]any {
			return map[string]any{"fileId": up.FileID, "uploadId": up.UploadID}
		}, 403, "FORBIDDEN", false},
		{"viewer", vic, func(up initiateResponse) map[string]any {
			return map[string]any{"fileId": up.FileID, "uploadId": up.UploadID}
		}, 403, "FORBIDDEN", false},
		{"unknown upload", alice, func(up initiateResponse) map[string]any {
			return map[string]any{"fileId": up.FileID, "uploadId": "nope"}
		}, 404, "UPLOAD_NOT_FOUND", false},
		{"no upload id", alice, func(up initiateResponse) map[string]any { return map[string]any{"fileId": up.FileID} }, 400, "BAD_REQUEST", false},
		{"bad fileId", alice, func(up initiateResponse) map[string]any {
			return map[string]any{"fileId": "..", "uploadId": up.UploadID}
		}, 400, "INVALID_FILE_ID", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			up := e.initiate(t, alice, map[string]any{"fileName": "a.pdf", "fileSize": 40 * mib, "contentType": "application/pdf"})
			res := e.do(t, &tt.user, "POST", "/files/multipart/abort", tt.body(up))
			expect(t, res, tt.status, tt.code)
			if got := slices.Contains(e.store.aborted, up.UploadID); got != tt.wantAbort {
				t.Errorf("aborted = %v, want %v", got, tt.wantAbort)
			}
			if tt.status == 200 {
				var got abortResponse
				res.data(t, &got)
				if !got.Aborted {
					t.Errorf("response %s", res.Data)
				}
			}
			if tt.status == http.StatusForbidden && !slices.Equal(e.denied, []string{"upload"}) {
				t.Errorf("OnDenied %v", e.denied)
			}
		})
	}
}
