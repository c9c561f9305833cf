package presign_test

import (
	"context"
	"encoding/base64"
	"errors"
	"github.com/aws/aws-sdk-go-v2/aws"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/caddy-upload-gateway/upload-gateway/internal/objectkey"
	"github.com/caddy-upload-gateway/upload-gateway/internal/presign"
)

// fullPut binds everything a PUT can bind.
func fullPut() presign.PutRequest {
	return presign.PutRequest{
		Bucket: "uploads", Key: "users/42/Résumé 2024.pdf", ContentType: "application/pdf",
		ContentLength:  52113,
		ChecksumSHA256: "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=",
		Metadata:       map[string]string{"Uploader": "alice", "original-name": "Résumé 2024.pdf"},
		Encryption: presign.Encryption{
			KMSKeyID: "alias/uploads", BucketKey: true,
			Context: base64.StdEncoding.EncodeToString([]byte(`{"tenant":"acme"}`)),
		},
		ContentDisposition: objectkey.ContentDisposition("Résumé 2024.pdf"),
	}
}

// authParams are the query parameters of SigV4 presigning itself.
var authParams = []string{
	"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
	"X-Amz-Security-Token", "X-Amz-SignedHeaders", "X-Amz-Signature",
}

// checkQuery checks that the query holds the auth parameters, x-id and
// exactly extra besides, and that no header to send is also in the query.
func checkQuery(t *testing.T, p *presign.Presigned, xid string, extra map[string]string) {
	t.Helper()
	u := mustParse(t, p.URL)
	q := u.Query()
	if got := q.Get("X-Amz-Algorithm"); got != "AWS4-HMAC-SHA256" {
		t.Errorf("X-Amz-Algorithm = %q", got)
	}
	cred := q.Get("X-Amz-Credential")
	if parts := strings.Split(cred, "/"); len(parts) != 5 || parts[0] != testAccessKey || parts[2] != testRegion || parts[3] != "s3" || parts[4] != "aws4_request" {
		t.Errorf("X-Amz-Credential = %q, want %s/<date>/%s/s3/aws4_request", cred, testAccessKey, testRegion)
	}
	if got := q.Get("x-id"); got != xid {
		t.Errorf("x-id = %q, want %q", got, xid)
	}
	for name, values := range q {
		switch {
		case slices.Contains(authParams, name) || name == "x-id":
		case extra[name] != "":
			if values[0] != extra[name] {
				t.Errorf("query %s = %q, want %q", name, values[0], extra[name])
			}
		default:
			t.Errorf("unexpected query parameter %s=%q", name, values)
		}
	}
	for name := range extra {
		if !q.Has(name) {
			t.Errorf("query parameter %s is missing", name)
		}
	}
	for name := range p.Headers {
		for qn := range q {
			if strings.EqualFold(name, qn) {
				t.Errorf("%s is both a header to send and a query parameter", name)
			}
		}
	}
}

