package fileapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/caddy-upload-gateway/upload-gateway/internal/policy"
	"github.com/caddy-upload-gateway/upload-gateway/internal/s3limits"
)

// answer is a response of a Companion or signRequest route.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// json decodes a 200 answer into v; anything else fails the test.
func (a answer) json(t *testing.T, v any) {
	t.Helper()
	if a.status != http.StatusOK {
		t.Fatalf("status %d, body %s", a.status, a.body)
	}
	if err := json.Unmarshal(a.body, v); err != nil {
		t.Fatalf("decoding %s: %v", a.body, err)
	}
}

// code is the error code of a failed answer (the envelope).
func (a answer) code(t *testing.T) string {
	t.Helper()
	var env result
	if err := json.Unmarshal(a.body, &env); err != nil || env.Success {
		t.Fatalf("status %d: body %s is not an error envelope", a.status, a.body)
	}
	return env.Error.Code
}

// raw sends a request as user (nil: none) with the given headers; a body
// that is not a string is sent as JSON.
func (e *env) raw(t *testing.T, user *policy.Subject, method, target string, body any, header map[string]string) answer {
	t.Helper()
	var b []byte
	switch v := body.(type) {
	case nil:
	case string:
		b = []byte(v)
	default:
		b, _ = json.Marshal(v)
	}
	r := httptest.NewRequest(method, target, bytes.NewReader(b))
	if body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		r.Header.Set(k, v)
	}
	if user != nil {
		r = r.WithContext(WithSubject(r.Context(), *user))
	}
	e.resolved = Resolved{}
	r = r.WithContext(WithResolved(r.Context(), &e.resolved))
	w := httptest.NewRecorder()
	e.svc.ServeHTTP(w, r)
	return answer{status: w.Code, header: w.Header(), body: w.Body.Bytes()}
}

// companionCreate starts a Companion multipart upload of alice's.
func (e *env) companionCreate(t *testing.T, user policy.Subject) companionCreateResponse {
	t.Helper()
	var c companionCreateResponse
	e.raw(t, &user, http.MethodPost, "/s3/multipart",
		map[string]any{"filename": "holiday.png", "type": "image/png", "metadata": map[string]any{"name": "holiday.png", "relativePath": nil, "camera": "x100"}}, nil).json(t, &c)
	return c
}

func q(key string) string { return "?" + url.Values{"key": {key}}.Encode() }

func TestCompanionParams(t *testing.T) {
	e := newEnv(t)
	var got companionParamsResponse
	e.raw(t, &alice, http.MethodGet, "/s3/params?filename=cat.png&type=image%2Fpng&metadata%5Bname%5D=cat.png&metadata%5Bcaption%5D=hi", nil, nil).json(t, &got)
	if got.Method != http.MethodPost || got.URL != "https://s3.test/" || got.Fields["key"] != got.Key ||
		!strings.HasPrefix(got.Key, "users/alice/") || !strings.HasSuffix(got.Key, "/cat.png") || got.FileID != fileID(got.Key) || got.Expires != 900 {
		t.Fatalf("params: %+v", got)
	}
	p := e.presigner.posts[0]
	if p.ContentType != "image/png" || p.MinSize != 0 || p.MaxSize != DefaultMaxSingleSize || p.Encryption.Mode != "aws:kms" ||
		p.Metadata["caption"] != "hi" || p.Metadata[s3limits.MetaUploadedBy] != "alice" {
		t.Errorf("signed POST policy %+v", p)
	}
	if e.resolved.Route != "GET /s3/params" || e.resolved.Action != "upload_post" || e.resolved.Key != got.Key {
		t.Errorf("resolved %+v", e.resolved)
	}

	for _, tc := range []struct {
		name   string
		user   *policy.Subject
		target string
		status int
		code   string
	}{
		{"no user", nil, "/s3/params?filename=a.png&type=image/png", 401, "UNAUTHENTICATED"},
		{"viewer", &vic, "/s3/params?filename=a.png&type=image/png", 403, "FORBIDDEN"},
		{"no file name", &alice, "/s3/params?type=image/png", 400, "BAD_REQUEST"},
		{"type not allowed", &alice, "/s3/params?filename=a.exe&type=application/x-msdownload", 415, "CONTENT_TYPE_NOT_ALLOWED"},
		{"bad metadata name", &alice, "/s3/params?filename=a.png&type=image/png&metadata%5Bb%20c%5D=1", 400, "INVALID_METADATA"},
		{"wrong method", &alice, "/s3/params", 405, "METHOD_NOT_ALLOWED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := http.MethodGet
			if tc.status == 405 {
				method = http.MethodPut
			}
			a := e.raw(t, tc.user, method, tc.target, nil, nil)
			if a.status != tc.status || a.code(t) != tc.code {
				t.Errorf("got %d %s, want %d %s", a.status, a.body, tc.status, tc.code)
			}
		})
	}
}

