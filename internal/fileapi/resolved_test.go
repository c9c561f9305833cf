package fileapi

import (
	"github.com/caddy-upload-gateway/upload-gateway/internal/policy"

	"testing"
)

// Every request reports the key it actually acted on (and the upload id of
// a multipart upload) for the audit log; a fileId the API refuses reports
// nothing, so a client cannot write what it likes into the log.
func TestRequestsReportTheResolvedKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.store.objects["users/alice/1/a.txt"] = fakeObject{size: 1, ct: "text/plain", etag: `"e1"`, modified: testNow}
	up := e.initiate(t, alice, map[string]any{"fileName": "big.pdf", "fileSize": 6 * mib, "contentType": "application/pdf"})
	if e.resolved.Key != up.S3Key || e.resolved.UploadID != up.UploadID {
		t.Fatalf("initiate resolved %+v, want %s %s", e.resolved, up.S3Key, up.UploadID)
	}
	aliceFile := fileID("users/alice/1/a.txt")
	outside := fileID("elsewhere/secret.txt")

	tests := []struct {
		name         string
		user         policy.Subject
		method, path string
		body         any
		status       int
		wantKey      string
		wantUpload   string
	}{
		{"upload-url resolves the new key", alice, "POST", "/files/upload-url",
			map[string]any{"fileName": "n.txt", "fileSize": 3, "contentType": "text/plain"}, 200,
			"users/alice/00000000-0000-0000-0000-000000000002/n.txt", ""},
		{"upload-post resolves the new key", alice, "POST", "/files/upload-post",
			map[string]any{"fileName": "p.txt", "contentType": "text/plain"}, 200,
			"users/alice/00000000-0000-0000-0000-000000000003/p.txt", ""},
		{"a denied upload still names the key it would have had", vic, "POST", "/files/upload-url",
			map[string]any{"fileName": "v.txt", "fileSize": 3, "contentType": "text/plain"}, 403,
			"users/vic/00000000-0000-0000-0000-000000000004/v.txt", ""},
		{"download-url", alice, "GET", "/files/" + aliceFile + "/download-url", nil, 200, "users/alice/1/a.txt", ""},
		{"details", alice, "GET", "/files/" + aliceFile, nil, 200, "users/alice/1/a.txt", ""},
		{"a denied download names the file asked for", bob, "GET", "/files/" + aliceFile + "/download-url", nil, 403, "users/alice/1/a.txt", ""},
		{"delete", alice, "DELETE", "/files/" + aliceFile, nil, 200, "users/alice/1/a.txt", ""},
		{"sign-parts", alice, "POST", "/files/multipart/sign-parts",
			map[string]any{"fileId": up.FileID, "uploadId": up.UploadID, "uploadToken": up.UploadToken, "partNumbers": []int{1}}, 200,
			up.S3Key, up.UploadID},
		{"sign-parts with a forged upload id names no upload", alice, "POST", "/files/multipart/sign-parts",
			map[string]any{"fileId": up.FileID, "uploadId": "forged", "uploadToken": up.UploadToken, "partNumbers": []int{1}}, 403,
			up.S3Key, ""},
		{"abort", alice, "POST", "/files/multipart/abort", map[string]any{"fileId": up.FileID, "uploadId": up.UploadID}, 200, up.S3Key, up.UploadID},
		{"a fileId outside the prefix resolves nothing", ada, "GET", "/files/" + outside + "/download-url", nil, 400, "", ""},
		{"garbage fileId resolves nothing", ada, "DELETE", "/files/not-base64!", nil, 400, "", ""},
		{"a route name is no fileId", ada, "GET", "/files/upload-url", nil, 405, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.do(t, &tt.user, tt.method, tt.path, tt.body)
			if res.status != tt.status {
				t.Fatalf("status %d %s, want %d", res.status, res.Error.Code, tt.status)
			}
			if e.resolved.Key != tt.wantKey || e.resolved.UploadID != tt.wantUpload {
				t.Errorf("resolved %+v, want key %q upload %q", e.resolved, tt.wantKey, tt.wantUpload)
			}
		})
	}
}
