//go:build integration

package integration_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/caddy-upload-gateway/upload-gateway/internal/objectkey"
	"github.com/caddy-upload-gateway/upload-gateway/internal/presign"
)

// These tests presign with the gateway's static keys and send the requests
// with plain net/http, as a browser or a curl user would: no SDK between the
// URL and the test S3 server.

// presignSigner returns a Signer for the test S3 server (path style) and the
// gateway's credentials. The client is built without credentials: the
// Signer must sign with the ones it is given.
func presignSigner(t *testing.T) (*presign.Signer, aws.CredentialsProvider) {
	t.Helper()
	client := s3.New(s3.Options{
		Region:       env.Region,
		BaseEndpoint: aws.String(env.S3Endpoint),
		UsePathStyle: true,
	})
	return presign.New(client), credentials.NewStaticCredentialsProvider(env.GatewayAccess, env.GatewaySecret, "")
}

// presignResult is what S3 answered to a plain HTTP request.
type presignResult struct {
	status int
	code   string // S3 error code, from the XML body
	header http.Header
	body   []byte
}

// presignSend sends method to rawURL with header and body. Content-Length is
// always the body's real length, as an HTTP client sends it; a
// Content-Length in header is ignored.
func presignSend(t *testing.T, method, rawURL string, header http.Header, body []byte, contentType string) presignResult {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, rawURL, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("building %s %s: %v", method, rawURL, err)
	}
	for name, values := range header {
		if !strings.EqualFold(name, "Content-Length") {
			req.Header[name] = values
		}
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return presignDo(t, req)
}

// presignDo sends req and reads the answer.
func presignDo(t *testing.T, req *http.Request) presignResult {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the response to %s: %v", req.Method, err)
	}
	res := presignResult{status: resp.StatusCode, header: resp.Header, body: b}
	var e struct {
		Code string `xml:"Code"`
	}
	if resp.StatusCode >= 300 && xml.Unmarshal(b, &e) == nil {
		res.code = e.Code
	}
	return res
}

// expectS3Error checks that S3 refused a request with status and one of codes.
func (r presignResult) expectS3Error(t *testing.T, what string, status int, codes ...string) {
	t.Helper()
	t.Logf("%s: S3 answered %d %s", what, r.status, r.code)
	if r.status != status || !slices.Contains(codes, r.code) {
		t.Errorf("%s: got %d %s, want %d %v; body: %.300s", what, r.status, r.code, status, codes, r.body)
	}
}

// presignAssertAbsent checks that key does not exist.
func presignAssertAbsent(t *testing.T, key string) {
	t.Helper()
	_, err := env.S3().HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &env.Bucket, Key: &key})
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || (apiErr.ErrorCode() != "NotFound" && apiErr.ErrorCode() != "NoSuchKey") {
		t.Errorf("HeadObject %s after a refused upload: got %v, want NotFound", key, err)
	}
}

func presignSum64(b []byte) string {
	sum := sha256.Sum256(b)
	return base64.StdEncoding.EncodeToString(sum[:])
}

