package presign_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/caddy-upload-gateway/upload-gateway/internal/presign"
)

const (
	testAccessKey = "AKIDEXAMPLEPERCALL01"
	testSecret    = "per-call-secret"
	testToken     = "session-token/with+special=chars"
	testEndpoint  = "http://s3.test:9000"
	testRegion    = "eu-west-3"
)

// pathStyleSigner presigns for testEndpoint in path style. The client has
// credentials of its own, which must never be used.
func pathStyleSigner() *presign.Signer {
	return presign.New(s3.New(s3.Options{
		Region:       testRegion,
		BaseEndpoint: aws.String(testEndpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDCLIENTOWNKEYS001", "client-secret", ""),
	}))
}

// sessionCreds are STS-like credentials that expire in 1 hour.
func sessionCreds() aws.CredentialsProvider {
	return aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{
			AccessKeyID: testAccessKey, SecretAccessKey: testSecret, SessionToken: testToken,
			CanExpire: true, Expires: time.Now().Add(time.Hour),
		}, nil
	})
}

// staticCreds are long-term keys without a session token.
func staticCreds() aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(testAccessKey, testSecret, "")
}

// expiringCreds expire after d.
func expiringCreds(d time.Duration) aws.CredentialsProvider {
	return aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{
			AccessKeyID: testAccessKey, SecretAccessKey: testSecret, SessionToken: testToken,
			CanExpire: true, Expires: time.Now().Add(d),
		}, nil
	})
}

func mustParse(t *testing.T, rawURL string) *url.URL {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("parsing %q: %v", rawURL, err)
	}
	return u
}

// signatureValid recomputes, independently of the SDK, the SigV4 signature
// of a presigned request as S3 sees it (method, URL, headers sent; Host is
// the URL's) and compares it with the URL's X-Amz-Signature. It is how S3
// decides whether a request is the one that was signed.
func signatureValid(t *testing.T, method, rawURL string, sent http.Header) bool {
	t.Helper()
	u := mustParse(t, rawURL)
	q := u.Query()
	got := q.Get("X-Amz-Signature")
	q.Del("X-Amz-Signature")

	var query []string
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range q {
			if !yield(k) {
				return
			}
		}
	}) {
		vs := slices.Clone(q[k])
		slices.Sort(vs)
		for _, v := range vs {
			query = append(query, awsEscape(k)+"="+awsEscape(v))
		}
	}
	signedHeaders := q.Get("X-Amz-SignedHeaders")
	var headers strings.Builder
	for _, name := range strings.Split(signedHeaders, ";") {
		var values []string
		if name == "host" {
			values = []string{u.Host}
		} else {
			for _, v := range sent.Values(name) {
				values = append(values, strings.Join(strings.Fields(v), " "))
			}
		}
		fmt.Fprintf(&headers, "%s:%s\n", name, strings.Join(values, ","))
	}
	canonical := strings.Join([]string{method, u.EscapedPath(), strings.Join(query, "&"), headers.String(), signedHeaders, "UNSIGNED-PAYLOAD"}, "\n")

	scope := strings.SplitN(q.Get("X-Amz-Credential"), "/", 2)[1]
	hash := sha256.Sum256([]byte(canonical))
	toSign := "AWS4-HMAC-SHA256\n" + q.Get("X-Amz-Date") + "\n" + scope + "\n" + hex.EncodeToString(hash[:])
	return hmac.Equal([]byte(got), []byte(hex.EncodeToString(hmacSHA256(signingKey(scope), toSign))))
}

// signingKey derives the SigV4 key of testSecret for a credential scope
// (date/region/service/aws4_request).
func signingKey(scope string) []byte {
	key := []byte("AWS4" + testSecret)
	for _, part := range strings.Split(scope, "/") {
		key = hmacSHA256(key, part)
	}
	return key
}

func hmacSHA256(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(data))
	return h.Sum(nil)
}

