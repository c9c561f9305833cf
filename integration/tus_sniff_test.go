//go:build integration

package integration_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// TestTusContentSniffing: with allowed_types, a tus upload's declared
// type must be allowed at creation (415, nothing created), and its first
// bytes are sniffed as streamed uploads' are, whatever PATCHes carry
// them: an executable declared image/png is refused with 415 once 4 KiB
// of it have arrived on another instance, and the upload is gone from S3
// (multipart upload aborted, tail, lock and open marker removed). A PNG
// declared image/png is stored with that type, SSE-KMS.
func TestTusContentSniffing(t *testing.T) {
	// arrange
	gws, prefix, temp := tusGateways(t, 2, "allowed_types image/* text/plain", "max_open_uploads 5")
	filetype := func(mt string) string { return "filetype " + base64.StdEncoding.EncodeToString([]byte(mt)) }
	exe := fileBytes(t, elfMagic, 51, 9*mib)
	img := fileBytes(t, pngMagic, 52, 9*mib)

	// act: creation with a type that is not allowed
	pdf := tusRequest(t, gws[0], http.MethodPost, gws[0].URL+"/tus/", nil, "Upload-Length", "10", "Upload-Metadata", filetype("application/pdf"))
	untyped := tusRequest(t, gws[0], http.MethodPost, gws[0].URL+"/tus/", nil, "Upload-Length", "10")

	// assert
	if pdf.StatusCode != http.StatusUnsupportedMediaType || untyped.StatusCode != http.StatusUnsupportedMediaType || pdf.Header.Get("Location") != "" {
		t.Fatalf("creation declared application/pdf: %d, undeclared: %d (Location %q), want 415 and none", pdf.StatusCode, untyped.StatusCode, pdf.Header.Get("Location"))
	}
	if uploads, objects, _ := env.Leftovers(context.Background(), prefix); len(uploads)+len(objects) > 0 {
		t.Fatalf("refused creations left %v %v", uploads, objects)
	}

	// act: an executable declared image/png, its first 4 KiB in two PATCHes
	created := tusRequest(t, gws[0], http.MethodPost, gws[0].URL+"/tus/", nil, "Upload-Length", strconv.Itoa(len(exe)), "Upload-Metadata", filetype("image/png"))
	if created.StatusCode != http.StatusCreated {
		t.Fatalf("POST: %d", created.StatusCode)
	}
	path := strings.TrimPrefix(created.Header.Get("Location"), gws[0].URL)
	first := tusRequest(t, gws[0], http.MethodPatch, gws[0].URL+path, exe[:1000], "Upload-Offset", "0")
	second := tusRequest(t, gws[1], http.MethodPatch, gws[1].URL+path, exe[1000:6*mib], "Upload-Offset", "1000")

	// assert
	if first.StatusCode != http.StatusNoContent || second.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("PATCHes of an executable declared image/png: %d then %d, want 204 (too short to sniff) then 415", first.StatusCode, second.StatusCode)
	}
	if resp := tusHead(t, gws[0], gws[0].URL+path, "alice"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("HEAD of the refused upload: %d, want 404", resp.StatusCode)
	}
	assertNothingLeft(t, temp)
	assertNothingLeft(t, prefix)

	// act: a PNG declared image/png, with creation-with-upload
	withBody := tusRequest(t, gws[1], http.MethodPost, gws[1].URL+"/tus/", img[:6*mib], "Upload-Length", strconv.Itoa(len(img)),
		"Upload-Metadata", filetype("image/png"), "Content-Type", "application/offset+octet-stream")
	if withBody.StatusCode != http.StatusCreated || withBody.Header.Get("Upload-Offset") != strconv.Itoa(6*mib) {
		t.Fatalf("POST with a PNG body: %d offset %q", withBody.StatusCode, withBody.Header.Get("Upload-Offset"))
	}
	path = strings.TrimPrefix(withBody.Header.Get("Location"), gws[1].URL)
	if resp := tusRequest(t, gws[0], http.MethodPatch, gws[0].URL+path, img[6*mib:], "Upload-Offset", strconv.Itoa(6*mib)); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("last PATCH of the PNG: %d", resp.StatusCode)
	}

	// assert
	key := onlyObject(t, prefix)
	head := assertEncrypted(t, key)
	if aws.ToString(head.ContentType) != "image/png" {
		t.Errorf("stored Content-Type %q, want image/png", aws.ToString(head.ContentType))
	}
	assertSHA256Tags(t, key, img)
	assertNothingLeft(t, temp)
	_, _ = env.S3().DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: &env.Bucket, Key: &key})
}
