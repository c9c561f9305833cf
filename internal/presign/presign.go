package presign

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/caddy-upload-gateway/upload-gateway/internal/objectkey"
	"github.com/caddy-upload-gateway/upload-gateway/internal/s3limits"
)

// Expiry bounds.
const (
	// DefaultExpires is how long a request lasts when none is asked for.
	DefaultExpires = 15 * time.Minute
	// MaxExpires is the longest a SigV4 presigned request can last.
	MaxExpires = 7 * 24 * time.Hour
	// credentialsMargin is kept between a request's expiry and its
	// credentials' expiry: it covers the time between reading the clock
	// here and the presigner reading it.
	credentialsMargin = time.Second
)

// Server-side encryption modes, for [Encryption.Mode].
const (
	SSEKMS    = "aws:kms"
	SSEAES256 = "AES256"
)

// Sentinel errors. Every error the Signer returns for a request it refuses
// to sign matches ErrInvalidRequest or ErrCredentialsExpired with
// [errors.Is]. Errors from the credentials provider are wrapped as they
// are (so context.Canceled can be detected); other errors are internal.
var (
	// ErrInvalidRequest means the request is incomplete or asks for
	// something S3 would refuse (a missing type, a size out of range, bad
	// metadata, conflicting encryption settings).
	ErrInvalidRequest = errors.New("presign: invalid request")

	// ErrCredentialsExpired means the signing credentials expire in less
	// than a second: a request signed with them would be useless.
	ErrCredentialsExpired = errors.New("presign: credentials expired")
)

// Signer presigns requests with per-call credentials (a user's STS session,
// or the gateway's own). It is safe for concurrent use.
type Signer struct {
	client    *s3.Client
	presigner *v4.Signer
}

// New returns a Signer that presigns for client. The client supplies the
// region, the endpoint and the addressing style (UsePathStyle); its
// credentials are not used: every call passes the credentials to sign with.
func New(client *s3.Client) *Signer {
	o := client.Options()
	return &Signer{
		client: client,
		// The SDK's S3 presigner, except that it signs every request
		// header as a header instead of hoisting x-amz-* headers outside
		// its fixed list into the query string, where the signature covers
		// them but a server may not apply them (SeaweedFS ignores a
		// hoisted x-amz-server-side-encryption-bucket-key-enabled).
		presigner: v4.NewSigner(func(so *v4.SignerOptions) {
			so.DisableURIPathEscaping = true // S3 paths are escaped once
			so.DisableHeaderHoisting = true
			so.Logger = o.Logger
			so.LogSigning = o.ClientLogMode.IsSigning()
		}),
	}
}

// Presigned is a presigned request. The client sends Method to URL with
// exactly the Headers given (they are signed) and its body, before Expires.
type Presigned struct {
	Method string
	URL    string
	// Headers are the headers the client must send, with these values.
	// Content-Length is the length the body must have (HTTP clients set
	// it from the body). Host is not listed: it is the URL's.
	Headers http.Header
	// Expires is when S3 stops accepting the request.
	Expires time.Time
}

// Encryption is the server-side encryption an upload must request: the
// project's one [s3limits.Encryption]. An empty Mode means SSEKMS when
// KMSKeyID is set, and otherwise no encryption header at all (the bucket's
// default applies).
type Encryption = s3limits.Encryption

// sseSettings checks e and returns it with its mode filled in, or an error
// wrapping ErrInvalidRequest.
func sseSettings(e Encryption) (Encryption, error) {
	mode := e.Mode
	if mode == "" && e.KMSKeyID != "" {
		mode = SSEKMS
	}
	switch mode {
	case "":
		if e.BucketKey || e.Context != "" {
			return s3limits.Encryption{}, invalid("a bucket key or an encryption context needs SSE-KMS")
		}
	case SSEAES256:
		if e.KMSKeyID != "" || e.BucketKey || e.Context != "" {
			return s3limits.Encryption{}, invalid("a KMS key, a bucket key or an encryption context needs SSE-KMS, not AES256")
		}
	case SSEKMS:
		if e.KMSKeyID != "" && !printable(e.KMSKeyID) {
			return s3limits.Encryption{}, invalid("KMS key id %q is not printable ASCII", e.KMSKeyID)
		}
		if e.Context != "" {
			if b, err := base64.StdEncoding.DecodeString(e.Context); err != nil || !json.Valid(b) {
				return s3limits.Encryption{}, invalid("the encryption context must be base64-encoded JSON")
			}
		}
	default:
		return s3limits.Encryption{}, invalid("unknown encryption mode %q (want %q or %q)", mode, SSEKMS, SSEAES256)
	}
	e.Mode = mode
	return e, nil
}

// retrieve retrieves the signing credentials and returns them with the
// lifetime of the request: want (DefaultExpires when 0), at most
// MaxExpires, and ending at least credentialsMargin before the credentials
// do, in whole seconds.
func retrieve(ctx context.Context, p aws.CredentialsProvider, want time.Duration) (aws.Credentials, time.Duration, error) {
	switch {
	case p == nil:
		return aws.Credentials{}, 0, invalid("no credentials")
	case want < 0:
		return aws.Credentials{}, 0, invalid("negative expiry %v", want)
	case want == 0:
		want = DefaultExpires
	}
	ttl := min(want, MaxExpires)
	c, err := p.Retrieve(ctx)
	if err != nil {
		return aws.Credentials{}, 0, fmt.Errorf("presign: retrieving credentials: %w", err)
	}
	if !c.HasKeys() {
		return aws.Credentials{}, 0, invalid("the credentials have no keys")
	}
	if c.CanExpire {
		ttl = min(ttl, time.Until(c.Expires)-credentialsMargin)
	}
	ttl = ttl.Truncate(time.Second)
	if ttl < time.Second {
		return aws.Credentials{}, 0, fmt.Errorf("%w: they expire at %s", ErrCredentialsExpired, c.Expires.UTC().Format(time.RFC3339))
	}
	return c, ttl, nil
}