// awsEscape is SigV4's URI encoding: everything but A-Z a-z 0-9 - _ . ~ as %XX.
func awsEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("-_.~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// sentHeaders is what a client sends for p: its Headers.
func sentHeaders(p *presign.Presigned) http.Header { return p.Headers.Clone() }

// The request lasts 15 minutes by default, at most 7 days, and never
// longer than its credentials; Expires is X-Amz-Date + X-Amz-Expires.
func TestExpiry(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		creds    aws.CredentialsProvider
		expires  time.Duration
		min, max int64 // X-Amz-Expires
	}{
		{"default", sessionCreds(), 0, 900, 900},
		{"asked", staticCreds(), 42 * time.Minute, 2520, 2520},
		{"fraction of a second dropped", staticCreds(), 1500 * time.Millisecond, 1, 1},
		{"capped at 7 days", staticCreds(), 30 * 24 * time.Hour, 604800, 604800},
		{"7 days", staticCreds(), presign.MaxExpires, 604800, 604800},
		{"long-term keys do not cap", staticCreds(), 6 * 24 * time.Hour, 518400, 518400},
		// 600s left, less the 1s margin, less the time the test takes.
		{"capped by the credentials", expiringCreds(10 * time.Minute), time.Hour, 597, 599},
		{"credentials outlive the request", expiringCreds(10 * time.Minute), 5 * time.Minute, 300, 300},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			before := time.Now().Truncate(time.Second)
			p, err := pathStyleSigner().PutObject(context.Background(), tt.creds, presign.PutRequest{
				Bucket: "b", Key: "k", ContentType: "text/plain", ContentLength: 1, Expires: tt.expires,
			})
			if err != nil {
				t.Fatal(err)
			}
			q := mustParse(t, p.URL).Query()
			secs, err := strconv.ParseInt(q.Get("X-Amz-Expires"), 10, 64)
			if err != nil || secs < tt.min || secs > tt.max {
				t.Errorf("X-Amz-Expires = %q, want %d..%d", q.Get("X-Amz-Expires"), tt.min, tt.max)
			}
			date, err := time.Parse("20060102T150405Z", q.Get("X-Amz-Date"))
			if err != nil {
				t.Fatalf("X-Amz-Date %q: %v", q.Get("X-Amz-Date"), err)
			}
			if date.Before(before) || date.After(time.Now()) {
				t.Errorf("X-Amz-Date = %v, want now", date)
			}
			if want := date.Add(time.Duration(secs) * time.Second); !p.Expires.Equal(want) {
				t.Errorf("Expires = %v, want X-Amz-Date + X-Amz-Expires = %v", p.Expires, want)
			}
			c, _ := tt.creds.Retrieve(context.Background())
			if c.CanExpire && !p.Expires.Before(c.Expires) {
				t.Errorf("Expires = %v, not before the credentials' %v", p.Expires, c.Expires)
			}
		})
	}
}

// Every kind of request applies the same expiry rules.
func TestExpiryAppliesToEveryKind(t *testing.T) {
	t.Parallel()
	s := pathStyleSigner()
	ctx := context.Background()
	creds := expiringCreds(5 * time.Minute)
	kinds := map[string]func(time.Duration) (time.Time, error){
		"put": func(d time.Duration) (time.Time, error) {
			p, err := s.PutObject(ctx, creds, presign.PutRequest{Bucket: "b", Key: "k", ContentType: "a/b", ContentLength: 1, Expires: d})
			if err != nil {
				return time.Time{}, err
			}
			return p.Expires, nil
		},
		"part": func(d time.Duration) (time.Time, error) {
			p, err := s.UploadPart(ctx, creds, presign.PartRequest{Bucket: "b", Key: "k", UploadID: "u", PartNumber: 1, Expires: d})
			if err != nil {
				return time.Time{}, err
			}
			return p.Expires, nil
		},
		"get": func(d time.Duration) (time.Time, error) {
			p, err := s.GetObject(ctx, creds, presign.GetRequest{Bucket: "b", Key: "k", Expires: d})
			if err != nil {
				return time.Time{}, err
			}
			return p.Expires, nil
		},
		"post": func(d time.Duration) (time.Time, error) {
			p, err := s.PostObject(ctx, creds, presign.PostRequest{Bucket: "b", Key: "k", ContentType: "a/b", MaxSize: 1, Expires: d})
			if err != nil {
				return time.Time{}, err
			}
			return p.Expires, nil
		},
	}
	for name, sign := range kinds {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for _, tt := range []struct {
				expires  time.Duration
				min, max time.Duration // from now
			}{
				{time.Minute, 58 * time.Second, time.Minute},
				{0, 4*time.Minute + 56*time.Second, 5 * time.Minute}, // 15m default, capped by the credentials
			} {
				got, err := sign(tt.expires)
				if err != nil {
					t.Fatalf("Expires %v: %v", tt.expires, err)
				}
				if d := time.Until(got); d < tt.min || d > tt.max {
					t.Errorf("Expires %v: expires in %v, want %v..%v", tt.expires, d, tt.min, tt.max)
				}
			}
			if _, err := sign(-time.Second); !errors.Is(err, presign.ErrInvalidRequest) {
				t.Errorf("negative Expires: got %v, want ErrInvalidRequest", err)
			}
		})
	}
}

