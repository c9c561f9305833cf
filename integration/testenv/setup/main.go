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
//
// With -probe it then runs a few compatibility probes against the servers (object tagging,
// multipart uploads with CRC32C/SHA256 checksums, the gateway and reader identities, STS
// AssumeRole and a presigned PUT) and prints a report on stderr; it exits non-zero if a probe
// fails. The probes are informational: up.sh does not run them.
//
//	go run ./integration/testenv/setup -s3-endpoint http://127.0.0.1:21833 \
//	    -kms-endpoint http://127.0.0.1:21080 -access-key ... -secret-key ...
//
// Every flag defaults to the matching UGW_* variable of the env file, so after
// `. .testenv/env` a plain `go run ./integration/testenv/setup -probe` works.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
)

type options struct {
	s3Endpoint, kmsEndpoint, region string
	accessKey, secretKey            string
	buckets                         []string
	alias                           string
	wait                            time.Duration
	probe                           bool
	gatewayAccessKey, gatewaySecret string
	readerAccessKey, readerSecret   string
	roleARN                         string
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
	flag.BoolVar(&o.probe, "probe", false, "also run the compatibility probes (tagging, checksums, identities, STS)")
	flag.StringVar(&o.gatewayAccessKey, "gateway-access-key", env("UGW_GATEWAY_ACCESS_KEY", ""), "gateway identity access key (probe)")
	flag.StringVar(&o.gatewaySecret, "gateway-secret-key", env("UGW_GATEWAY_SECRET_KEY", ""), "gateway identity secret key (probe)")
	flag.StringVar(&o.readerAccessKey, "reader-access-key", env("UGW_S3_READER_ACCESS_KEY", ""), "read-only identity access key (probe)")
	flag.StringVar(&o.readerSecret, "reader-secret-key", env("UGW_S3_READER_SECRET_KEY", ""), "read-only identity secret key (probe)")
	flag.StringVar(&o.roleARN, "sts-role-arn", env("UGW_STS_ROLE_ARN", ""), "role the gateway identity may assume (probe)")
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
	if o.probe {
		if !runProbes(ctx, o) {
			os.Exit(1)
		}
	}
}

// awsConfig is built by hand rather than with config.LoadDefaultConfig, so that nothing from the
// developer's ~/.aws or AWS_* variables (profiles, AWS_ENDPOINT_URL, ...) can leak in. The SDK's
// own retries are off: setup retries whole steps itself (see retry), and the probes want to see
// the first answer.
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

// ---------------------------------------------------------------------------------------------
// Compatibility probes (-probe)

type prober struct {
	ctx    context.Context
	o      options
	bucket string
	failed int
	keys   []string // objects to delete at the end
}

// note reports the outcome of an informational probe: its failure does not fail the run.
func (p *prober) note(name string, err error, detail string) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "probe note  %-58s %v\n", name, errDetail(err))
		return
	}
	p.report(name, nil, detail)
}

func (p *prober) report(name string, err error, detail string) {
	switch {
	case err != nil:
		p.failed++
		fmt.Fprintf(os.Stderr, "probe FAIL  %-58s %v\n", name, errDetail(err))
	case detail != "":
		fmt.Fprintf(os.Stderr, "probe ok    %-58s %s\n", name, detail)
	default:
		fmt.Fprintf(os.Stderr, "probe ok    %s\n", name)
	}
}

// expectDenied reports ok when err is an S3 error with code AccessDenied.
func (p *prober) expectDenied(name string, err error) {
	var ae smithy.APIError
	switch {
	case err == nil:
		p.report(name, errors.New("succeeded, expected AccessDenied"), "")
	case errors.As(err, &ae) && ae.ErrorCode() == "AccessDenied":
		p.report(name, nil, "AccessDenied as expected")
	default:
		p.report(name, fmt.Errorf("expected AccessDenied, got: %w", err), "")
	}
}

func errDetail(err error) string {
	var re interface{ HTTPStatusCode() int }
	var ae smithy.APIError
	s := short(err)
	if errors.As(err, &ae) {
		s = ae.ErrorCode() + ": " + ae.ErrorMessage()
	}
	if errors.As(err, &re) {
		s = fmt.Sprintf("HTTP %d %s", re.HTTPStatusCode(), s)
	}
	return s
}

func (p *prober) key(name string) string {
	k := fmt.Sprintf("_testenv/probe-%d-%s", time.Now().UnixNano(), name)
	p.keys = append(p.keys, k)
	return k
}

// onlyReader hides Seek (and everything else) from the SDK: a streamed body of known length,
// as the gateway has when it forwards a client's upload.
type onlyReader struct{ io.Reader }

