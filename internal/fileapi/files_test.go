package fileapi

import (
	"encoding/base64"
	"errors"
	"maps"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/caddy-upload-gateway/upload-gateway/internal/objectkey"
	"github.com/caddy-upload-gateway/upload-gateway/internal/policy"
)

// seed stores objects: alice's a.txt and b.txt, bob's c.txt.
func seed(e *env) {
	meta := func(owner, name string) map[string]string {
		return map[string]string{
			"original-name": objectkey.MetadataValue(name), "uploaded-by": owner, "user-role": "uploader",
			"sha256": "ab12", "project": objectkey.MetadataValue("Zürich"),
		}
	}
	e.store.objects["users/alice/1/a.txt"] = fakeObject{size: 1, ct: "text/plain", etag: `"e1"`, modified: testNow, meta: meta("alice", "../Ä a.txt")}
	e.store.objects["users/alice/2/b.txt"] = fakeObject{size: 2, ct: "text/plain", etag: `"e2"`, modified: testNow, meta: map[string]string{}}
	e.store.objects["users/alice/3/c.txt"] = fakeObject{size: 3, ct: "text/plain", etag: `"e3"`, modified: testNow}
	e.store.objects["users/alice/4/"] = fakeObject{}
	e.store.objects["users/bob/5/d.txt"] = fakeObject{size: 4, ct: "text/plain", etag: `"e4"`, modified: testNow, meta: meta("bob", "d.txt")}
}

func TestList(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		user       policy.Subject
		query      string
		status     int
		code       string
		wantPrefix string
		wantMax    int32
		wantToken  string
		wantKeys   []string
		wantNext   string
	}{
		{"own by default", alice, "", 200, "", "users/alice/", 100, "", []string{"users/alice/1/a.txt", "users/alice/2/b.txt", "users/alice/3/c.txt"}, ""},
		{"own, page 1", alice, "?scope=own&limit=2", 200, "", "users/alice/", 2, "", []string{"users/alice/1/a.txt", "users/alice/2/b.txt"}, "after:users/alice/2/b.txt"},
		{"own, page 2", alice, "?limit=2&cursor=" + url.QueryEscape("after:users/alice/2/b.txt"), 200, "", "users/alice/", 2, "after:users/alice/2/b.txt", []string{"users/alice/3/c.txt"}, ""},
		{"limit capped at 1000", alice, "?limit=5000", 200, "", "users/alice/", 1000, "", []string{"users/alice/1/a.txt", "users/alice/2/b.txt", "users/alice/3/c.txt"}, ""},
		{"admin lists all", ada, "?scope=all&limit=10", 200, "", "users/", 10, "", []string{"users/alice/1/a.txt", "users/alice/2/b.txt", "users/alice/3/c.txt", "users/bob/5/d.txt"}, ""},
		{"uploader may not list all", alice, "?scope=all", 403, "FORBIDDEN", "", 0, "", nil, ""},
		{"viewer lists own", vic, "", 200, "", "users/vic/", 100, "", []string{}, ""},
		{"bad scope", alice, "?scope=mine", 400, "BAD_REQUEST", "", 0, "", nil, ""},
		{"bad limit", alice, "?limit=ten", 400, "BAD_REQUEST", "", 0, "", nil, ""},
		{"zero limit", alice, "?limit=0", 400, "BAD_REQUEST", "", 0, "", nil, ""},
		{"forged cursor", alice, "?cursor=forged", 400, "BAD_REQUEST", "", 0, "", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			seed(e)
			res := e.do(t, &tt.user, "GET", "/files"+tt.query, nil)
			expect(t, res, tt.status, tt.code)
			if tt.status == 403 && !slices.Equal(e.denied, []string{"list"}) {
				t.Errorf("OnDenied %v", e.denied)
			}
			if tt.status != 200 {
				return
			}
			in := e.store.listed[0]
			if aws.ToString(in.Prefix) != tt.wantPrefix || aws.ToInt32(in.MaxKeys) != tt.wantMax || aws.ToString(in.ContinuationToken) != tt.wantToken {
				t.Errorf("ListObjectsV2Input prefix %q max %d token %q", aws.ToString(in.Prefix), aws.ToInt32(in.MaxKeys), aws.ToString(in.ContinuationToken))
			}
			var got listResponse
			res.data(t, &got)
			var keys []string
			for _, f := range got.Files {
				keys = append(keys, f.S3Key)
				if f.FileID != fileID(f.S3Key) || f.FileName != f.S3Key[len(f.S3Key)-5:] || !f.LastModified.Equal(testNow) || f.ETag[0] == '"' {
					t.Errorf("entry %+v", f)
				}
			}
			if keys == nil {
				keys = []string{}
			}
			if !slices.Equal(keys, tt.wantKeys) {
				t.Errorf("keys %v, want %v", keys, tt.wantKeys)
			}
			if next := aws.ToString(got.NextCursor); next != tt.wantNext {
				t.Errorf("nextCursor %q, want %q", next, tt.wantNext)
			}
			if got.Files == nil {
				t.Errorf("files is null")
			}
		})
	}
}

