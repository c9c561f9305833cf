package s3sink

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

func client(srv *httptest.Server) *s3.Client {
	return s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
		HTTPClient:   srv.Client(),
	})
}

// The SDK's own uploads (signed payloads over HTTP, aws-chunked trailers
// over HTTPS, single and multipart) pass the sink's checks.
func TestSDKUploadsPass(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 12<<20/16+3)
	for _, tls := range []bool{false, true} {
		for _, size := range []int{1000, len(body)} {
			sink := New()
			var srv *httptest.Server
			if tls {
				srv = httptest.NewTLSServer(sink)
			} else {
				srv = httptest.NewServer(sink)
			}
			up := manager.NewUploader(client(srv), func(u *manager.Uploader) { u.PartSize = 5 << 20 })
			_, err := up.Upload(context.Background(), &s3.PutObjectInput{
				Bucket: aws.String("b"), Key: aws.String("k"), Body: bytes.NewReader(body[:size]),
				ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c,
			})
			srv.Close()
			if err != nil {
				t.Fatalf("tls=%v size=%d: %v", tls, size, err)
			}
			if got := sink.Bytes.Load(); got != int64(size) {
				t.Errorf("tls=%v: sink got %d bytes, want %d", tls, got, size)
			}
		}
	}
}

// A body that does not match its checksum, or its signed payload hash, is
// refused.
func TestBadBodiesAreRefused(t *testing.T) {
	srv := httptest.NewServer(New())
	defer srv.Close()
	tests := []struct{ name, header, value, want string }{
		{"bad crc32c", "X-Amz-Checksum-Crc32c", "AAAAAA==", "BadDigest"},
		{"bad payload hash", "X-Amz-Content-Sha256", strings.Repeat("0", 64), "XAmzContentSHA256Mismatch"},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(http.MethodPut, srv.URL+"/b/k", strings.NewReader("hello"))
		req.Header.Set(tt.header, tt.value)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(b.String(), tt.want) {
			t.Errorf("%s: status %d %s, want 400 %s", tt.name, resp.StatusCode, b.String(), tt.want)
		}
	}
}