// presignClient returns a presign client of s.client that signs with c.
// The credentials go into the client, not into per-call options: the SDK's
// PresignPostObject ignores per-call client options.
func (s *Signer) presignClient(c aws.Credentials) *s3.PresignClient {
	provider := aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return c, nil })
	return s3.NewPresignClient(s.client, func(o *s3.PresignOptions) {
		o.Presigner = s.presigner
		o.ClientOptions = append(o.ClientOptions, func(o *s3.Options) { o.Credentials = provider })
	})
}

// result turns the presigner's output into a Presigned, after checking that
// every value in bound is covered by the signature: either signed as a
// header with the same value, or in the query with the same value (a
// hoisted header or a parameter such as uploadId).
func result(req *v4.PresignedHTTPRequest, bound http.Header) (*Presigned, error) {
	u, err := url.Parse(req.URL)
	if err != nil {
		return nil, fmt.Errorf("presign: the presigner returned a bad URL: %v", err)
	}
	q := u.Query()
	signed := strings.Split(q.Get("X-Amz-SignedHeaders"), ";")
	headers := http.Header{}
	for name, values := range req.SignedHeader {
		if strings.EqualFold(name, "Host") {
			continue
		}
		headers[http.CanonicalHeaderKey(name)] = values
	}
	for name := range bound {
		want, isSigned := bound.Get(name), slices.Contains(signed, strings.ToLower(name))
		switch {
		case isSigned && headers.Get(name) == want:
		case !isSigned && headers.Get(name) == "" && queryValue(q, name) == want:
		default:
			return nil, fmt.Errorf("presign: the presigner did not bind %s to %q (signed headers %q)", name, want, q.Get("X-Amz-SignedHeaders"))
		}
	}
	expires, err := expiry(q)
	if err != nil {
		return nil, err
	}
	return &Presigned{Method: req.Method, URL: req.URL, Headers: headers, Expires: expires}, nil
}

// queryValue returns the value of a query parameter named name in any case.
func queryValue(q url.Values, name string) string {
	for k, v := range q {
		if strings.EqualFold(k, name) && len(v) == 1 {
			return v[0]
		}
	}
	return ""
}

// expiry returns X-Amz-Date + X-Amz-Expires of a presigned URL's query.
func expiry(q url.Values) (time.Time, error) {
	date, err := time.Parse("20060102T150405Z", q.Get("X-Amz-Date"))
	if err != nil {
		return time.Time{}, fmt.Errorf("presign: the presigner returned a bad X-Amz-Date: %v", err)
	}
	secs, err := strconv.ParseInt(q.Get("X-Amz-Expires"), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("presign: the presigner returned a bad X-Amz-Expires: %v", err)
	}
	return date.Add(time.Duration(secs) * time.Second), nil
}

// checkObject checks a bucket and key.
func checkObject(bucket, key string) error {
	switch {
	case bucket == "":
		return invalid("no bucket")
	case key == "":
		return invalid("no key")
	case len(key) > s3limits.MaxKeyLen:
		return invalid("the key is %d bytes, longer than %d", len(key), s3limits.MaxKeyLen)
	}
	return nil
}

// checkUpload checks the object and content type of a new object.
func checkUpload(bucket, key, contentType string) error {
	if err := checkObject(bucket, key); err != nil {
		return err
	}
	if contentType == "" {
		return invalid("no content type")
	}
	return checkHeaderValue("content type", contentType)
}

// checkHeaderValue checks a value the client will send as a header.
func checkHeaderValue(what, v string) error {
	if !printable(v) {
		return invalid("%s %q is not printable ASCII", what, v)
	}
	return nil
}

// metadata returns m with names lower-cased and values made header-safe
// with [objectkey.MetadataValue] unless they are already printable ASCII.
func metadata(m map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(m))
	for name, value := range m {
		lower := strings.ToLower(name)
		if lower == "" || strings.IndexFunc(lower, func(r rune) bool {
			return !('a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-' || r == '_' || r == '.')
		}) >= 0 {
			return nil, invalid("metadata name %q: want letters, digits, '-', '_' or '.'", name)
		}
		if _, dup := out[lower]; dup {
			return nil, invalid("metadata name %q is given twice", lower)
		}
		// Values that are already header-safe (e.g. RFC 2047 words the
		// caller encoded) are kept; anything else is encoded once here.
		v := value
		if !printable(v) {
			v = objectkey.MetadataValue(value)
		}
		out[lower] = v
	}
	if err := s3limits.CheckMetadata(out, 0); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	return out, nil
}

// printable reports whether s is printable ASCII, as every value that ends
// up in a signed header must be.
func printable(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r > 0x7e }) < 0
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidRequest}, args...)...)
}