func runProbes(ctx context.Context, o options) bool {
	p := &prober{ctx: ctx, o: o, bucket: o.buckets[0]}
	admin := s3Client(o, o.accessKey, o.secretKey, "")
	defer func() {
		for _, k := range p.keys {
			_, _ = admin.DeleteObject(context.WithoutCancel(ctx), &s3.DeleteObjectInput{Bucket: aws.String(p.bucket), Key: aws.String(k)})
		}
	}()
	fmt.Fprintf(os.Stderr, "probes against %s, bucket %s:\n", o.s3Endpoint, p.bucket)

	p.probeTagging(admin)
	for _, alg := range []s3types.ChecksumAlgorithm{s3types.ChecksumAlgorithmCrc32c, s3types.ChecksumAlgorithmSha256} {
		p.probeMultipart(admin, alg, false)
		p.probeMultipart(admin, alg, true)
	}
	p.probeStreamedPut(admin)
	p.probeUnknownKey(admin)
	if o.gatewayAccessKey != "" {
		p.probeGateway(s3Client(o, o.gatewayAccessKey, o.gatewaySecret, ""))
	}
	if o.readerAccessKey != "" {
		rd := s3Client(o, o.readerAccessKey, o.readerSecret, "")
		_, err := rd.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(p.bucket), Key: aws.String(p.key("reader")), Body: strings.NewReader("x")})
		p.expectDenied("reader: PutObject", err)
	}
	if o.gatewayAccessKey != "" && o.roleARN != "" {
		p.probeSTS()
	}
	if p.failed > 0 {
		fmt.Fprintf(os.Stderr, "probes: %d FAILED\n", p.failed)
		return false
	}
	fmt.Fprintln(os.Stderr, "probes: all ok")
	return true
}

func (p *prober) probeTagging(sc *s3.Client) {
	ctx, b := p.ctx, aws.String(p.bucket)
	k := aws.String(p.key("tagging"))
	_, err := sc.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: k, Body: strings.NewReader("tags"),
		Tagging: aws.String("stage=put&owner=test"), ServerSideEncryption: s3types.ServerSideEncryptionAwsKms, SSEKMSKeyId: aws.String(p.o.alias)})
	p.report("admin: PutObject with x-amz-tagging + SSE-KMS", err, "")
	if err == nil {
		got, err := sc.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: b, Key: k})
		p.report("admin: GetObjectTagging after tagged PutObject", err, tagString(got))
	}
	_, err = sc.PutObjectTagging(ctx, &s3.PutObjectTaggingInput{Bucket: b, Key: k, Tagging: &s3types.Tagging{
		TagSet: []s3types.Tag{{Key: aws.String("stage"), Value: aws.String("tagged")}, {Key: aws.String("scan"), Value: aws.String("clean")}}}})
	p.report("admin: PutObjectTagging", err, "")
	if err == nil {
		got, err := sc.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: b, Key: k})
		if err == nil && tagString(got) != "scan=clean,stage=tagged" && tagString(got) != "stage=tagged,scan=clean" {
			err = fmt.Errorf("tags after PutObjectTagging: %s", tagString(got))
		}
		p.report("admin: GetObjectTagging after PutObjectTagging", err, tagString(got))
		head, err := sc.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: k})
		if err == nil && head.ServerSideEncryption != s3types.ServerSideEncryptionAwsKms {
			err = fmt.Errorf("SSE after tagging: %q", head.ServerSideEncryption)
		}
		p.report("admin: object still aws:kms after PutObjectTagging", err, "")
	}
	_, err = sc.DeleteObjectTagging(ctx, &s3.DeleteObjectTaggingInput{Bucket: b, Key: k})
	p.report("admin: DeleteObjectTagging", err, "")
}

func tagString(out *s3.GetObjectTaggingOutput) string {
	if out == nil {
		return ""
	}
	var s []string
	for _, t := range out.TagSet {
		s = append(s, aws.ToString(t.Key)+"="+aws.ToString(t.Value))
	}
	return strings.Join(s, ",")
}