// Credentials that have expired, or expire within the margin, sign nothing.
func TestExpiredCredentials(t *testing.T) {
	t.Parallel()
	for _, d := range []time.Duration{-time.Hour, 0, 500 * time.Millisecond, 1900 * time.Millisecond} {
		_, err := pathStyleSigner().GetObject(context.Background(), expiringCreds(d), presign.GetRequest{Bucket: "b", Key: "k"})
		if !errors.Is(err, presign.ErrCredentialsExpired) {
			t.Errorf("credentials expiring in %v: got %v, want ErrCredentialsExpired", d, err)
		}
	}
}

// Every call signs with the credentials it is given, never the client's.
func TestCredentialsPerCall(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := pathStyleSigner()
	other := credentials.NewStaticCredentialsProvider("AKIDSOMEONEELSE00001", "other", "")
	for _, tt := range []struct {
		creds aws.CredentialsProvider
		key   string
	}{{staticCreds(), testAccessKey}, {other, "AKIDSOMEONEELSE00001"}} {
		p, err := s.GetObject(ctx, tt.creds, presign.GetRequest{Bucket: "b", Key: "k"})
		if err != nil {
			t.Fatal(err)
		}
		if cred := mustParse(t, p.URL).Query().Get("X-Amz-Credential"); !strings.HasPrefix(cred, tt.key+"/") {
			t.Errorf("X-Amz-Credential = %q, want the key %s", cred, tt.key)
		}
		pp, err := s.PostObject(ctx, tt.creds, presign.PostRequest{Bucket: "b", Key: "k", ContentType: "a/b", MaxSize: 1})
		if err != nil {
			t.Fatal(err)
		}
		if cred := pp.Fields["X-Amz-Credential"]; !strings.HasPrefix(cred, tt.key+"/") {
			t.Errorf("POST X-Amz-Credential = %q, want the key %s", cred, tt.key)
		}
	}
}

func TestCredentialsErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := pathStyleSigner()
	errBroken := errors.New("provider broken")
	broken := aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return aws.Credentials{}, errBroken })
	empty := aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return aws.Credentials{}, nil })

	if _, err := s.GetObject(ctx, broken, presign.GetRequest{Bucket: "b", Key: "k"}); !errors.Is(err, errBroken) {
		t.Errorf("provider error: got %v, want it wrapped", err)
	}
	if _, err := s.GetObject(ctx, nil, presign.GetRequest{Bucket: "b", Key: "k"}); !errors.Is(err, presign.ErrInvalidRequest) {
		t.Errorf("nil provider: got %v, want ErrInvalidRequest", err)
	}
	if _, err := s.GetObject(ctx, empty, presign.GetRequest{Bucket: "b", Key: "k"}); !errors.Is(err, presign.ErrInvalidRequest) {
		t.Errorf("credentials without keys: got %v, want ErrInvalidRequest", err)
	}
}

