// Command setup prepares the local test environment started by integration/testenv/up.sh:
//
//   - KMS (local-kms): a symmetric key with the alias alias/upload-gateway, created if the alias
//     does not exist yet;
//   - S3 (SeaweedFS): the bucket(s), created if missing;
//   - one end-to-end SSE-KMS round trip (PutObject with aws:kms + the alias, HeadObject must
//     report aws:kms, GetObject must return the bytes, then delete), so that a misconfigured KMS
//     shows up here and not as HTTP 500s in the middle of a test run.
//
// It is idempotent. The key ARN is printed on stdout (one line); progress goes to stderr.
// What the gateway needs of these servers (tagging, checksums, identities, STS, presigned URLs)
// is shown by the integration tests themselves.
//
//	go run ./integration/testenv/setup -s3-endpoint http://127.0.0.1:21833 \
//	    -kms-endpoint http://127.0.0.1:21080 -access-key ... -secret-key ...
//
// Every flag defaults to the matching UGW_* variable of the env file, so after
// `. .testenv/env` a plain `go run ./integration/testenv/setup` works.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

type options struct {
	s3Endpoint, kmsEndpoint, region string
	accessKey, secretKey            string
	buckets                         []string
	alias                           string
	wait                            time.Duration
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "setup: "+format+"\n", args...)
}

func main() {
	var o options
	var buckets string
	flag.StringVar(&o.s3Endpoint, "s3-endpoint", env("UGW_S3_ENDPOINT", "http://127.0.0.1:21833"), "S3 endpoint (SeaweedFS)")
	flag.StringVar(&o.kmsEndpoint, "kms-endpoint", env("UGW_KMS_ENDPOINT", "http://127.0.0.1:21080"), "KMS endpoint (local-kms)")
	flag.StringVar(&o.region, "region", env("UGW_S3_REGION", "us-east-1"), "region")
	flag.StringVar(&o.accessKey, "access-key", env("UGW_S3_ACCESS_KEY", ""), "admin access key")
	flag.StringVar(&o.secretKey, "secret-key", env("UGW_S3_SECRET_KEY", ""), "admin secret key")
	flag.StringVar(&buckets, "buckets", env("UGW_S3_BUCKET", "uploads"), "comma-separated bucket names to create")
	flag.StringVar(&o.alias, "alias", env("UGW_KMS_KEY_ID", "alias/upload-gateway"), "KMS alias to create (alias/...)")
	flag.DurationVar(&o.wait, "wait", 60*time.Second, "how long to keep retrying while the servers are still starting")
	flag.Parse()
	for _, b := range strings.Split(buckets, ",") {
		if b = strings.TrimSpace(b); b != "" {
			o.buckets = append(o.buckets, b)
		}
	}
	if o.accessKey == "" || o.secretKey == "" || len(o.buckets) == 0 || !strings.HasPrefix(o.alias, "alias/") {
		fmt.Fprintln(os.Stderr, "setup: need -access-key, -secret-key, at least one bucket and an alias/... name")
		flag.Usage()
		os.Exit(2)
	}

	ctx, cancel := context.WithTimeout(context.Background(), o.wait+5*time.Minute)
	defer cancel()
	arn, err := setup(ctx, o)
	if err != nil {
		logf("FAILED: %v", err)
		os.Exit(1)
	}
	fmt.Println(arn)
}

// awsConfig is built by hand rather than with config.LoadDefaultConfig, so that nothing from the
// developer's ~/.aws or AWS_* variables (profiles, AWS_ENDPOINT_URL, ...) can leak in. The SDK's
// own retries are off: setup retries whole steps itself (see retry).
func awsConfig(region, ak, sk, token string) aws.Config {
	return aws.Config{
		Region:           region,
		Credentials:      credentials.NewStaticCredentialsProvider(ak, sk, token),
		RetryMaxAttempts: 1,
	}
}

func s3Client(o options, ak, sk, token string) *s3.Client {
	return s3.NewFromConfig(awsConfig(o.region, ak, sk, token), func(so *s3.Options) {
		so.BaseEndpoint = aws.String(o.s3Endpoint)
		so.UsePathStyle = true
	})
}

func setup(ctx context.Context, o options) (string, error) {
	deadline := time.Now().Add(o.wait)

	kc := kms.NewFromConfig(awsConfig(o.region, o.accessKey, o.secretKey, ""), func(ko *kms.Options) {
		ko.BaseEndpoint = aws.String(o.kmsEndpoint)
	})
	var arn string
	if err := retry(ctx, deadline, "KMS key "+o.alias, func() error {
		var err error
		arn, err = ensureKey(ctx, kc, o.alias)
		return err
	}); err != nil {
		return "", err
	}
	// A data key through the alias: proves KMS itself works before SeaweedFS depends on it.
	if _, err := kc.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(o.alias), KeySpec: kmstypes.DataKeySpecAes256}); err != nil {
		return "", fmt.Errorf("KMS GenerateDataKey with %s: %w", o.alias, err)
	}
	logf("KMS key %s -> %s", o.alias, arn)

	sc := s3Client(o, o.accessKey, o.secretKey, "")
	for _, b := range o.buckets {
		if err := retry(ctx, deadline, "bucket "+b, func() error { return ensureBucket(ctx, sc, b) }); err != nil {
			return "", err
		}
	}
	// After a restart on existing data SeaweedFS's master refuses to assign volumes for ~15 s
	// ("master is warming up"; the S3 server retries internally), so on a warm restart the first
	// write below takes that long. Tests therefore never see the warm-up.
	for _, b := range o.buckets {
		start := time.Now()
		// Short: a server that is up but cannot use the key will not get better by waiting.
		sseDeadline := start.Add(20 * time.Second)
		if deadline.Before(sseDeadline) {
			sseDeadline = deadline
		}
		if err := retry(ctx, sseDeadline, "SSE-KMS check in "+b, func() error { return checkSSEKMS(ctx, sc, b, o.alias) }); err != nil {
			return "", fmt.Errorf("%w\n  (SeaweedFS answers HTTP 500 when it cannot use the KMS key: check the kms section of s3.json, kms.log and weed.log)", err)
		}
		logf("SSE-KMS round trip in bucket %s: ok (%s)", b, time.Since(start).Round(time.Millisecond))
	}
	return arn, nil
}