// probeMultipart: CreateMultipartUpload (SSE-KMS, ChecksumAlgorithm alg), two UploadParts with
// the same algorithm (5 MiB + 1 KiB), CompleteMultipartUpload with the part checksums, then
// HeadObject with ChecksumMode and a GetObject comparing the bytes.
//
// streamed hides Seek from the SDK. Over plain http the SDK refuses such bodies itself (it can
// neither hash the payload for SigV4 nor send a trailing checksum without TLS), so that variant
// is informational only.
func (p *prober) probeMultipart(sc *s3.Client, alg s3types.ChecksumAlgorithm, streamed bool) {
	ctx, b := p.ctx, aws.String(p.bucket)
	mode := "seekable body"
	report := p.report
	if streamed {
		mode = "streamed body"
		report = p.note
	}
	name := fmt.Sprintf("admin: multipart %s parts (%s)", alg, mode)
	k := aws.String(p.key("mpu-" + strings.ToLower(string(alg))))
	cr, err := sc.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: k, ChecksumAlgorithm: alg,
		ServerSideEncryption: s3types.ServerSideEncryptionAwsKms, SSEKMSKeyId: aws.String(p.o.alias)})
	if err != nil {
		report(name, fmt.Errorf("CreateMultipartUpload: %w", err), "")
		return
	}
	abort := func() {
		_, _ = sc.AbortMultipartUpload(context.WithoutCancel(ctx), &s3.AbortMultipartUploadInput{Bucket: b, Key: k, UploadId: cr.UploadId})
	}
	var whole []byte
	var parts []s3types.CompletedPart
	for i, size := range []int{5 << 20, 1 << 10} {
		data := make([]byte, size)
		_, _ = rand.Read(data)
		whole = append(whole, data...)
		var body io.Reader = bytes.NewReader(data)
		if streamed {
			body = onlyReader{body}
		}
		up, err := sc.UploadPart(ctx, &s3.UploadPartInput{Bucket: b, Key: k, UploadId: cr.UploadId, PartNumber: aws.Int32(int32(i + 1)),
			Body: body, ContentLength: aws.Int64(int64(size)), ChecksumAlgorithm: alg})
		if err != nil {
			abort()
			report(name, fmt.Errorf("UploadPart %d: %w", i+1, err), "")
			return
		}
		parts = append(parts, s3types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ETag: up.ETag,
			ChecksumCRC32C: up.ChecksumCRC32C, ChecksumSHA256: up.ChecksumSHA256})
	}
	partSums := fmt.Sprintf("part checksums echoed: crc32c=%v sha256=%v", parts[0].ChecksumCRC32C != nil, parts[0].ChecksumSHA256 != nil)
	if _, err := sc.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: b, Key: k, UploadId: cr.UploadId,
		MultipartUpload: &s3types.CompletedMultipartUpload{Parts: parts}}); err != nil {
		abort()
		report(name, fmt.Errorf("CompleteMultipartUpload (%s): %w", partSums, err), "")
		return
	}
	head, err := sc.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: k, ChecksumMode: s3types.ChecksumModeEnabled})
	if err != nil {
		report(name, fmt.Errorf("HeadObject: %w", err), "")
		return
	}
	obj, err := sc.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: k})
	if err == nil {
		var data []byte
		data, err = io.ReadAll(obj.Body)
		obj.Body.Close()
		if err == nil && !bytes.Equal(data, whole) {
			err = fmt.Errorf("GetObject returned %d bytes that differ from the %d uploaded", len(data), len(whole))
		}
	}
	report(name, err, fmt.Sprintf("sse=%s, %s, object checksum crc32c=%q sha256=%q type=%q",
		head.ServerSideEncryption, partSums, aws.ToString(head.ChecksumCRC32C), aws.ToString(head.ChecksumSHA256), head.ChecksumType))
}

// probeStreamedPut: a PutObject whose body cannot seek (known length), SSE-KMS. Informational,
// like the streamed multipart variant.
func (p *prober) probeStreamedPut(sc *s3.Client) {
	data := make([]byte, 256<<10)
	_, _ = rand.Read(data)
	_, err := p.putKMS(sc, p.key("streamed-put"), onlyReader{bytes.NewReader(data)}, int64(len(data)))
	p.note("admin: PutObject streamed body + SSE-KMS", err, "")

	// The way to stream over plain http: UNSIGNED-PAYLOAD and no request checksum.
	_, err = sc.PutObject(p.ctx, &s3.PutObjectInput{Bucket: aws.String(p.bucket), Key: aws.String(p.key("streamed-unsigned")),
		Body: onlyReader{bytes.NewReader(data)}, ContentLength: aws.Int64(int64(len(data))),
		ServerSideEncryption: s3types.ServerSideEncryptionAwsKms, SSEKMSKeyId: aws.String(p.o.alias)},
		s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware),
		func(o *s3.Options) { o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired })
	p.report("admin: PutObject streamed body, UNSIGNED-PAYLOAD, SSE-KMS", err, "")
}