// Session credentials put X-Amz-Security-Token in every URL's query, and
// in the POST form and its policy; long-term keys put it nowhere.
func TestSessionToken(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := pathStyleSigner()
	for _, tt := range []struct {
		name  string
		creds aws.CredentialsProvider
		token string
	}{{"session", sessionCreds(), testToken}, {"long-term keys", staticCreds(), ""}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var urls []*presign.Presigned
			p, err := s.PutObject(ctx, tt.creds, presign.PutRequest{Bucket: "b", Key: "k", ContentType: "a/b", ContentLength: 1})
			if err != nil {
				t.Fatal(err)
			}
			urls = append(urls, p)
			if p, err = s.UploadPart(ctx, tt.creds, presign.PartRequest{Bucket: "b", Key: "k", UploadID: "u", PartNumber: 1}); err != nil {
				t.Fatal(err)
			}
			urls = append(urls, p)
			if p, err = s.GetObject(ctx, tt.creds, presign.GetRequest{Bucket: "b", Key: "k"}); err != nil {
				t.Fatal(err)
			}
			urls = append(urls, p)
			for _, p := range urls {
				q := mustParse(t, p.URL).Query()
				if got, ok := q["X-Amz-Security-Token"]; (tt.token == "") == ok || (ok && got[0] != tt.token) {
					t.Errorf("%s %s: X-Amz-Security-Token = %q, want %q", p.Method, p.URL, got, tt.token)
				}
				if p.Headers.Get("X-Amz-Security-Token") != "" {
					t.Errorf("%s: the token is a header too", p.Method)
				}
			}

			pp, err := s.PostObject(ctx, tt.creds, presign.PostRequest{Bucket: "b", Key: "k", ContentType: "a/b", MaxSize: 1})
			if err != nil {
				t.Fatal(err)
			}
			if got, ok := pp.Fields["X-Amz-Security-Token"]; (tt.token == "") == ok || got != tt.token {
				t.Errorf("POST field X-Amz-Security-Token = %q, want %q", got, tt.token)
			}
			_, hasCond := decodePolicy(t, pp).eq["x-amz-security-token"]
			if hasCond != (tt.token != "") {
				t.Errorf("POST policy has a session token condition: %v, want %v", hasCond, tt.token != "")
			}
		})
	}
}