// Uppy's whole Companion multipart flow: the upload id is the sealed
// token, part URLs are unbound (Uppy never says the size), and complete
// lists the parts itself, ignoring the client's list.
func TestCompanionMultipart(t *testing.T) {
	e := newEnv(t)
	c := e.companionCreate(t, alice)
	if !strings.HasPrefix(c.Key, "users/alice/") || c.Bucket != "bucket" || c.FileID != fileID(c.Key) || !strings.HasPrefix(c.UploadID, "v1.") {
		t.Fatalf("create: %+v", c)
	}
	in := e.store.created[0]
	if aws.ToString(in.ContentType) != "image/png" || in.ServerSideEncryption != "aws:kms" || in.Metadata["camera"] != "x100" || in.Metadata[s3limits.MetaOriginalName] != "holiday.png" {
		t.Errorf("CreateMultipartUpload %+v", in)
	}
	if _, ok := in.Metadata["relativepath"]; ok {
		t.Errorf("a null metadata member was stored: %v", in.Metadata)
	}
	if e.resolved.Action != "multipart_initiate" || e.resolved.UploadID != "upload-1" {
		t.Errorf("resolved %+v", e.resolved)
	}
	base := "/s3/multipart/" + url.PathEscape(c.UploadID)

	var part companionPartResponse
	e.raw(t, &alice, http.MethodGet, base+"/2"+q(c.Key), nil, nil).json(t, &part)
	if p := e.presigner.parts[0]; part.URL == "" || p.PartNumber != 2 || p.UploadID != "upload-1" || p.ContentLength != 0 || p.Key != c.Key {
		t.Errorf("part URL %+v, signed %+v", part, p)
	}

	e.store.addParts("upload-1", 5*mib, 5*mib, 2*mib)
	var parts []companionPart
	e.raw(t, &alice, http.MethodGet, base+q(c.Key), nil, nil).json(t, &parts)
	if len(parts) != 3 || parts[0].PartNumber != 1 || parts[0].ETag != "etag-1" || parts[2].Size != 2*mib {
		t.Errorf("parts %+v", parts)
	}

	var done companionCompleteResponse
	// The client's list names one part: it is not read.
	e.raw(t, &alice, http.MethodPost, base+"/complete"+q(c.Key), map[string]any{"parts": []map[string]any{{"PartNumber": 1, "ETag": "etag-1"}}}, nil).json(t, &done)
	if done.Key != c.Key || done.Size != 12*mib || done.Bucket != "bucket" || done.Location == "" || done.FileID != c.FileID {
		t.Errorf("complete %+v", done)
	}
	if got := len(e.store.completed[0].MultipartUpload.Parts); got != 3 {
		t.Errorf("completed with %d parts, want the 3 S3 has", got)
	}
	if e.resolved.Action != "multipart_complete" || e.resolved.UploadID != "upload-1" {
		t.Errorf("resolved %+v", e.resolved)
	}
	// Counted as every completion is (the same completeUpload).
	if u := e.resolved.Upload; u == nil || u.Method != MethodMultipart || !u.Stored || u.Bytes != 12*mib || u.Parts != 3 {
		t.Errorf("upload outcome %+v", u)
	}
}