func presignSumHex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// A presigned PUT stores the object with the content type, metadata and
// SSE-KMS it was signed for.
func TestPresignPutStoresEncryptedObject(t *testing.T) {
	prefix := testPrefix(t)
	signer, creds := presignSigner(t)
	body := fileBytes(t, pngMagic, 1, 200_000)
	key := prefix + "photo.png"

	p, err := signer.PutObject(context.Background(), creds, presign.PutRequest{
		Bucket: env.Bucket, Key: key, ContentType: "image/png",
		ContentLength:  int64(len(body)),
		ChecksumSHA256: presignSum64(body),
		Metadata:       map[string]string{"original-name": "Résumé 2024.png"},
		Encryption: presign.Encryption{
			KMSKeyID: env.KMSKeyID, BucketKey: true,
			Context: base64.StdEncoding.EncodeToString([]byte(`{"tenant":"acme"}`)),
		},
		ContentDisposition: objectkey.ContentDisposition("Résumé 2024.png"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if p.Method != http.MethodPut {
		t.Errorf("method %s, want PUT", p.Method)
	}

	res := presignSend(t, p.Method, p.URL, p.Headers, body, "")
	if res.status != http.StatusOK {
		t.Fatalf("presigned PUT: got %d %s, want 200; body: %.300s", res.status, res.code, res.body)
	}

	// SeaweedFS never reports the bucket key on HeadObject (AWS does), but
	// echoes it in the PUT response when it applied it. It reads the flag
	// from the header only: the SDK's default presigner hoists it into the
	// query string, where SeaweedFS ignores it; the Signer signs it as a
	// header.
	if got := res.header.Get("X-Amz-Server-Side-Encryption-Bucket-Key-Enabled"); got != "true" {
		t.Errorf("PUT response x-amz-server-side-encryption-bucket-key-enabled = %q, want true", got)
	}
	head := assertEncrypted(t, key)
	if got := aws.ToString(head.ContentType); got != "image/png" {
		t.Errorf("ContentType = %q, want image/png", got)
	}
	if got := aws.ToInt64(head.ContentLength); got != int64(len(body)) {
		t.Errorf("ContentLength = %d, want %d", got, len(body))
	}
	if got, want := aws.ToString(head.ContentDisposition), objectkey.ContentDisposition("Résumé 2024.png"); got != want {
		t.Errorf("ContentDisposition = %q, want %q", got, want)
	}
	name, err := objectkey.DecodeMetadataValue(head.Metadata["original-name"])
	if err != nil || name != "Résumé 2024.png" {
		t.Errorf("metadata original-name = %q (%q, %v), want Résumé 2024.png", head.Metadata["original-name"], name, err)
	}
	if sum, n := objectSHA256(t, key); sum != presignSumHex(body) || n != int64(len(body)) {
		t.Errorf("stored object: %d bytes %s, want %d bytes %s", n, sum, len(body), presignSumHex(body))
	}
}

// A presigned PUT is refused when the request differs from what was signed:
// another size, type, body (with a declared checksum), encryption, key,
// expiry or signature. Nothing is stored.
func TestPresignPutRejectsOtherRequests(t *testing.T) {
	prefix := testPrefix(t)
	signer, creds := presignSigner(t)
	body := fileBytes(t, pdfMagic, 2, 64_000)

	// sign presigns a PUT of body under prefix+name.
	sign := func(t *testing.T, name string, edit func(*presign.PutRequest)) *presign.Presigned {
		t.Helper()
		r := presign.PutRequest{
			Bucket: env.Bucket, Key: prefix + name, ContentType: "application/pdf",
			ContentLength:  int64(len(body)),
			ChecksumSHA256: presignSum64(body),
			Metadata:       map[string]string{"uploader": "alice"},
			Encryption:     presign.Encryption{KMSKeyID: env.KMSKeyID},
		}
		if edit != nil {
			edit(&r)
		}
		p, err := signer.PutObject(context.Background(), creds, r)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	withQuery := func(rawURL, name, value string) string {
		u, err := url.Parse(rawURL)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		q.Set(name, value)
		u.RawQuery = q.Encode()
		return u.String()
	}
	other := bytes.Clone(body)
	other[len(other)-1] ^= 0xff

	tests := []struct {
		name string
		// send returns the request to send instead of the signed one.
		send   func(p *presign.Presigned) (rawURL string, h http.Header, body []byte)
		status int
		codes  []string
	}{
		{
			name: "larger body",
			send: func(p *presign.Presigned) (string, http.Header, []byte) {
				return p.URL, p.Headers, append(bytes.Clone(body), 'x')
			},
			// content-length is a signed header: SeaweedFS rebuilds it from
			// the request's real length, so the signature no longer matches.
			status: http.StatusForbidden, codes: []string{"SignatureDoesNotMatch"},
		},
		{
			name: "smaller body",
			send: func(p *presign.Presigned) (string, http.Header, []byte) {
				return p.URL, p.Headers, body[:len(body)-1]
			},
			status: http.StatusForbidden, codes: []string{"SignatureDoesNotMatch"},
		},
		{
			name: "other content type",
			send: func(p *presign.Presigned) (string, http.Header, []byte) {
				h := p.Headers.Clone()
				h.Set("Content-Type", "text/html")
				return p.URL, h, body
			},
			status: http.StatusForbidden, codes: []string{"SignatureDoesNotMatch"},
		},
		{
			name: "other bytes, same length, checksum declared",
			send: func(p *presign.Presigned) (string, http.Header, []byte) {
				return p.URL, p.Headers, other
			},
			// The signature matches (the payload is UNSIGNED-PAYLOAD), but
			// the bytes do not match the signed x-amz-checksum-sha256.
			status: http.StatusBadRequest, codes: []string{"BadDigest"},
		},
		{
			name: "other checksum header",
			send: func(p *presign.Presigned) (string, http.Header, []byte) {
				h := p.Headers.Clone()
				h.Set("X-Amz-Checksum-Sha256", presignSum64(other))
				return p.URL, h, other
			},
			status: http.StatusForbidden, codes: []string{"SignatureDoesNotMatch"},
		},
		{
			name: "encryption header dropped",
			send: func(p *presign.Presigned) (string, http.Header, []byte) {
				h := p.Headers.Clone()
				h.Del("X-Amz-Server-Side-Encryption")
				h.Del("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id")
				return p.URL, h, body
			},
			status: http.StatusForbidden, codes: []string{"SignatureDoesNotMatch"},
		},
		{
			name: "other metadata",
			send: func(p *presign.Presigned) (string, http.Header, []byte) {
				h := p.Headers.Clone()
				h.Set("X-Amz-Meta-Uploader", "mallory")
				return p.URL, h, body
			},
			status: http.StatusForbidden, codes: []string{"SignatureDoesNotMatch"},
		},
		{
			name: "extra unsigned metadata",
			send: func(p *presign.Presigned) (string, http.Header, []byte) {
				h := p.Headers.Clone()
				h.Set("X-Amz-Meta-Role", "admin")
				return p.URL, h, body
			},
			// AWS refuses unsigned x-amz-* headers on a presigned request
			// (AccessDenied, "headers present in the request which were not
			// signed"); SeaweedFS answers SignatureDoesNotMatch.
			status: http.StatusForbidden, codes: []string{"SignatureDoesNotMatch"},
		},
		{
			name: "other key",
			send: func(p *presign.Presigned) (string, http.Header, []byte) {
				return strings.Replace(p.URL, "/other-key", "/stolen-key", 1), p.Headers, body
			},
			status: http.StatusForbidden, codes: []string{"SignatureDoesNotMatch"},
		},
		{
			name: "longer expiry",
			send: func(p *presign.Presigned) (string, http.Header, []byte) {
				return withQuery(p.URL, "X-Amz-Expires", "604800"), p.Headers, body
			},
			status: http.StatusForbidden, codes: []string{"SignatureDoesNotMatch"},
		},
		{
			name: "other signature",
			send: func(p *presign.Presigned) (string, http.Header, []byte) {
				u, _ := url.Parse(p.URL)
				sig := []byte(u.Query().Get("X-Amz-Signature"))
				if sig[0] == '0' { // another hex digit
					sig[0] = '1'
				} else {
					sig[0] = '0'
				}
				return withQuery(p.URL, "X-Amz-Signature", string(sig)), p.Headers, body
			},
			status: http.StatusForbidden, codes: []string{"SignatureDoesNotMatch"},
		},
		{
			name: "bucket key header dropped",
			send: func(p *presign.Presigned) (string, http.Header, []byte) {
				h := p.Headers.Clone()
				h.Del("X-Amz-Server-Side-Encryption-Bucket-Key-Enabled")
				return p.URL, h, body
			},
			status: http.StatusForbidden, codes: []string{"SignatureDoesNotMatch"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := strings.NewReplacer(" ", "-", ",", "").Replace(tt.name)
			p := sign(t, name, func(r *presign.PutRequest) { r.Encryption.BucketKey = true })
			rawURL, h, b := tt.send(p)
			presignSend(t, http.MethodPut, rawURL, h, b, "").expectS3Error(t, "PUT", tt.status, tt.codes...)
			presignAssertAbsent(t, prefix+name)
			presignAssertAbsent(t, prefix+"stolen-key")
		})
	}

	t.Run("chunked body without Content-Length", func(t *testing.T) {
		p := sign(t, "chunked", nil)
		req, err := http.NewRequest(p.Method, p.URL, io.NopCloser(bytes.NewReader(body)))
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = -1 // unknown: net/http sends Transfer-Encoding: chunked
		for name, values := range p.Headers {
			if name != "Content-Length" {
				req.Header[name] = values
			}
		}
		presignDo(t, req).expectS3Error(t, "chunked PUT", http.StatusForbidden, "SignatureDoesNotMatch")
		presignAssertAbsent(t, prefix+"chunked")
	})

	t.Run("expired", func(t *testing.T) {
		p := sign(t, "expired", func(r *presign.PutRequest) { r.Expires = time.Second })
		if d := time.Until(p.Expires); d > time.Second {
			t.Errorf("Expires is %v away, want at most 1s", d)
		}
		time.Sleep(2 * time.Second)
		presignSend(t, p.Method, p.URL, p.Headers, body, "").expectS3Error(t, "expired PUT", http.StatusForbidden, "AccessDenied")
		presignAssertAbsent(t, prefix+"expired")
	})

	assertNothingLeft(t, prefix)
}

// A presigned browser form stores a file within its size range, with its
// content type and SSE-KMS, and refuses other sizes and types.
func TestPresignPostForm(t *testing.T) {
	prefix := testPrefix(t)
	signer, creds := presignSigner(t)
	const maxSize = 100_000

	// post presigns a form for prefix+name and posts it with file, after
	// edit changes the fields.
	post := func(t *testing.T, name string, file []byte, edit func(map[string]string)) presignResult {
		t.Helper()
		pp, err := signer.PostObject(context.Background(), creds, presign.PostRequest{
			Bucket: env.Bucket, Key: prefix + name, ContentType: "image/png",
			MinSize: 1, MaxSize: maxSize,
			Metadata:   map[string]string{"original-name": "Café.png"},
			Encryption: presign.Encryption{KMSKeyID: env.KMSKeyID},
		})
		if err != nil {
			t.Fatal(err)
		}
		if time.Until(pp.Expires) > presign.DefaultExpires || time.Until(pp.Expires) < presign.DefaultExpires-time.Minute {
			t.Errorf("Expires = %v, want about 15 minutes from now", pp.Expires)
		}
		fields := maps.Clone(pp.Fields)
		if edit != nil {
			edit(fields)
		}
		var parts []formPart
		for _, k := range slices.Sorted(maps.Keys(fields)) {
			parts = append(parts, formPart{field: k, value: fields[k]})
		}
		// The file goes last: S3 ignores the fields after it.
		parts = append(parts, formPart{field: "file", fileName: "Café.png", contentType: "image/png", body: bytes.NewReader(file)})
		form, ctype := buildForm(t, parts)
		return presignSend(t, http.MethodPost, pp.URL, nil, form.Bytes(), ctype)
	}

	t.Run("stored", func(t *testing.T) {
		file := fileBytes(t, pngMagic, 3, 50_000)
		res := post(t, "ok.png", file, nil)
		if res.status != http.StatusNoContent {
			t.Fatalf("POST: got %d %s, want 204; body: %.300s", res.status, res.code, res.body)
		}
		head := assertEncrypted(t, prefix+"ok.png")
		if got := aws.ToString(head.ContentType); got != "image/png" {
			t.Errorf("ContentType = %q, want image/png", got)
		}
		if name, _ := objectkey.DecodeMetadataValue(head.Metadata["original-name"]); name != "Café.png" {
			t.Errorf("metadata original-name = %q, want Café.png", head.Metadata["original-name"])
		}
		if sum, n := objectSHA256(t, prefix+"ok.png"); sum != presignSumHex(file) || n != int64(len(file)) {
			t.Errorf("stored object: %d bytes %s, want %d bytes %s", n, sum, len(file), presignSumHex(file))
		}
	})

	t.Run("larger than MaxSize", func(t *testing.T) {
		res := post(t, "big.png", fileBytes(t, pngMagic, 4, maxSize+1), nil)
		res.expectS3Error(t, "POST", http.StatusBadRequest, "EntityTooLarge")
		presignAssertAbsent(t, prefix+"big.png")
	})

	t.Run("smaller than MinSize", func(t *testing.T) {
		res := post(t, "empty.png", nil, nil)
		res.expectS3Error(t, "POST", http.StatusBadRequest, "EntityTooSmall")
		presignAssertAbsent(t, prefix+"empty.png")
	})

	t.Run("other content type", func(t *testing.T) {
		res := post(t, "html.png", fileBytes(t, pngMagic, 5, 1000), func(f map[string]string) {
			f["Content-Type"] = "text/html"
		})
		res.expectS3Error(t, "POST", http.StatusForbidden, "AccessDenied")
		presignAssertAbsent(t, prefix+"html.png")
	})

	t.Run("other key", func(t *testing.T) {
		res := post(t, "mine.png", fileBytes(t, pngMagic, 6, 1000), func(f map[string]string) {
			f["key"] = prefix + "theirs.png"
		})
		res.expectS3Error(t, "POST", http.StatusForbidden, "AccessDenied")
		presignAssertAbsent(t, prefix+"theirs.png")
	})

	t.Run("extra metadata field", func(t *testing.T) {
		res := post(t, "role.png", fileBytes(t, pngMagic, 11, 1000), func(f map[string]string) {
			f["x-amz-meta-role"] = "admin"
		})
		// "Invalid according to Policy: Extra input fields: X-Amz-Meta-Role"
		res.expectS3Error(t, "POST", http.StatusForbidden, "AccessDenied")
		presignAssertAbsent(t, prefix+"role.png")
	})

	// AWS refuses every form field the policy does not name ("Extra input
	// fields"), except policy, x-amz-signature, file and x-ignore-*.
	// SeaweedFS 4.53 only refuses unnamed x-amz-* fields: an unnamed
	// Content-Disposition (or Cache-Control, Content-Encoding, Expires)
	// field is accepted and applied to the object. The Signer still
	// produces a policy without such fields, so AWS refuses them; this
	// asserts what the test server really does.
	t.Run("extra Content-Disposition field (SeaweedFS accepts it)", func(t *testing.T) {
		res := post(t, "inline.png", fileBytes(t, pngMagic, 12, 1000), func(f map[string]string) {
			f["Content-Disposition"] = "inline"
		})
		if res.status != http.StatusNoContent {
			t.Fatalf("POST: got %d %s, want SeaweedFS's 204; body: %.300s", res.status, res.code, res.body)
		}
		head := assertEncrypted(t, prefix+"inline.png")
		if got := aws.ToString(head.ContentDisposition); got != "inline" {
			t.Errorf("ContentDisposition = %q, want the unsigned field's inline", got)
		}
	})

	t.Run("encryption field dropped", func(t *testing.T) {
		res := post(t, "plain.png", fileBytes(t, pngMagic, 7, 1000), func(f map[string]string) {
			delete(f, "x-amz-server-side-encryption")
		})
		res.expectS3Error(t, "POST", http.StatusForbidden, "AccessDenied")
		presignAssertAbsent(t, prefix+"plain.png")
	})
}

// Parts presigned for a multipart upload created with the SDK are uploaded
// with plain HTTP; the completed object has the parts' bytes and SSE-KMS.
func TestPresignMultipartParts(t *testing.T) {
	prefix := testPrefix(t)
	signer, creds := presignSigner(t)
	ctx := context.Background()
	key := prefix + "big.bin"
	parts := [][]byte{fileBytes(t, elfMagic, 8, 5*mib), fileBytes(t, "tail", 9, 300_000)}

	created, err := env.S3().CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: &env.Bucket, Key: &key, ContentType: aws.String("application/octet-stream"),
		ServerSideEncryption: types.ServerSideEncryptionAwsKms, SSEKMSKeyId: aws.String(env.KMSKeyID),
	})
	if err != nil {
		t.Fatalf("CreateMultipartUpload: %v", err)
	}
	uploadID := aws.ToString(created.UploadId)
	completed := false
	t.Cleanup(func() {
		if !completed {
			env.S3().AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &env.Bucket, Key: &key, UploadId: &uploadID})
		}
	})

	var done []types.CompletedPart
	for i, part := range parts {
		n := int32(i + 1)
		p, err := signer.UploadPart(ctx, creds, presign.PartRequest{
			Bucket: env.Bucket, Key: key, UploadID: uploadID, PartNumber: n,
			ContentLength: int64(len(part)),
		})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			// The part size is signed: one byte more is refused.
			presignSend(t, p.Method, p.URL, p.Headers, append(bytes.Clone(part), 0), "").
				expectS3Error(t, "part with another size", http.StatusForbidden, "SignatureDoesNotMatch")
		}
		res := presignSend(t, p.Method, p.URL, p.Headers, part, "")
		if res.status != http.StatusOK {
			t.Fatalf("part %d: got %d %s, want 200; body: %.300s", n, res.status, res.code, res.body)
		}
		done = append(done, types.CompletedPart{PartNumber: aws.Int32(n), ETag: aws.String(res.header.Get("ETag"))})
	}

	_, err = env.S3().CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: &env.Bucket, Key: &key, UploadId: &uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: done},
	})
	if err != nil {
		t.Fatalf("CompleteMultipartUpload: %v", err)
	}
	completed = true
	all := bytes.Join(parts, nil)
	if sum, n := objectSHA256(t, key); sum != presignSumHex(all) || n != int64(len(all)) {
		t.Errorf("stored object: %d bytes %s, want %d bytes %s", n, sum, len(all), presignSumHex(all))
	}
	assertEncrypted(t, key)
}