// probeUnknownKey documents what SeaweedFS answers for an SSE-KMS key that KMS does not know.
func (p *prober) probeUnknownKey(sc *s3.Client) {
	_, err := sc.PutObject(p.ctx, &s3.PutObjectInput{Bucket: aws.String(p.bucket), Key: aws.String(p.key("unknown-key")),
		Body: strings.NewReader("x"), ServerSideEncryption: s3types.ServerSideEncryptionAwsKms, SSEKMSKeyId: aws.String("alias/ugw-does-not-exist")})
	if err == nil {
		p.report("admin: PutObject with an unknown KMS key", errors.New("succeeded, expected an error"), "")
		return
	}
	p.report("admin: PutObject with an unknown KMS key", nil, "rejected: "+errDetail(err))
}

func (p *prober) putKMS(sc *s3.Client, key string, body io.Reader, n int64) (*s3.PutObjectOutput, error) {
	return sc.PutObject(p.ctx, &s3.PutObjectInput{Bucket: aws.String(p.bucket), Key: aws.String(key), Body: body, ContentLength: aws.Int64(n),
		ServerSideEncryption: s3types.ServerSideEncryptionAwsKms, SSEKMSKeyId: aws.String(p.o.alias)})
}

func (p *prober) probeGateway(gw *s3.Client) {
	ctx, b := p.ctx, aws.String(p.bucket)
	k := p.key("gateway")
	_, err := p.putKMS(gw, k, strings.NewReader("gw"), 2)
	p.report("gateway: PutObject SSE-KMS", err, "")
	_, err = gw.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: aws.String(k)})
	p.report("gateway: HeadObject", err, "")
	_, err = gw.PutObjectTagging(ctx, &s3.PutObjectTaggingInput{Bucket: b, Key: aws.String(k), Tagging: &s3types.Tagging{
		TagSet: []s3types.Tag{{Key: aws.String("a"), Value: aws.String("b")}}}})
	p.report("gateway: PutObjectTagging", err, "")
	_, err = gw.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: b, Prefix: aws.String("_testenv/"), MaxKeys: aws.Int32(1)})
	p.report("gateway: ListObjectsV2", err, "")
	_, err = gw.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("ugw-probe-not-allowed")})
	p.expectDenied("gateway: CreateBucket (other bucket)", err)
}

// probeSTS: the gateway identity assumes the role at the S3 endpoint (SeaweedFS serves STS
// there), then uses the temporary credentials directly and through a presigned PUT.
func (p *prober) probeSTS() {
	ctx, o := p.ctx, p.o
	stc := sts.NewFromConfig(awsConfig(o.region, o.gatewayAccessKey, o.gatewaySecret, ""), func(so *sts.Options) {
		so.BaseEndpoint = aws.String(o.s3Endpoint)
	})
	out, err := stc.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(o.roleARN), RoleSessionName: aws.String("ugw-probe"),
		DurationSeconds: aws.Int32(900)})
	if err != nil {
		p.report("gateway: sts:AssumeRole "+o.roleARN, err, "")
		return
	}
	c := out.Credentials
	p.report("gateway: sts:AssumeRole "+o.roleARN, nil, "expires "+aws.ToTime(c.Expiration).Format(time.RFC3339))
	tmp := s3Client(o, aws.ToString(c.AccessKeyId), aws.ToString(c.SecretAccessKey), aws.ToString(c.SessionToken))
	_, err = p.putKMS(tmp, p.key("sts"), strings.NewReader("sts"), 3)
	p.report("role session: PutObject SSE-KMS", err, "")

	k := p.key("presigned")
	req, err := s3.NewPresignClient(tmp).PresignPutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(p.bucket), Key: aws.String(k),
		ServerSideEncryption: s3types.ServerSideEncryptionAwsKms, SSEKMSKeyId: aws.String(o.alias)}, s3.WithPresignExpires(5*time.Minute))
	if err != nil {
		p.report("role session: presigned PUT", err, "")
		return
	}
	hr, _ := http.NewRequestWithContext(ctx, http.MethodPut, req.URL, strings.NewReader("presigned"))
	for name, vals := range req.SignedHeader {
		if strings.EqualFold(name, "Host") {
			continue
		}
		for _, v := range vals {
			hr.Header.Add(name, v)
		}
	}
	resp, err := http.DefaultClient.Do(hr)
	if err == nil {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(msg))
		}
	}
	p.report("role session: presigned PUT with SSE-KMS headers", err, "")
	if err == nil {
		head, err := s3Client(o, o.accessKey, o.secretKey, "").HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(p.bucket), Key: aws.String(k)})
		if err == nil && head.ServerSideEncryption != s3types.ServerSideEncryptionAwsKms {
			err = fmt.Errorf("presigned object has SSE %q", head.ServerSideEncryption)
		}
		p.report("presigned object is aws:kms", err, "")
	}
}