// Part sizes are checked on complete: all but the last as large as the
// first (and at least 5 MiB), the last no larger, no gaps, within the
// limit. A mismatch aborts the upload.
func TestCompanionCompleteChecksParts(t *testing.T) {
	for _, tc := range []struct {
		name   string
		sizes  []int64
		status int
		code   string
	}{
		{"one small part", []int64{1000}, 200, ""},
		{"even parts", []int64{6 * mib, 6 * mib, 6 * mib}, 200, ""},
		{"a middle part shorter", []int64{5 * mib, 4 * mib, 1 * mib}, 400, "PARTS_MISMATCH"},
		{"last part longer", []int64{5 * mib, 6 * mib}, 400, "PARTS_MISMATCH"},
		{"first part below S3's minimum", []int64{mib, mib}, 400, "PARTS_MISMATCH"},
		{"no parts", nil, 400, "PARTS_MISMATCH"},
		{"over the limit", []int64{8 * mib, 8 * mib, 8 * mib}, 413, "FILE_TOO_LARGE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.MaxFileSize = 20 * mib })
			c := e.companionCreate(t, alice)
			e.store.addParts("upload-1", tc.sizes...)
			a := e.raw(t, &alice, http.MethodPost, "/s3/multipart/"+url.PathEscape(c.UploadID)+"/complete"+q(c.Key), "{}", nil)
			if a.status != tc.status {
				t.Fatalf("got %d %s, want %d", a.status, a.body, tc.status)
			}
			if tc.status != 200 {
				if a.code(t) != tc.code || len(e.store.aborted) != 1 || len(e.store.completed) != 0 {
					t.Errorf("code %s, aborted %v, completed %d", a.code(t), e.store.aborted, len(e.store.completed))
				}
			}
		})
	}
}

// An upload id that is not the gateway's token for this key and user is
// refused before S3 is asked.
func TestCompanionRefusesTokens(t *testing.T) {
	e := newEnv(t)
	c := e.companionCreate(t, alice)
	claims, err := e.svc.parseToken(c.UploadID)
	if err != nil {
		t.Fatal(err)
	}
	other := newEnv(t, func(cfg *Config) { cfg.Secret = []byte("another secret, 32 bytes or more!!") })
	expired := claims
	expired.Expires = testNow.Add(-time.Second).Unix()
	sized := tamper(t, c.UploadID, func(u *uploadClaims) { u.FileSize = 100 })
	for _, tc := range []struct {
		name          string
		user          policy.Subject
		uploadID, key string
		status        int
		code          string
	}{
		{"tampered payload", alice, sized, c.Key, 403, "INVALID_UPLOAD_TOKEN"},
		{"tampered signature", alice, c.UploadID[:len(c.UploadID)-2] + "AA", c.Key, 403, "INVALID_UPLOAD_TOKEN"},
		{"another secret", alice, other.svc.signToken(claims), c.Key, 403, "INVALID_UPLOAD_TOKEN"},
		{"S3's raw upload id", alice, "upload-1", c.Key, 403, "INVALID_UPLOAD_TOKEN"},
		{"another key", alice, c.UploadID, "users/alice/other/x.png", 403, "INVALID_UPLOAD_TOKEN"},
		{"another user", bob, c.UploadID, c.Key, 403, "FORBIDDEN"},
		{"expired", alice, e.svc.signToken(expired), c.Key, 403, "UPLOAD_TOKEN_EXPIRED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.store.addParts("upload-1", 1000)
			for _, target := range []string{
				"/s3/multipart/" + url.PathEscape(tc.uploadID) + "/1" + q(tc.key),
				"/s3/multipart/" + url.PathEscape(tc.uploadID) + q(tc.key),
			} {
				if a := e.raw(t, &tc.user, http.MethodGet, target, nil, nil); a.status != tc.status || a.code(t) != tc.code {
					t.Errorf("GET %s: %d %s, want %d %s", target, a.status, a.body, tc.status, tc.code)
				}
			}
			a := e.raw(t, &tc.user, http.MethodPost, "/s3/multipart/"+url.PathEscape(tc.uploadID)+"/complete"+q(tc.key), "{}", nil)
			if a.status != tc.status || a.code(t) != tc.code {
				t.Errorf("complete: %d %s, want %d %s", a.status, a.body, tc.status, tc.code)
			}
			if len(e.store.completed) != 0 || len(e.store.aborted) != 0 {
				t.Errorf("S3 completed %d, aborted %v", len(e.store.completed), e.store.aborted)
			}
		})
	}

	// The owner may abort with an expired token, another user may not.
	if a := e.raw(t, &bob, http.MethodDelete, "/s3/multipart/"+url.PathEscape(c.UploadID)+q(c.Key), nil, nil); a.status != 403 {
		t.Errorf("bob's abort: %d %s", a.status, a.body)
	}
	if a := e.raw(t, &alice, http.MethodDelete, "/s3/multipart/"+url.PathEscape(e.svc.signToken(expired))+q(c.Key), nil, nil); a.status != 200 || string(a.body) != "{}\n" {
		t.Errorf("abort: %d %s", a.status, a.body)
	}
	if len(e.store.aborted) != 1 || e.resolved.Action != "multipart_abort" {
		t.Errorf("aborted %v, resolved %+v", e.store.aborted, e.resolved)
	}
}