// Encryption settings become exactly these signed headers.
func TestEncryption(t *testing.T) {
	t.Parallel()
	ctxJSON := base64.StdEncoding.EncodeToString([]byte(`{"tenant":"acme"}`))
	tests := []struct {
		name    string
		enc     presign.Encryption
		want    map[string]string
		wantErr bool
	}{
		{name: "none", enc: presign.Encryption{}, want: map[string]string{}},
		{name: "kms key", enc: presign.Encryption{KMSKeyID: "alias/k"}, want: map[string]string{
			"X-Amz-Server-Side-Encryption":                "aws:kms",
			"X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id": "alias/k",
		}},
		{name: "kms with AWS managed key", enc: presign.Encryption{Mode: presign.SSEKMS}, want: map[string]string{
			"X-Amz-Server-Side-Encryption": "aws:kms",
		}},
		{name: "kms, bucket key, context", enc: presign.Encryption{Mode: presign.SSEKMS, KMSKeyID: "arn:aws:kms:eu-west-3:1:key/x", BucketKey: true, Context: ctxJSON}, want: map[string]string{
			"X-Amz-Server-Side-Encryption":                    "aws:kms",
			"X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id":     "arn:aws:kms:eu-west-3:1:key/x",
			"X-Amz-Server-Side-Encryption-Bucket-Key-Enabled": "true",
			"X-Amz-Server-Side-Encryption-Context":            ctxJSON,
		}},
		{name: "AES256", enc: presign.Encryption{Mode: presign.SSEAES256}, want: map[string]string{
			"X-Amz-Server-Side-Encryption": "AES256",
		}},
		{name: "AES256 with a key", enc: presign.Encryption{Mode: presign.SSEAES256, KMSKeyID: "k"}, wantErr: true},
		{name: "AES256 with a bucket key", enc: presign.Encryption{Mode: presign.SSEAES256, BucketKey: true}, wantErr: true},
		{name: "bucket key alone", enc: presign.Encryption{BucketKey: true}, wantErr: true},
		{name: "context alone", enc: presign.Encryption{Context: ctxJSON}, wantErr: true},
		{name: "context not base64", enc: presign.Encryption{KMSKeyID: "k", Context: `{"a":"b"}`}, wantErr: true},
		{name: "context not JSON", enc: presign.Encryption{KMSKeyID: "k", Context: base64.StdEncoding.EncodeToString([]byte("a=b"))}, wantErr: true},
		{name: "unknown mode", enc: presign.Encryption{Mode: "aws:kms:dsse"}, wantErr: true},
		{name: "key with a newline", enc: presign.Encryption{KMSKeyID: "k\nX-Evil: 1"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := pathStyleSigner().PutObject(context.Background(), sessionCreds(), presign.PutRequest{
				Bucket: "b", Key: "k", ContentType: "a/b", ContentLength: 1, Encryption: tt.enc,
			})
			if tt.wantErr {
				if !errors.Is(err, presign.ErrInvalidRequest) {
					t.Fatalf("got %v, want ErrInvalidRequest", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for name := range p.Headers {
				if strings.HasPrefix(name, "X-Amz-Server-Side-Encryption") {
					got[name] = p.Headers.Get(name)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("encryption headers:\n got %v\nwant %v", got, tt.want)
			}
			if !signatureValid(t, p.Method, p.URL, sentHeaders(p)) {
				t.Errorf("the signature does not match the headers")
			}
		})
	}
}

// Metadata names are lower-cased and values encoded for HTTP.
func TestMetadata(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		meta    map[string]string
		want    map[string]string
		wantErr bool
	}{
		{name: "lower-cased", meta: map[string]string{"Original-Name": "a.pdf"}, want: map[string]string{"X-Amz-Meta-Original-Name": "a.pdf"}},
		{name: "non-ASCII encoded", meta: map[string]string{"name": "é"}, want: map[string]string{"X-Amz-Meta-Name": "=?UTF-8?B?w6k=?="}},
		{name: "control characters dropped", meta: map[string]string{"name": "a\r\nX-Evil: 1"}, want: map[string]string{"X-Amz-Meta-Name": "aX-Evil: 1"}},
		{name: "dots and underscores", meta: map[string]string{"a_b.c": "v"}, want: map[string]string{"X-Amz-Meta-A_b.c": "v"}},
		{name: "empty name", meta: map[string]string{"": "v"}, wantErr: true},
		{name: "space in name", meta: map[string]string{"a b": "v"}, wantErr: true},
		{name: "colon in name", meta: map[string]string{"a:b": "v"}, wantErr: true},
		{name: "same name twice", meta: map[string]string{"Name": "a", "name": "b"}, wantErr: true},
		{name: "too large", meta: map[string]string{"a": strings.Repeat("x", 1000), "b": strings.Repeat("x", 1000), "c": strings.Repeat("x", 100)}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := pathStyleSigner().PutObject(context.Background(), sessionCreds(), presign.PutRequest{
				Bucket: "b", Key: "k", ContentType: "a/b", ContentLength: 1, Metadata: tt.meta,
			})
			if tt.wantErr {
				if !errors.Is(err, presign.ErrInvalidRequest) {
					t.Fatalf("got %v, want ErrInvalidRequest", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for name := range p.Headers {
				if strings.HasPrefix(name, "X-Amz-Meta-") {
					got[name] = p.Headers.Get(name)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("metadata headers:\n got %q\nwant %q", got, tt.want)
			}
			signed := mustParse(t, p.URL).Query().Get("X-Amz-SignedHeaders")
			for name := range tt.want {
				if !slices.Contains(strings.Split(signed, ";"), strings.ToLower(name)) {
					t.Errorf("%s is not in X-Amz-SignedHeaders %q", name, signed)
				}
			}
			if !signatureValid(t, p.Method, p.URL, sentHeaders(p)) {
				t.Errorf("the signature does not match the headers")
			}
		})
	}
}

// A Signer is used by concurrent requests, each with its own credentials.
func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	s := pathStyleSigner()
	errs := make(chan error, 16)
	for i := range 16 {
		go func() {
			key := fmt.Sprintf("AKIDCONCURRENT%06d", i)
			creds := credentials.NewStaticCredentialsProvider(key, testSecret, "")
			var err error
			if i%2 == 0 {
				var p *presign.Presigned
				p, err = s.PutObject(context.Background(), creds, presign.PutRequest{Bucket: "b", Key: "k", ContentType: "a/b", ContentLength: 1})
				if err == nil && !strings.Contains(p.URL, key) {
					err = fmt.Errorf("URL %s is not signed with %s", p.URL, key)
				}
			} else {
				var pp *presign.PresignedPost
				pp, err = s.PostObject(context.Background(), creds, presign.PostRequest{Bucket: "b", Key: "k", ContentType: "a/b", MaxSize: 1})
				if err == nil && !strings.HasPrefix(pp.Fields["X-Amz-Credential"], key+"/") {
					err = fmt.Errorf("form is not signed with %s", key)
				}
			}
			errs <- err
		}()
	}
	for range 16 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
