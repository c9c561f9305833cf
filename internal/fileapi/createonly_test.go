package fileapi

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// When the server honours If-None-Match, upload URLs ask for it and
// multipart uploads are completed with it; otherwise neither does.
func TestCreateOnlyWrites(t *testing.T) {
	t.Parallel()
	for _, supported := range []bool{false, true} {
		e := newEnv(t, func(c *Config) {
			c.CreateOnly = func(context.Context) bool { return supported }
		})
		expect(t, e.do(t, &alice, "POST", "/files/upload-url", map[string]any{"fileName": "a.txt", "fileSize": 3, "contentType": "text/plain"}), 200, "")
		if got := e.presigner.puts[0].CreateOnly; got != supported {
			t.Errorf("supported %v: PutRequest.CreateOnly %v", supported, got)
		}
		up := e.initiate(t, alice, map[string]any{"fileName": "a.pdf", "fileSize": 20 * mib, "contentType": "application/pdf"})
		e.store.addParts(up.UploadID, 16*mib, 4*mib)
		expect(t, e.do(t, &alice, "POST", "/files/multipart/complete", map[string]any{"fileId": up.FileID, "uploadId": up.UploadID, "uploadToken": up.UploadToken}), 200, "")
		if got := aws.ToString(e.store.completed[0].IfNoneMatch); (got == "*") != supported {
			t.Errorf("supported %v: CompleteMultipartUpload If-None-Match %q", supported, got)
		}
	}
	e := newEnv(t) // no CreateOnly at all
	expect(t, e.do(t, &alice, "POST", "/files/upload-url", map[string]any{"fileName": "a.txt", "fileSize": 3, "contentType": "text/plain"}), 200, "")
	if e.presigner.puts[0].CreateOnly {
		t.Error("create-only without Config.CreateOnly")
	}
}

// A multipart upload whose key is already taken is refused with 409 and
// aborted, so its parts do not linger.
func TestCompleteOfATakenKeyIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.CreateOnly = func(context.Context) bool { return true } })
	up := e.initiate(t, alice, map[string]any{"fileName": "a.pdf", "fileSize": 20 * mib, "contentType": "application/pdf"})
	e.store.addParts(up.UploadID, 16*mib, 4*mib)
	e.store.objects[up.S3Key] = fakeObject{size: 1, etag: `"first"`, modified: testNow}
	res := e.do(t, &alice, "POST", "/files/multipart/complete", map[string]any{"fileId": up.FileID, "uploadId": up.UploadID, "uploadToken": up.UploadToken})
	expect(t, res, 409, "FILE_EXISTS")
	if e.store.objects[up.S3Key].etag != `"first"` {
		t.Errorf("the object was replaced: %+v", e.store.objects[up.S3Key])
	}
	if len(e.store.aborted) != 1 || e.store.aborted[0] != up.UploadID {
		t.Errorf("aborted %v, want %s", e.store.aborted, up.UploadID)
	}
	for _, status := range e.errors {
		if status >= 500 {
			t.Errorf("reported status %d", status)
		}
	}
}