// TestFileIDTampering checks every route taking a fileId against ids that
// do not decode to a clean key under the base prefix.
func TestFileIDTampering(t *testing.T) {
	t.Parallel()
	ids := []struct {
		name   string
		id     string
		status int
		code   string
	}{
		{"not base64", "!!!", 400, "INVALID_FILE_ID"},
		{"line break appended", fileID("users/alice/1/a.txt") + "\n", 400, "INVALID_FILE_ID"},
		{"line break inside", fileID("users/alice/1/a.txt")[:6] + "\r\n" + fileID("users/alice/1/a.txt")[6:], 400, "INVALID_FILE_ID"},
		{"padded", base64.URLEncoding.EncodeToString([]byte("users/alice/1/a.txt")), 400, "INVALID_FILE_ID"},
		{"standard alphabet", base64.RawStdEncoding.EncodeToString([]byte("users/alice/1/a.txt?>")), 400, "INVALID_FILE_ID"},
		{"dot dot", fileID("users/alice/../bob/5/d.txt"), 400, "INVALID_FILE_ID"},
		{"dot dot at the end", fileID("users/alice/.."), 400, "INVALID_FILE_ID"},
		{"outside the base prefix", fileID("secrets/key.pem"), 400, "INVALID_FILE_ID"},
		{"base prefix look-alike", fileID("users-evil/alice/a.txt"), 400, "INVALID_FILE_ID"},
		{"base prefix itself", fileID("users"), 400, "INVALID_FILE_ID"},
		{"not clean: double slash", fileID("users/alice//1/a.txt"), 400, "INVALID_FILE_ID"},
		{"not clean: backslash", fileID(`users\alice\1\a.txt`), 400, "INVALID_FILE_ID"},
		{"not clean: control character", fileID("users/alice/1/a\x00.txt"), 400, "INVALID_FILE_ID"},
		{"invalid UTF-8", fileID("users/alice/\xff.txt"), 400, "INVALID_FILE_ID"},
		{"another user's file", fileID("users/bob/5/d.txt"), 403, "FORBIDDEN"},
	}
	routes := []struct{ name, method, suffix string }{
		{"details", "GET", ""},
		{"download", "GET", "/download-url"},
		{"delete", "DELETE", ""},
	}
	for _, rt := range routes {
		for _, tt := range ids {
			t.Run(rt.name+"/"+tt.name, func(t *testing.T) {
				e := newEnv(t)
				seed(e)
				res := e.do(t, &alice, rt.method, "/files/"+url.PathEscape(tt.id)+rt.suffix, nil)
				expect(t, res, tt.status, tt.code)
				if len(e.store.calls) != 0 || len(e.presigner.gets) != 0 {
					t.Errorf("S3 calls %v, presigned %d", e.store.calls, len(e.presigner.gets))
				}
			})
		}
	}
}

