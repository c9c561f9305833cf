package s3stream

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/caddy-upload-gateway/upload-gateway/internal/s3limits"
)

// sentRequest is what the recording S3 server saw of one request.
type sentRequest struct {
	op            string // PutObject, UploadPart, ...
	encoding      string // Content-Encoding (aws-chunked for trailers)
	payloadHash   string // X-Amz-Content-Sha256
	checksumCRC   string // X-Amz-Checksum-Crc32c
	checksumSHA   string // X-Amz-Checksum-Sha256
	bodySHA256    string
	bodyCRC32C    string
	bodySHA256B64 string
}

// recordingS3 answers just enough of the S3 API for an upload and records
// the signing headers of every request, so that the test sees what the real
// SDK sends.
func recordingS3(t *testing.T) (*httptest.Server, func() []sentRequest) {
	t.Helper()
	return recordingS3With(t, httptest.NewServer)
}

func recordingS3With(t *testing.T, newServer func(http.Handler) *httptest.Server) (*httptest.Server, func() []sentRequest) {
	t.Helper()
	var mu sync.Mutex
	var sent []sentRequest
	srv := newServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		q := r.URL.Query()
		op := "other"
		switch {
		case r.Method == http.MethodPost && q.Has("uploads"):
			op = "CreateMultipartUpload"
			fmt.Fprint(w, `<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId>u1</UploadId></InitiateMultipartUploadResult>`)
		case r.Method == http.MethodPut && q.Has("partNumber"):
			op = "UploadPart"
			w.Header().Set("ETag", `"p`+q.Get("partNumber")+`"`)
		case r.Method == http.MethodPost && q.Has("uploadId"):
			op = "CompleteMultipartUpload"
			fmt.Fprint(w, `<CompleteMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><ETag>"e-3"</ETag></CompleteMultipartUploadResult>`)
		case r.Method == http.MethodPut && q.Has("tagging"):
			op = "PutObjectTagging"
		case r.Method == http.MethodPut:
			op = "PutObject"
			w.Header().Set("ETag", `"e"`)
		}
		sum := sha256.Sum256(body)
		var crc [4]byte
		binary.BigEndian.PutUint32(crc[:], crc32.Checksum(body, crc32.MakeTable(crc32.Castagnoli)))
		mu.Lock()
		sent = append(sent, sentRequest{
			op:            op,
			encoding:      r.Header.Get("Content-Encoding"),
			payloadHash:   r.Header.Get("X-Amz-Content-Sha256"),
			checksumCRC:   r.Header.Get("X-Amz-Checksum-Crc32c"),
			checksumSHA:   r.Header.Get("X-Amz-Checksum-Sha256"),
			bodySHA256:    hex.EncodeToString(sum[:]),
			bodySHA256B64: base64.StdEncoding.EncodeToString(sum[:]),
			bodyCRC32C:    base64.StdEncoding.EncodeToString(crc[:]),
		})
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return srv, func() []sentRequest {
		mu.Lock()
		defer mu.Unlock()
		return append([]sentRequest(nil), sent...)
	}
}