// A PUT signs, as headers, every value that binds the upload, and the
// client is told to send exactly those.
func TestPutObjectSignsEveryBinding(t *testing.T) {
	t.Parallel()
	r := fullPut()
	p, err := pathStyleSigner().PutObject(context.Background(), sessionCreds(), r)
	if err != nil {
		t.Fatal(err)
	}

	u := mustParse(t, p.URL)
	if p.Method != http.MethodPut || u.Scheme != "http" || u.Host != "s3.test:9000" {
		t.Errorf("got %s %s://%s, want PUT http://s3.test:9000", p.Method, u.Scheme, u.Host)
	}
	if got, want := u.EscapedPath(), "/uploads/users/42/R%C3%A9sum%C3%A9%202024.pdf"; got != want {
		t.Errorf("path %s, want %s", got, want)
	}
	q := u.Query()
	if got := q.Get("X-Amz-Expires"); got != "900" {
		t.Errorf("X-Amz-Expires = %s, want 900", got)
	}
	const wantSigned = "content-disposition;content-length;content-type;host;x-amz-checksum-sha256;" +
		"x-amz-meta-original-name;x-amz-meta-uploader;" +
		"x-amz-server-side-encryption;x-amz-server-side-encryption-aws-kms-key-id;" +
		"x-amz-server-side-encryption-bucket-key-enabled;x-amz-server-side-encryption-context"
	if got := q.Get("X-Amz-SignedHeaders"); got != wantSigned {
		t.Errorf("X-Amz-SignedHeaders:\n got %s\nwant %s", got, wantSigned)
	}
	want := http.Header{
		"Content-Disposition":                             {r.ContentDisposition},
		"Content-Length":                                  {"52113"},
		"Content-Type":                                    {"application/pdf"},
		"X-Amz-Checksum-Sha256":                           {r.ChecksumSHA256},
		"X-Amz-Meta-Original-Name":                        {objectkey.MetadataValue("Résumé 2024.pdf")},
		"X-Amz-Meta-Uploader":                             {"alice"},
		"X-Amz-Server-Side-Encryption":                    {"aws:kms"},
		"X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id":     {"alias/uploads"},
		"X-Amz-Server-Side-Encryption-Bucket-Key-Enabled": {"true"},
		"X-Amz-Server-Side-Encryption-Context":            {r.Encryption.Context},
	}
	if !reflect.DeepEqual(p.Headers, want) {
		t.Errorf("Headers:\n got %v\nwant %v", p.Headers, want)
	}
	// Nothing is hoisted: the query holds only SigV4's parameters.
	checkQuery(t, p, "PutObject", nil)

	if !signatureValid(t, p.Method, p.URL, sentHeaders(p)) {
		t.Fatal("the signature does not match the request it was made for")
	}
	// Any other request does not match the signature.
	tests := []struct {
		name string
		edit func(h http.Header, q url.Values, u *url.URL)
	}{
		{"one byte more", func(h http.Header, _ url.Values, _ *url.URL) { h.Set("Content-Length", "52114") }},
		{"one byte less", func(h http.Header, _ url.Values, _ *url.URL) { h.Set("Content-Length", "52112") }},
		{"no content length (chunked)", func(h http.Header, _ url.Values, _ *url.URL) { h.Del("Content-Length") }},
		{"other type", func(h http.Header, _ url.Values, _ *url.URL) { h.Set("Content-Type", "text/html") }},
		{"other checksum", func(h http.Header, _ url.Values, _ *url.URL) {
			h.Set("X-Amz-Checksum-Sha256", "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=")
		}},
		{"other metadata", func(h http.Header, _ url.Values, _ *url.URL) { h.Set("X-Amz-Meta-Uploader", "mallory") }},
		{"no encryption", func(h http.Header, _ url.Values, _ *url.URL) { h.Del("X-Amz-Server-Side-Encryption") }},
		{"other KMS key", func(h http.Header, _ url.Values, _ *url.URL) {
			h.Set("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id", "alias/other")
		}},
		{"no bucket key", func(h http.Header, _ url.Values, _ *url.URL) {
			h.Del("X-Amz-Server-Side-Encryption-Bucket-Key-Enabled")
		}},
		{"other context", func(h http.Header, _ url.Values, _ *url.URL) {
			h.Set("X-Amz-Server-Side-Encryption-Context", base64.StdEncoding.EncodeToString([]byte(`{}`)))
		}},
		{"other disposition", func(h http.Header, _ url.Values, _ *url.URL) { h.Set("Content-Disposition", "inline") }},
		{"other key", func(_ http.Header, _ url.Values, u *url.URL) { u.RawPath, u.Path = "", "/uploads/users/43/x.pdf" }},
		{"other bucket", func(_ http.Header, _ url.Values, u *url.URL) {
			u.RawPath, u.Path = "", strings.Replace(u.Path, "/uploads/", "/public/", 1)
		}},
		{"other host", func(_ http.Header, _ url.Values, u *url.URL) { u.Host = "evil.test:9000" }},
		{"longer expiry", func(_ http.Header, q url.Values, _ *url.URL) { q.Set("X-Amz-Expires", "604800") }},
		{"other token", func(_ http.Header, q url.Values, _ *url.URL) { q.Set("X-Amz-Security-Token", "x") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := sentHeaders(p)
			u := mustParse(t, p.URL)
			q := u.Query()
			tt.edit(h, q, u)
			u.RawQuery = q.Encode()
			if signatureValid(t, p.Method, u.String(), h) {
				t.Errorf("the signature matches a request with %s", tt.name)
			}
		})
	}
}