// Part numbers whose parts could only exceed the limit are not signed.
func TestCompanionPartNumbers(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxFileSize = 12 * mib })
	c := e.companionCreate(t, alice)
	base := "/s3/multipart/" + url.PathEscape(c.UploadID) + "/"
	for _, tc := range []struct {
		num    string
		status int
	}{{"1", 200}, {"3", 200}, {"4", 413}, {"0", 400}, {"10001", 400}, {"x", 400}} {
		if a := e.raw(t, &alice, http.MethodGet, base+tc.num+q(c.Key), nil, nil); a.status != tc.status {
			t.Errorf("part %s: %d %s, want %d", tc.num, a.status, a.body, tc.status)
		}
	}
}

// The signRequest route: the key Uppy proposes only names the file; the
// gateway chooses the key. Single uploads get a POST policy; multipart
// requests but parts go to the gateway's own XML routes.
func TestSignRequest(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.BasePath = "/api" })
	bearer := map[string]string{"Authorization": "Bearer t0ken", "Origin": "https://app.example"}
	sign := func(t *testing.T, user policy.Subject, body map[string]any) signResponse {
		t.Helper()
		var out signResponse
		e.raw(t, &user, http.MethodPost, "/s3/sign", body, bearer).json(t, &out)
		return out
	}

	put := sign(t, alice, map[string]any{"method": "PUT", "key": "0b6e1f5c-51f3-4b5c-9a3e-2f1c9d0e7a61-cat.png", "contentType": "image/png"})
	if !strings.HasPrefix(put.Key, "users/alice/") || !strings.HasSuffix(put.Key, "/cat.png") || put.Fields["key"] != put.Key || put.URL != "https://s3.test/" {
		t.Errorf("single upload: %+v", put)
	}
	if e.resolved.Action != "upload_post" {
		t.Errorf("resolved %+v", e.resolved)
	}

	create := sign(t, alice, map[string]any{"method": "POST", "key": "0b6e1f5c-51f3-4b5c-9a3e-2f1c9d0e7a61-movie.png"})
	u, err := url.Parse(create.URL)
	if err != nil || u.Host != "example.com" || u.Path != "/api/s3/sign/uploads" || !strings.HasSuffix(create.Key, "/movie.png") ||
		create.Headers["Authorization"] != "Bearer t0ken" || len(e.store.created) != 0 {
		t.Fatalf("create: %+v", create)
	}
	// Another user cannot use the ticket.
	if a := e.raw(t, &bob, http.MethodPost, "/s3/sign/uploads?"+u.RawQuery, "", map[string]string{"Content-Type": "image/png"}); a.status != 403 {
		t.Errorf("bob's create: %d %s", a.status, a.body)
	}
	if a := e.raw(t, &alice, http.MethodPost, "/s3/sign/uploads?"+u.RawQuery, "", map[string]string{"Content-Type": "application/x-msdownload"}); a.status != 415 {
		t.Errorf("create with a refused type: %d %s", a.status, a.body)
	}
	a := e.raw(t, &alice, http.MethodPost, "/s3/sign/uploads?"+u.RawQuery, "", map[string]string{"Content-Type": "image/png"})
	m := regexp.MustCompile(`^<InitiateMultipartUploadResult><Bucket>bucket</Bucket><Key>(.+)</Key><UploadId>(v1\.[^<]+)</UploadId></InitiateMultipartUploadResult>$`).FindStringSubmatch(string(a.body))
	if a.status != 200 || a.header.Get("Content-Type") != "application/xml" || m == nil || m[1] != create.Key {
		t.Fatalf("XML create: %d %s", a.status, a.body)
	}
	uploadID := m[2]
	if ct := aws.ToString(e.store.created[0].ContentType); ct != "image/png" || e.store.created[0].ServerSideEncryption != "aws:kms" {
		t.Errorf("created with type %s, %+v", ct, e.store.created[0])
	}

	part := sign(t, alice, map[string]any{"method": "PUT", "key": create.Key, "uploadId": uploadID, "partNumber": 1})
	if !strings.HasPrefix(part.URL, "https://s3.test/") || part.Headers != nil || e.presigner.parts[0].UploadID != "upload-1" {
		t.Errorf("part: %+v", part)
	}
	e.store.addParts("upload-1", 5*mib, 1*mib)
	list := sign(t, alice, map[string]any{"method": "GET", "key": create.Key, "uploadId": uploadID})
	lu, _ := url.Parse(list.URL)
	a = e.raw(t, &alice, http.MethodGet, lu.RequestURI()[len("/api"):], nil, nil)
	if a.status != 200 || !strings.Contains(string(a.body), "<Part><PartNumber>2</PartNumber><ETag>etag-2</ETag><Size>1048576</Size></Part>") {
		t.Errorf("XML list: %d %s", a.status, a.body)
	}
	done := sign(t, alice, map[string]any{"method": "POST", "key": create.Key, "uploadId": uploadID})
	du, _ := url.Parse(done.URL)
	a = e.raw(t, &alice, http.MethodPost, du.RequestURI()[len("/api"):], "<CompleteMultipartUpload></CompleteMultipartUpload>", map[string]string{"Content-Type": "application/xml"})
	if a.status != 200 || !strings.Contains(string(a.body), "<Key>"+create.Key+"</Key>") || !strings.Contains(string(a.body), "<Location>") || len(e.store.completed) != 1 {
		t.Errorf("XML complete: %d %s", a.status, a.body)
	}
	if u := e.resolved.Upload; u == nil || !u.Stored || u.Bytes != 6*mib || e.resolved.Action != "multipart_complete" {
		t.Errorf("upload outcome %+v, resolved %+v", u, e.resolved)
	}

	for _, tc := range []struct {
		name string
		body map[string]any
		code string
	}{
		{"delete object", map[string]any{"method": "DELETE", "key": "x"}, "BAD_REQUEST"},
		{"part without number", map[string]any{"method": "PUT", "key": create.Key, "uploadId": uploadID}, "BAD_REQUEST"},
		{"forged upload id", map[string]any{"method": "PUT", "key": create.Key, "uploadId": "upload-1", "partNumber": 1}, "INVALID_UPLOAD_TOKEN"},
		{"type not allowed", map[string]any{"method": "PUT", "key": "a.exe", "contentType": "application/x-msdownload"}, "CONTENT_TYPE_NOT_ALLOWED"},
	} {
		if a := e.raw(t, &alice, http.MethodPost, "/s3/sign", tc.body, nil); a.status == 200 || a.code(t) != tc.code {
			t.Errorf("%s: %d %s, want %s", tc.name, a.status, a.body, tc.code)
		}
	}
}