// A presigned GET downloads the object with the Content-Disposition it was
// signed for, and refuses another one.
func TestPresignGetDownloadsAsAttachment(t *testing.T) {
	prefix := testPrefix(t)
	signer, creds := presignSigner(t)
	ctx := context.Background()
	key := prefix + "report.pdf"
	body := fileBytes(t, pdfMagic, 10, 30_000)
	_, err := env.S3().PutObject(ctx, &s3.PutObjectInput{
		Bucket: &env.Bucket, Key: &key, Body: bytes.NewReader(body), ContentType: aws.String("application/pdf"),
		ServerSideEncryption: types.ServerSideEncryptionAwsKms, SSEKMSKeyId: aws.String(env.KMSKeyID),
	})
	if err != nil {
		t.Fatalf("PutObject: %v", err)
	}

	const fileName = "Rapport annuel é.pdf"
	p, err := signer.GetObject(ctx, creds, presign.GetRequest{Bucket: env.Bucket, Key: key, FileName: fileName})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Headers) != 0 {
		t.Errorf("a GET needs no headers, got %v", p.Headers)
	}
	res := presignSend(t, p.Method, p.URL, p.Headers, nil, "")
	if res.status != http.StatusOK {
		t.Fatalf("GET: got %d %s, want 200; body: %.300s", res.status, res.code, res.body)
	}
	if !bytes.Equal(res.body, body) {
		t.Errorf("GET returned %d bytes %s, want %d bytes %s", len(res.body), presignSumHex(res.body), len(body), presignSumHex(body))
	}
	if got, want := res.header.Get("Content-Disposition"), objectkey.ContentDisposition(fileName); got != want {
		t.Errorf("Content-Disposition = %q, want %q", got, want)
	}

	u, _ := url.Parse(p.URL)
	q := u.Query()
	q.Set("response-content-disposition", "inline")
	u.RawQuery = q.Encode()
	presignSend(t, http.MethodGet, u.String(), nil, nil, "").expectS3Error(t, "GET with another disposition", http.StatusForbidden, "SignatureDoesNotMatch")
}
