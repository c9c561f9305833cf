package module

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-upload-gateway/upload-gateway/internal/s3stream"
)

// newS3Client builds the S3 client. Loading the AWS configuration reads the
// environment and shared files only; credentials are resolved lazily.
func (g *Gateway) newS3Client(ctx caddy.Context) (*s3.Client, error) {
	var opts []func(*config.LoadOptions) error
	if g.Region != "" {
		opts = append(opts, config.WithRegion(g.Region))
	}
	if g.AccessKeyID != "" || g.SecretAccessKey != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(g.AccessKeyID, g.SecretAccessKey, g.SessionToken)))
	}
	// Parts are many MiB: large transport buffers save thousands of write
	// syscalls per part over the default 4 KiB.
	opts = append(opts, config.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.WriteBufferSize = 256 << 10
		tr.ReadBufferSize = 64 << 10
		tr.MaxIdleConnsPerHost = 4 * max(g.Concurrency, 1)
	})))
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, err
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		if g.Endpoint != "" {
			o.BaseEndpoint = aws.String(g.Endpoint)
		}
		o.UsePathStyle = g.UsePathStyle
		// Checksums are chosen per request by the uploader.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
	}), nil
}

// encryption translates the encryption settings.
func (g *Gateway) encryption() (s3stream.Encryption, error) {
	switch g.Encryption {
	case EncryptionNone:
		return s3stream.Encryption{}, nil
	case EncryptionS3:
		return s3stream.Encryption{Mode: types.ServerSideEncryptionAes256}, nil
	}
	enc := s3stream.Encryption{Mode: types.ServerSideEncryptionAwsKms, KMSKeyID: g.KMSKeyID, BucketKey: g.BucketKey}
	if len(g.EncryptionContext) > 0 {
		b, err := json.Marshal(g.EncryptionContext)
		if err != nil {
			return enc, fmt.Errorf("encoding encryption_context: %v", err)
		}
		enc.Context = base64.StdEncoding.EncodeToString(b)
	}
	return enc, nil
}