func TestHead(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		user   policy.Subject
		key    string
		status int
		code   string
		want   fileDetails
	}{
		{"owner", alice, "users/alice/1/a.txt", 200, "", fileDetails{
			S3Key: "users/alice/1/a.txt", FileName: "../Ä a.txt", Size: 1, ContentType: "text/plain", ETag: "e1",
			LastModified: testNow, SHA256: "ab12", UploadedBy: "alice", Metadata: map[string]string{"project": "Zürich"},
		}},
		{"no metadata: last segment", alice, "users/alice/2/b.txt", 200, "", fileDetails{
			S3Key: "users/alice/2/b.txt", FileName: "b.txt", Size: 2, ContentType: "text/plain", ETag: "e2",
			LastModified: testNow, Metadata: map[string]string{},
		}},
		{"admin reads anyone's", ada, "users/bob/5/d.txt", 200, "", fileDetails{
			S3Key: "users/bob/5/d.txt", FileName: "d.txt", Size: 4, ContentType: "text/plain", ETag: "e4",
			LastModified: testNow, SHA256: "ab12", UploadedBy: "bob", Metadata: map[string]string{"project": "Zürich"},
		}},
		{"uploader may not read another's", alice, "users/bob/5/d.txt", 403, "FORBIDDEN", fileDetails{}},
		{"viewer may not read another's", vic, "users/bob/5/d.txt", 403, "FORBIDDEN", fileDetails{}},
		{"missing", alice, "users/alice/9/gone.txt", 404, "FILE_NOT_FOUND", fileDetails{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			seed(e)
			res := e.do(t, &tt.user, "GET", "/files/"+fileID(tt.key), nil)
			expect(t, res, tt.status, tt.code)
			if tt.status != 200 {
				return
			}
			var got fileDetails
			res.data(t, &got)
			tt.want.FileID = fileID(tt.key)
			if !maps.Equal(got.Metadata, tt.want.Metadata) {
				t.Errorf("metadata %v, want %v", got.Metadata, tt.want.Metadata)
			}
			if !equalDetails(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// equalDetails compares everything but the metadata map.
func equalDetails(a, b fileDetails) bool {
	return a.FileID == b.FileID && a.S3Key == b.S3Key && a.FileName == b.FileName && a.Size == b.Size &&
		a.ContentType == b.ContentType && a.ETag == b.ETag && a.LastModified.Equal(b.LastModified) &&
		a.SHA256 == b.SHA256 && a.UploadedBy == b.UploadedBy
}

func TestDownloadURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		user     policy.Subject
		key      string
		status   int
		code     string
		wantName string
	}{
		{"owner, original name", alice, "users/alice/1/a.txt", 200, "", "../Ä a.txt"},
		{"admin", ada, "users/bob/5/d.txt", 200, "", "d.txt"},
		{"viewer, own file", vic, "users/vic/1/v.txt", 200, "", "v.txt"},
		{"other user", bob, "users/alice/1/a.txt", 403, "FORBIDDEN", ""},
		{"missing", alice, "users/alice/9/x.txt", 404, "FILE_NOT_FOUND", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			seed(e)
			e.store.objects["users/vic/1/v.txt"] = fakeObject{size: 1, modified: testNow}
			res := e.do(t, &tt.user, "GET", "/files/"+fileID(tt.key)+"/download-url", nil)
			expect(t, res, tt.status, tt.code)
			if tt.status != 200 {
				if len(e.presigner.gets) != 0 {
					t.Errorf("presigned a GET on failure")
				}
				return
			}
			var got downloadResponse
			res.data(t, &got)
			in := e.presigner.gets[0]
			if in.Bucket != "bucket" || in.Key != tt.key || in.FileName != tt.wantName || in.Expires != 15*time.Minute {
				t.Errorf("GetRequest %+v", in)
			}
			if got.DownloadURL == "" || got.FileName != tt.wantName || got.ExpiresIn != 900 {
				t.Errorf("response %+v", got)
			}
			if !slices.Equal(e.presigns, []string{"get"}) {
				t.Errorf("OnPresign %v", e.presigns)
			}
		})
	}
}

func TestDelete(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		user       policy.Subject
		key        string
		status     int
		code       string
		wantDelete bool
	}{
		{"owner", alice, "users/alice/1/a.txt", 200, "", true},
		{"owner, already gone", alice, "users/alice/9/x.txt", 200, "", true},
		{"admin", ada, "users/bob/5/d.txt", 200, "", true},
		{"other uploader", alice, "users/bob/5/d.txt", 403, "FORBIDDEN", false},
		{"viewer, own prefix", vic, "users/vic/1/v.txt", 403, "FORBIDDEN", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			seed(e)
			res := e.do(t, &tt.user, "DELETE", "/files/"+fileID(tt.key), nil)
			expect(t, res, tt.status, tt.code)
			if got := slices.Contains(e.store.calls, "DeleteObject "+tt.key); got != tt.wantDelete {
				t.Errorf("DeleteObject called = %v, want %v (calls %v)", got, tt.wantDelete, e.store.calls)
			}
			if tt.status == 403 && !slices.Equal(e.denied, []string{"delete"}) {
				t.Errorf("OnDenied %v", e.denied)
			}
			if tt.status == 200 {
				var got deleteResponse
				res.data(t, &got)
				if !got.Deleted || got.FileID != fileID(tt.key) {
					t.Errorf("response %+v", got)
				}
			}
		})
	}
}

func TestDeleteStorageError(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.store.errs["DeleteObject"] = errors.New("SlowDown")
	res := e.do(t, &alice, "DELETE", "/files/"+fileID("users/alice/1/a.txt"), nil)
	expect(t, res, 502, "STORAGE_ERROR")
}
