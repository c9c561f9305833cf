package shared

import (
	"cmp"
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// AWSSettings are the AWS settings a config block names; every SDK client
// of the module (S3, STS, Cognito, CloudWatch) is configured through
// LoadAWSConfig from them. Endpoints stay per client, since one handler may
// talk to S3 and STS at different addresses.
type AWSSettings struct {
	Region string
	// Static credentials; empty means the SDK's default chain.
	AccessKeyID, SecretAccessKey, SessionToken string
	// DummyCredentials signs with fixed fake keys when no keys are set,
	// for emulators of APIs that AWS itself calls unauthenticated.
	DummyCredentials bool
	// DefaultRegion is used when neither the settings nor the environment
	// name a region; empty leaves the region unset.
	DefaultRegion string
	// HTTPClient replaces the SDK's default HTTP client when set.
	HTTPClient aws.HTTPClient
}

// LoadAWSConfig loads the SDK configuration from the environment and the
// shared files, with s applied on top. Credentials are resolved lazily, so
// it makes no network call.
func LoadAWSConfig(ctx context.Context, s AWSSettings) (aws.Config, error) {
	var opts []func(*config.LoadOptions) error
	if s.Region != "" {
		opts = append(opts, config.WithRegion(s.Region))
	}
	switch {
	case s.AccessKeyID != "" || s.SecretAccessKey != "":
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(s.AccessKeyID, s.SecretAccessKey, s.SessionToken)))
	case s.DummyCredentials:
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider("local", "local", "")))
	}
	if s.HTTPClient != nil {
		opts = append(opts, config.WithHTTPClient(s.HTTPClient))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return cfg, err
	}
	cfg.Region = cmp.Or(cfg.Region, s.DefaultRegion)
	return cfg, nil
}