// retry runs fn until it succeeds, the deadline passes or the context ends. The servers answer
// with errors (connection refused, 503, ...) for a few seconds after they start listening.
func retry(ctx context.Context, deadline time.Time, what string, fn func() error) error {
	var err error
	for attempt := 1; ; attempt++ {
		if err = fn(); err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s: giving up after %d attempts: %w", what, attempt, err)
		}
		if attempt == 1 || attempt%10 == 0 {
			logf("%s: not yet (%v), retrying", what, short(err))
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func short(err error) string {
	s := err.Error()
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

func ensureKey(ctx context.Context, kc *kms.Client, alias string) (string, error) {
	out, err := kc.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(alias)})
	if err == nil {
		md := out.KeyMetadata
		if md.KeyState != kmstypes.KeyStateEnabled {
			return "", fmt.Errorf("key %s behind %s is in state %s, not Enabled", aws.ToString(md.KeyId), alias, md.KeyState)
		}
		return aws.ToString(md.Arn), nil
	}
	var nf *kmstypes.NotFoundException
	if !errors.As(err, &nf) {
		return "", fmt.Errorf("DescribeKey %s: %w", alias, err)
	}
	created, err := kc.CreateKey(ctx, &kms.CreateKeyInput{
		Description: aws.String("upload-gateway test environment (" + alias + ")"),
		KeySpec:     kmstypes.KeySpecSymmetricDefault,
		KeyUsage:    kmstypes.KeyUsageTypeEncryptDecrypt,
	})
	if err != nil {
		return "", fmt.Errorf("CreateKey: %w", err)
	}
	keyID := aws.ToString(created.KeyMetadata.KeyId)
	if _, err := kc.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(alias), TargetKeyId: aws.String(keyID)}); err != nil {
		var exists *kmstypes.AlreadyExistsException
		if !errors.As(err, &exists) { // someone else won the race: use their key
			return "", fmt.Errorf("CreateAlias %s -> %s: %w", alias, keyID, err)
		}
		_, _ = kc.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(keyID), PendingWindowInDays: aws.Int32(7)})
		return ensureKey(ctx, kc, alias)
	}
	logf("created KMS key %s and alias %s", keyID, alias)
	return aws.ToString(created.KeyMetadata.Arn), nil
}

func ensureBucket(ctx context.Context, sc *s3.Client, bucket string) error {
	if _, err := sc.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)}); err == nil {
		return nil
	}
	_, err := sc.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	var owned *s3types.BucketAlreadyOwnedByYou
	var exists *s3types.BucketAlreadyExists
	switch {
	case err == nil:
		logf("created bucket %s", bucket)
		return nil
	case errors.As(err, &owned), errors.As(err, &exists):
		return nil
	default:
		return fmt.Errorf("CreateBucket %s: %w", bucket, err)
	}
}

func checkSSEKMS(ctx context.Context, sc *s3.Client, bucket, keyID string) error {
	key := fmt.Sprintf("_testenv/sse-kms-check-%d", time.Now().UnixNano())
	body := []byte("upload-gateway test environment: SSE-KMS check\n")
	if _, err := sc.PutObject(ctx, &s3.PutObjectInput{
		Bucket:               aws.String(bucket),
		Key:                  aws.String(key),
		Body:                 bytes.NewReader(body),
		ServerSideEncryption: s3types.ServerSideEncryptionAwsKms,
		SSEKMSKeyId:          aws.String(keyID),
	}); err != nil {
		return fmt.Errorf("PutObject with SSE-KMS (%s): %w", keyID, err)
	}
	defer func() {
		_, _ = sc.DeleteObject(context.WithoutCancel(ctx), &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	}()
	head, err := sc.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return fmt.Errorf("HeadObject %s: %w", key, err)
	}
	if head.ServerSideEncryption != s3types.ServerSideEncryptionAwsKms {
		return fmt.Errorf("HeadObject %s: ServerSideEncryption=%q, want aws:kms (is SSE-KMS configured in s3.json?)", key, head.ServerSideEncryption)
	}
	got, err := sc.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return fmt.Errorf("GetObject %s: %w", key, err)
	}
	data, err := io.ReadAll(got.Body)
	got.Body.Close()
	if err != nil {
		return fmt.Errorf("GetObject %s: %w", key, err)
	}
	if !bytes.Equal(data, body) {
		return fmt.Errorf("GetObject %s: got %d bytes that differ from what was put (decryption broken?)", key, len(data))
	}
	if _, err := sc.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}); err != nil {
		return fmt.Errorf("DeleteObject %s: %w", key, err)
	}
	return nil
}