// Seed-style clients read each part URL as uploadUrl; sign_all_parts
// signs every part of a file with up to that many parts at initiate.
func TestInitiateSignAllParts(t *testing.T) {
	for _, tc := range []struct {
		name     string
		signAll  int
		fileSize int64
		want     int
	}{
		{"part batch", 0, 50 * 5 * mib, DefaultPartBatch},
		{"all parts", 60, 50 * 5 * mib, 50},
		{"bounded", 30, 50 * 5 * mib, 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.SignAllParts = tc.signAll })
			got := e.initiate(t, alice, map[string]any{"fileName": "a.png", "fileSize": tc.fileSize, "contentType": "image/png", "partSize": 5 * mib})
			if len(got.PartURLs) != tc.want {
				t.Fatalf("%d part URLs, want %d", len(got.PartURLs), tc.want)
			}
			for _, p := range got.PartURLs {
				if p.UploadURL == "" || p.UploadURL != p.URL {
					t.Fatalf("part %d: uploadUrl %q, url %q", p.PartNumber, p.UploadURL, p.URL)
				}
			}
		})
	}
	if _, err := New(Config{Bucket: "b", Store: newFakeStore(), Presigner: &fakePresigner{}, Credentials: userCredentials,
		Authorizer: &fakeAuth{}, Secret: testSecret, SignAllParts: MaxSignAllParts + 1}); err == nil {
		t.Error("New accepted SignAllParts above the bound")
	}
}
