package shared

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-upload-gateway/upload-gateway/internal/s3stream"
)

// S3Config says where and how objects are stored. It is shared by the
// upload_gateway and upload_api handlers.
type S3Config struct {
	// The bucket objects are written to. Required.
	Bucket string `json:"bucket,omitempty"`

	// The AWS region. Default: from the AWS environment, else `us-east-1`.
	Region string `json:"region,omitempty"`

	// A custom S3 endpoint URL (for S3-compatible servers), e.g.
	// `http://127.0.0.1:8333`. Default: AWS's endpoint for the region.
	Endpoint string `json:"endpoint,omitempty"`

	// Use path-style addressing (`endpoint/bucket/key`), as most
	// S3-compatible servers need.
	UsePathStyle bool `json:"use_path_style,omitempty"`

	// Static access key id. Placeholders such as `{env.AWS_ACCESS_KEY_ID}`
	// are expanded at provision time. When the keys are empty, the AWS
	// default credential chain is used (environment, shared files, instance
	// or task role).
	AccessKeyID string `json:"access_key_id,omitempty"`

	// Static secret access key; placeholders are expanded.
	SecretAccessKey string `json:"secret_access_key,omitempty"`

	// Session token of temporary static credentials; placeholders are
	// expanded.
	SessionToken string `json:"session_token,omitempty"`

	// Server-side encryption: `aws:kms` (default), `AES256` (SSE-S3), or
	// `none`, which must be chosen explicitly.
	Encryption string `json:"encryption,omitempty"`

	// The KMS key id, ARN or alias (`alias/name`). Required with `aws:kms`.
	KMSKeyID string `json:"kms_key_id,omitempty"`

	// Use an S3 Bucket Key to reduce KMS requests.
	BucketKey bool `json:"bucket_key,omitempty"`

	// The KMS encryption context sent with every object.
	EncryptionContext map[string]string `json:"encryption_context,omitempty"`

	// Whether request bodies sent to a plain-HTTP endpoint are covered by
	// the SigV4 signature: `auto` (default) signs every body's SHA-256
	// unless the endpoint is a loopback address (`127.0.0.0/8`, `::1`,
	// `localhost`), where nobody can alter it in transit; `signed` always
	// signs; `unsigned` sends `UNSIGNED-PAYLOAD`, leaving the body's
	// integrity to the per-part checksum S3 verifies (use it only on a
	// network you trust). Signing costs one SHA-256 pass over every part in
	// the gateway and another in S3. HTTPS endpoints (AWS) are not affected:
	// there bodies are never signed, TLS protects them, and the checksum
	// goes in a signed header.
	PayloadSigning string `json:"payload_signing,omitempty"`
}

// Encryption modes.
const (
	EncryptionKMS  = "aws:kms"
	EncryptionS3   = "AES256"
	EncryptionNone = "none"
)

// Payload signing modes.
const (
	PayloadSigningAuto     = "auto"
	PayloadSigningSigned   = "signed"
	PayloadSigningUnsigned = "unsigned"
)