// A PUT without optional bindings signs only size and type.
func TestPutObjectMinimal(t *testing.T) {
	t.Parallel()
	p, err := pathStyleSigner().PutObject(context.Background(), staticCreds(), presign.PutRequest{
		Bucket: "b", Key: "k", ContentType: "text/plain", ContentLength: 5,
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := mustParse(t, p.URL).Query().Get("X-Amz-SignedHeaders"); got != "content-length;content-type;host" {
		t.Errorf("X-Amz-SignedHeaders = %s, want content-length;content-type;host", got)
	}
	want := http.Header{"Content-Length": {"5"}, "Content-Type": {"text/plain"}}
	if !reflect.DeepEqual(p.Headers, want) {
		t.Errorf("Headers = %v, want %v", p.Headers, want)
	}
	checkQuery(t, p, "PutObject", nil)
}

// A create-only PUT signs If-None-Match: * as a header the client must
// send; without it the signature does not match.
func TestPutObjectCreateOnly(t *testing.T) {
	t.Parallel()
	p, err := pathStyleSigner().PutObject(context.Background(), staticCreds(), presign.PutRequest{
		Bucket: "b", Key: "k", ContentType: "text/plain", ContentLength: 5, CreateOnly: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := mustParse(t, p.URL).Query().Get("X-Amz-SignedHeaders"); got != "content-length;content-type;host;if-none-match" {
		t.Errorf("X-Amz-SignedHeaders = %s", got)
	}
	want := http.Header{"Content-Length": {"5"}, "Content-Type": {"text/plain"}, "If-None-Match": {"*"}}
	if !reflect.DeepEqual(p.Headers, want) {
		t.Errorf("Headers = %v, want %v", p.Headers, want)
	}
	checkQuery(t, p, "PutObject", nil)
	if !signatureValid(t, p.Method, p.URL, sentHeaders(p)) {
		t.Fatal("the signature does not match the request it was made for")
	}
	for _, edit := range []func(http.Header){
		func(h http.Header) { h.Del("If-None-Match") },
		func(h http.Header) { h.Set("If-None-Match", `"etag"`) },
	} {
		h := sentHeaders(p)
		edit(h)
		if signatureValid(t, p.Method, p.URL, h) {
			t.Errorf("the signature matches a request with If-None-Match %q", h.Get("If-None-Match"))
		}
	}
}

// Without path style, the bucket is in the host name.
func TestPutObjectVirtualHost(t *testing.T) {
	t.Parallel()
	s := presign.New(s3.New(s3.Options{Region: testRegion}))
	p, err := s.PutObject(context.Background(), staticCreds(), presign.PutRequest{
		Bucket: "uploads", Key: "a/b.txt", ContentType: "text/plain", ContentLength: 5,
	})
	if err != nil {
		t.Fatal(err)
	}
	u := mustParse(t, p.URL)
	if got, want := u.Scheme+"://"+u.Host+u.EscapedPath(), "https://uploads.s3."+testRegion+".amazonaws.com/a/b.txt"; got != want {
		t.Errorf("URL %s, want %s", got, want)
	}
	if !signatureValid(t, p.Method, p.URL, sentHeaders(p)) {
		t.Errorf("the signature does not match the request")
	}
}

func TestPutObjectInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		edit func(*presign.PutRequest)
	}{
		{"no bucket", func(r *presign.PutRequest) { r.Bucket = "" }},
		{"no key", func(r *presign.PutRequest) { r.Key = "" }},
		{"key too long", func(r *presign.PutRequest) { r.Key = strings.Repeat("k", 1025) }},
		{"no content type", func(r *presign.PutRequest) { r.ContentType = "" }},
		{"content type with a newline", func(r *presign.PutRequest) { r.ContentType = "text/plain\r\nX-Evil: 1" }},
		{"content type not ASCII", func(r *presign.PutRequest) { r.ContentType = "text/plaîn" }},
		{"disposition with a newline", func(r *presign.PutRequest) { r.ContentDisposition = "attachment\n" }},
		{"no content length", func(r *presign.PutRequest) { r.ContentLength = 0 }},
		{"negative content length", func(r *presign.PutRequest) { r.ContentLength = -1 }},
		{"more than 5 GiB", func(r *presign.PutRequest) { r.ContentLength = 5<<30 + 1 }},
		{"checksum not base64", func(r *presign.PutRequest) { r.ChecksumSHA256 = "not base64!" }},
		{"checksum not SHA-256", func(r *presign.PutRequest) { r.ChecksumSHA256 = base64.StdEncoding.EncodeToString([]byte("short")) }},
		{"checksum hex", func(r *presign.PutRequest) {
			r.ChecksumSHA256 = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
		}},
		{"negative expiry", func(r *presign.PutRequest) { r.Expires = -1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := fullPut()
			tt.edit(&r)
			p, err := pathStyleSigner().PutObject(context.Background(), sessionCreds(), r)
			if !errors.Is(err, presign.ErrInvalidRequest) {
				t.Errorf("got %v, %v; want ErrInvalidRequest", p, err)
			}
		})
	}
	r := fullPut()
	r.ContentLength = 5 << 30
	if _, err := pathStyleSigner().PutObject(context.Background(), sessionCreds(), r); err != nil {
		t.Errorf("5 GiB: %v", err)
	}
}

// A part URL binds the upload, the part number and, when given, the size.
func TestUploadPart(t *testing.T) {
	t.Parallel()
	const uploadID = "2~abc+/=def"
	for _, tt := range []struct {
		name        string
		length      int64
		wantSigned  string
		wantHeaders http.Header
	}{
		{"size bound", 5 << 20, "content-length;host", http.Header{"Content-Length": {"5242880"}}},
		{"size free", 0, "host", http.Header{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := pathStyleSigner().UploadPart(context.Background(), sessionCreds(), presign.PartRequest{
				Bucket: "uploads", Key: "big/file.bin", UploadID: uploadID, PartNumber: 7, ContentLength: tt.length,
			})
			if err != nil {
				t.Fatal(err)
			}
			u := mustParse(t, p.URL)
			if p.Method != http.MethodPut || u.Host != "s3.test:9000" || u.EscapedPath() != "/uploads/big/file.bin" {
				t.Errorf("got %s %s, want PUT http://s3.test:9000/uploads/big/file.bin", p.Method, p.URL)
			}
			if got := u.Query().Get("X-Amz-SignedHeaders"); got != tt.wantSigned {
				t.Errorf("X-Amz-SignedHeaders = %s, want %s", got, tt.wantSigned)
			}
			if !reflect.DeepEqual(p.Headers, tt.wantHeaders) {
				t.Errorf("Headers = %v, want %v", p.Headers, tt.wantHeaders)
			}
			checkQuery(t, p, "UploadPart", map[string]string{"partNumber": "7", "uploadId": uploadID})
			if !signatureValid(t, p.Method, p.URL, sentHeaders(p)) {
				t.Fatal("the signature does not match the request")
			}
			for name, edit := range map[string]func(h http.Header, q url.Values){
				"other part":   func(_ http.Header, q url.Values) { q.Set("partNumber", "8") },
				"other upload": func(_ http.Header, q url.Values) { q.Set("uploadId", "other") },
				"other size":   func(h http.Header, _ url.Values) { h.Set("Content-Length", "1") },
			} {
				if tt.length == 0 && name == "other size" {
					continue
				}
				h, q := sentHeaders(p), u.Query()
				edit(h, q)
				v := *u
				v.RawQuery = q.Encode()
				if signatureValid(t, p.Method, v.String(), h) {
					t.Errorf("the signature matches a request with %s", name)
				}
			}
		})
	}

	for name, r := range map[string]presign.PartRequest{
		"no upload id":     {Bucket: "b", Key: "k", PartNumber: 1},
		"part 0":           {Bucket: "b", Key: "k", UploadID: "u", PartNumber: 0},
		"part 10001":       {Bucket: "b", Key: "k", UploadID: "u", PartNumber: 10001},
		"negative size":    {Bucket: "b", Key: "k", UploadID: "u", PartNumber: 1, ContentLength: -1},
		"part over 5 GiB":  {Bucket: "b", Key: "k", UploadID: "u", PartNumber: 1, ContentLength: 5<<30 + 1},
		"no key":           {Bucket: "b", UploadID: "u", PartNumber: 1},
		"negative expires": {Bucket: "b", Key: "k", UploadID: "u", PartNumber: 1, Expires: -1},
	} {
		if _, err := pathStyleSigner().UploadPart(context.Background(), sessionCreds(), r); !errors.Is(err, presign.ErrInvalidRequest) {
			t.Errorf("%s: got %v, want ErrInvalidRequest", name, err)
		}
	}
}

// A GET URL needs no headers; the file name becomes a signed
// response-content-disposition.
func TestGetObject(t *testing.T) {
	t.Parallel()
	const name = "Rapport annuel é.pdf"
	p, err := pathStyleSigner().GetObject(context.Background(), sessionCreds(), presign.GetRequest{
		Bucket: "uploads", Key: "reports/2024.pdf", FileName: name,
	})
	if err != nil {
		t.Fatal(err)
	}
	u := mustParse(t, p.URL)
	if p.Method != http.MethodGet || u.EscapedPath() != "/uploads/reports/2024.pdf" {
		t.Errorf("got %s %s", p.Method, p.URL)
	}
	if got := u.Query().Get("X-Amz-SignedHeaders"); got != "host" {
		t.Errorf("X-Amz-SignedHeaders = %s, want host", got)
	}
	if len(p.Headers) != 0 {
		t.Errorf("Headers = %v, want none", p.Headers)
	}
	checkQuery(t, p, "GetObject", map[string]string{"response-content-disposition": objectkey.ContentDisposition(name)})
	if !signatureValid(t, p.Method, p.URL, nil) {
		t.Fatal("the signature does not match the request")
	}
	q := u.Query()
	q.Set("response-content-disposition", "inline")
	u.RawQuery = q.Encode()
	if signatureValid(t, p.Method, u.String(), nil) {
		t.Error("the signature matches another disposition")
	}

	p, err = pathStyleSigner().GetObject(context.Background(), sessionCreds(), presign.GetRequest{Bucket: "uploads", Key: "k"})
	if err != nil {
		t.Fatal(err)
	}
	checkQuery(t, p, "GetObject", nil)

	if _, err := pathStyleSigner().GetObject(context.Background(), sessionCreds(), presign.GetRequest{Bucket: "uploads"}); !errors.Is(err, presign.ErrInvalidRequest) {
		t.Errorf("no key: got %v, want ErrInvalidRequest", err)
	}
}

// Clients built from the shared AWS config validate response checksums by
// default, which makes the SDK sign x-amz-checksum-mode into GETs; a
// download link must not need that header.
func TestGetObjectNeedsNoChecksumHeader(t *testing.T) {
	t.Parallel()
	s := presign.New(s3.New(s3.Options{
		Region:                     testRegion,
		BaseEndpoint:               aws.String("http://127.0.0.1:9000"),
		UsePathStyle:               true,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenSupported,
	}))
	p, err := s.GetObject(context.Background(), sessionCreds(), presign.GetRequest{Bucket: "uploads", Key: "a.txt", FileName: "a.txt"})
	if err != nil {
		t.Fatal(err)
	}
	if got := mustParse(t, p.URL).Query().Get("X-Amz-SignedHeaders"); got != "host" || len(p.Headers) != 0 {
		t.Errorf("X-Amz-SignedHeaders = %s, headers %v; want host and none", got, p.Headers)
	}
}