// TestPayloadSigning checks, with the real SDK over plain HTTP, which payload
// hash each request is signed with: bodies carry their own SHA-256 unless the
// client was built with UnsignedPayload, except that a SHA-256 the uploader
// computed while reading (Options.SHA256 for single PutObjects, SHA256 part
// checksums) is always used, since it costs nothing more; and every body
// carries the checksum S3 verifies.
func TestPayloadSigning(t *testing.T) {
	tests := []struct {
		name     string
		unsigned bool
		sha256   bool // Options.SHA256
		checksum types.ChecksumAlgorithm
		size     int
		wantOps  []string
	}{
		{"single put, signed", false, false, types.ChecksumAlgorithmCrc32c, 1000, []string{"PutObject"}},
		{"single put, unsigned client", true, false, types.ChecksumAlgorithmCrc32c, 1000, []string{"PutObject"}},
		{"single put, unsigned client, full-object sha256", true, true, types.ChecksumAlgorithmCrc32c, 1000, []string{"PutObject"}},
		{"single put, sha256 checksum", false, false, types.ChecksumAlgorithmSha256, 1000, []string{"PutObject"}},
		{"single put, sha256 checksum, unsigned client", true, false, types.ChecksumAlgorithmSha256, 1000, []string{"PutObject"}},
		{"multipart, signed", false, false, types.ChecksumAlgorithmCrc32c, 11 * mib, []string{"CreateMultipartUpload", "UploadPart", "UploadPart", "UploadPart", "CompleteMultipartUpload"}},
		{"multipart, unsigned", true, false, types.ChecksumAlgorithmCrc32c, 11 * mib, []string{"CreateMultipartUpload", "UploadPart", "UploadPart", "UploadPart", "CompleteMultipartUpload"}},
		{"multipart, unsigned, full-object sha256", true, true, types.ChecksumAlgorithmCrc32c, 11 * mib, []string{"CreateMultipartUpload", "UploadPart", "UploadPart", "UploadPart", "CompleteMultipartUpload"}},
		{"multipart, sha256 checksum, unsigned client", true, false, types.ChecksumAlgorithmSha256, 11 * mib, []string{"CreateMultipartUpload", "UploadPart", "UploadPart", "UploadPart", "CompleteMultipartUpload"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, sent := recordingS3(t)
			client := s3.New(s3.Options{
				Region:                     "us-east-1",
				BaseEndpoint:               aws.String(srv.URL),
				UsePathStyle:               true,
				Credentials:                credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
				RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
			}, func(o *s3.Options) {
				if tt.unsigned {
					o.APIOptions = append(o.APIOptions, UnsignedPayload)
				}
			})
			u := New(client, Options{PartSize: s3limits.MinPartSize, Concurrency: 1, Checksum: tt.checksum, SHA256: tt.sha256})
			body := randomBytes(tt.size)
			if _, err := u.Upload(context.Background(), Object{Bucket: "b", Key: "k", Size: -1}, bytes.NewReader(body)); err != nil {
				t.Fatalf("Upload: %v", err)
			}
			got := sent()
			var ops []string
			for _, r := range got {
				ops = append(ops, r.op)
			}
			if fmt.Sprint(ops) != fmt.Sprint(tt.wantOps) {
				t.Fatalf("operations = %v, want %v", ops, tt.wantOps)
			}
			for _, r := range got {
				if r.op != "PutObject" && r.op != "UploadPart" {
					continue
				}
				wantHash := r.bodySHA256
				known := tt.checksum == types.ChecksumAlgorithmSha256 || tt.sha256 && r.op == "PutObject"
				if tt.unsigned && !known {
					wantHash = "UNSIGNED-PAYLOAD"
				}
				if r.payloadHash != wantHash {
					t.Errorf("%s: X-Amz-Content-Sha256 = %q, want %q", r.op, r.payloadHash, wantHash)
				}
				switch tt.checksum {
				case types.ChecksumAlgorithmCrc32c:
					if r.checksumCRC != r.bodyCRC32C {
						t.Errorf("%s: X-Amz-Checksum-Crc32c = %q, want %q", r.op, r.checksumCRC, r.bodyCRC32C)
					}
				case types.ChecksumAlgorithmSha256:
					if r.checksumSHA != r.bodySHA256B64 {
						t.Errorf("%s: X-Amz-Checksum-Sha256 = %q, want %q", r.op, r.checksumSHA, r.bodySHA256B64)
					}
				}
			}
		})
	}
}

// Over HTTPS the bodies go as UNSIGNED-PAYLOAD with the checksum the
// uploader computed in a (signed) header: no aws-chunked trailer, and the SDK
// hashes nothing.
func TestHTTPSBodiesCarryTheChecksumHeader(t *testing.T) {
	srv, sent := recordingS3With(t, httptest.NewTLSServer)
	client := s3.New(s3.Options{
		Region:                     "us-east-1",
		BaseEndpoint:               aws.String(srv.URL),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		HTTPClient:                 srv.Client(),
	})
	u := New(client, Options{PartSize: s3limits.MinPartSize, Concurrency: 2})
	for _, size := range []int{1000, 11 * mib} {
		if _, err := u.Upload(context.Background(), Object{Bucket: "b", Key: "k", Size: -1}, bytes.NewReader(randomBytes(size))); err != nil {
			t.Fatalf("Upload %d bytes: %v", size, err)
		}
	}
	n := 0
	for _, r := range sent() {
		if r.op != "PutObject" && r.op != "UploadPart" {
			continue
		}
		n++
		if r.payloadHash != "UNSIGNED-PAYLOAD" || r.encoding != "" || r.checksumCRC != r.bodyCRC32C {
			t.Errorf("%s: payload hash %q, Content-Encoding %q, checksum %q (body %q); want UNSIGNED-PAYLOAD, none, the body's",
				r.op, r.payloadHash, r.encoding, r.checksumCRC, r.bodyCRC32C)
		}
	}
	if n != 4 {
		t.Errorf("%d bodies sent, want 4", n)
	}
}