// unsignedPayload reports whether bodies go to S3 as UNSIGNED-PAYLOAD.
func (c *S3Config) unsignedPayload() bool {
	switch c.PayloadSigning {
	case PayloadSigningUnsigned:
		return true
	case PayloadSigningSigned:
		return false
	}
	u, err := url.Parse(c.Endpoint)
	if c.Endpoint == "" || err != nil || u.Scheme != "http" {
		return false
	}
	if strings.EqualFold(u.Hostname(), "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(u.Hostname())
	return err == nil && ip.IsLoopback()
}

// ApplyDefaults fills in defaults.
func (c *S3Config) ApplyDefaults() {
	c.Encryption = cmp.Or(c.Encryption, EncryptionKMS)
}

// Expand replaces placeholders such as {env.AWS_ACCESS_KEY_ID}.
func (c *S3Config) Expand() {
	repl := caddy.NewReplacer()
	for _, f := range []*string{&c.AccessKeyID, &c.SecretAccessKey, &c.SessionToken, &c.Endpoint, &c.Bucket, &c.Region, &c.KMSKeyID} {
		*f = repl.ReplaceAll(*f, "")
	}
}

// Validate checks the storage settings.
func (c *S3Config) Validate() error {
	if c.Bucket == "" {
		return fmt.Errorf("bucket is required")
	}
	switch c.Encryption {
	case EncryptionKMS:
		if c.KMSKeyID == "" {
			return fmt.Errorf("kms_key_id is required with aws:kms encryption (set encryption none to store objects unencrypted)")
		}
	case EncryptionS3, EncryptionNone:
		if c.KMSKeyID != "" || c.BucketKey || len(c.EncryptionContext) > 0 {
			return fmt.Errorf("kms_key_id, bucket_key and encryption_context need encryption aws:kms")
		}
	default:
		return fmt.Errorf("unknown encryption %q (want aws:kms, AES256 or none)", c.Encryption)
	}
	switch c.PayloadSigning {
	case "", PayloadSigningAuto, PayloadSigningSigned, PayloadSigningUnsigned:
	default:
		return fmt.Errorf("unknown payload_signing %q (want auto, signed or unsigned)", c.PayloadSigning)
	}
	return nil
}

// UnmarshalSubdirective parses one storage subdirective; ok is false when
// the subdirective is not a storage one.
func (c *S3Config) UnmarshalSubdirective(d *caddyfile.Dispenser) (ok bool, err error) {
	switch d.Val() {
	case "bucket":
		return true, OneString(d, &c.Bucket)
	case "region":
		return true, OneString(d, &c.Region)
	case "endpoint":
		return true, OneString(d, &c.Endpoint)
	case "path_style":
		return true, BoolFlag(d, &c.UsePathStyle)
	case "access_key_id":
		return true, OneString(d, &c.AccessKeyID)
	case "secret_access_key":
		return true, OneString(d, &c.SecretAccessKey)
	case "session_token":
		return true, OneString(d, &c.SessionToken)
	case "encryption":
		return true, OneString(d, &c.Encryption)
	case "kms_key":
		return true, OneString(d, &c.KMSKeyID)
	case "bucket_key":
		return true, BoolFlag(d, &c.BucketKey)
	case "encryption_context":
		return true, Pair(d, &c.EncryptionContext)
	case "payload_signing":
		return true, OneString(d, &c.PayloadSigning)
	}
	return false, nil
}

// AWSConfig loads the AWS configuration: the environment and shared files
// only; credentials are resolved lazily.
func (c *S3Config) AWSConfig(ctx caddy.Context, conns int) (aws.Config, error) {
	return LoadAWSConfig(ctx, AWSSettings{
		Region:          c.Region,
		AccessKeyID:     c.AccessKeyID,
		SecretAccessKey: c.SecretAccessKey,
		SessionToken:    c.SessionToken,
		DefaultRegion:   "us-east-1",
		// Parts are many MiB: large transport buffers save thousands of
		// write syscalls per part over the default 4 KiB.
		HTTPClient: awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
			tr.WriteBufferSize = 256 << 10
			tr.ReadBufferSize = 64 << 10
			tr.MaxIdleConnsPerHost = 4 * max(conns, 1)
			// Part bodies go to the socket from the part buffers, not
			// through a copy (plain HTTP).
			tr.DialContext = s3stream.WrapDial(tr.DialContext)
		}),
	})
}

// NewS3Client builds the S3 client from a configuration made by AWSConfig;
// every call is reported to observe when it is set.
func (c *S3Config) NewS3Client(cfg aws.Config, observe func(op, result string, d time.Duration)) *s3.Client {
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		if c.Endpoint != "" {
			o.BaseEndpoint = aws.String(c.Endpoint)
		}
		o.UsePathStyle = c.UsePathStyle
		if observe != nil {
			o.APIOptions = append(o.APIOptions, SDKMetrics(observe))
		}
		// Checksums are chosen per request by the uploader.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		if c.unsignedPayload() {
			o.APIOptions = append(o.APIOptions, s3stream.UnsignedPayload)
		}
	})
}

// ObjectEncryption translates the encryption settings.
func (c *S3Config) ObjectEncryption() (s3stream.Encryption, error) {
	switch c.Encryption {
	case EncryptionNone:
		return s3stream.Encryption{}, nil
	case EncryptionS3:
		return s3stream.Encryption{Mode: types.ServerSideEncryptionAes256}, nil
	}
	enc := s3stream.Encryption{Mode: types.ServerSideEncryptionAwsKms, KMSKeyID: c.KMSKeyID, BucketKey: c.BucketKey}
	if len(c.EncryptionContext) > 0 {
		b, err := json.Marshal(c.EncryptionContext)
		if err != nil {
			return enc, fmt.Errorf("encoding encryption_context: %v", err)
		}
		enc.Context = base64.StdEncoding.EncodeToString(b)
	}
	return enc, nil
}
