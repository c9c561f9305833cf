// Package preflight checks, before traffic arrives, that the identity a
// gateway runs as can do everything its handlers will ask of S3, KMS and
// STS: the bucket is reachable, an object written with the configured
// server-side encryption reads back, tags and multipart uploads are
// allowed, every role can be assumed with a session policy, and the
// bucket's CORS and lifecycle rules suit browser uploads.
//
// # Implementation
//
// Each check makes the smallest call that exercises one permission, on
// a canary key under the handler's prefix that is deleted again. A
// refused call is reported with the IAM action it needs, so the operator
// knows what to add to the policy. Checks of bucket settings the gateway
// itself never reads (CORS, lifecycle) only warn when the identity may
// not read them.
package preflight

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/caddy-upload-gateway/upload-gateway/internal/awserr"
	"github.com/caddy-upload-gateway/upload-gateway/internal/s3limits"
)

// S3API is the part of the S3 client the checks call. Usually, this is
// an instance of github.com/aws/aws-sdk-go-v2/service/s3.Client.
type S3API interface {
	HeadBucket(context.Context, *s3.HeadBucketInput, ...func(*s3.Options)) (*s3.HeadBucketOutput, error)
	PutObject(context.Context, *s3.PutObjectInput, ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	DeleteObject(context.Context, *s3.DeleteObjectInput, ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
	PutObjectTagging(context.Context, *s3.PutObjectTaggingInput, ...func(*s3.Options)) (*s3.PutObjectTaggingOutput, error)
	CreateMultipartUpload(context.Context, *s3.CreateMultipartUploadInput, ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error)
	AbortMultipartUpload(context.Context, *s3.AbortMultipartUploadInput, ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error)
	GetBucketCors(context.Context, *s3.GetBucketCorsInput, ...func(*s3.Options)) (*s3.GetBucketCorsOutput, error)
	GetBucketLifecycleConfiguration(context.Context, *s3.GetBucketLifecycleConfigurationInput, ...func(*s3.Options)) (*s3.GetBucketLifecycleConfigurationOutput, error)
}

// STSAPI is the part of the STS client the checks call. Usually, this is
// an instance of github.com/aws/aws-sdk-go-v2/service/sts.Client.
type STSAPI interface {
	AssumeRole(context.Context, *sts.AssumeRoleInput, ...func(*sts.Options)) (*sts.AssumeRoleOutput, error)
}

// Target is what one handler will do, as far as the checks care.
type Target struct {
	// Name identifies the handler in the report, e.g. "upload_api #1".
	Name string
	// Bucket and Prefix locate the canary object: <Prefix>.upload-gateway-preflight/<random>.
	Bucket, Prefix string
	// Encryption is applied to the canary, as to every object.
	Encryption s3limits.Encryption
	// Tags is true when the handler tags its objects.
	Tags bool
	// FileAPI is true for the presigned file API, whose browser clients
	// need the bucket's CORS rules to expose ETag.
	FileAPI bool
	// RoleARNs maps role names to the ARNs the handler assumes.
	RoleARNs map[string]string
}

// Status is the outcome of one check.
type Status string

// Outcomes of a check.
const (
	Pass Status = "pass"
	Warn Status = "warn"
	Fail Status = "fail"
	Skip Status = "skip"
)

// Result is one row of the report.
type Result struct {
	Target string
	Check  string
	Status Status
	// Action is the IAM action that was refused, when one was.
	Action string
	Detail string
}

// Names of the checks.
const (
	CheckBucket    = "bucket reachable"
	CheckWrite     = "canary write (SSE)"
	CheckRead      = "canary read back"
	CheckTags      = "tag write"
	CheckDelete    = "canary delete"
	CheckMultipart = "multipart create/abort"
	CheckAssume    = "assume role"
	CheckCORS      = "bucket CORS exposes ETag"
	CheckLifecycle = "lifecycle aborts incomplete uploads"
)

// Run runs every check of t and returns one result per check. stsAPI may
// be nil when t has no role ARNs.
func Run(ctx context.Context, t Target, s3API S3API, stsAPI STSAPI) []Result {
	r := &run{ctx: ctx, t: t, s3: s3API}
	r.bucket()
	if r.failed {
		// Nothing else can work; say so once instead of eight times.
		for _, c := range []string{CheckWrite, CheckRead, CheckTags, CheckDelete, CheckMultipart} {
			r.add(c, Skip, "", "bucket not reachable")
		}
	} else {
		r.canary()
		r.multipart()
	}
	r.roles(stsAPI)
	if t.FileAPI {
		r.cors()
	}
	r.lifecycle()
	return r.out
}

// Failed reports whether any result failed.
func Failed(results []Result) bool {
	return slices.ContainsFunc(results, func(res Result) bool { return res.Status == Fail })
}

type run struct {
	ctx    context.Context
	t      Target
	s3     S3API
	out    []Result
	failed bool
}

func (r *run) add(check string, st Status, action, detail string) {
	r.out = append(r.out, Result{Target: r.t.Name, Check: check, Status: st, Action: action, Detail: detail})
	if st == Fail {
		r.failed = true
	}
}

// fail records a failed call, naming action when the service refused it.
func (r *run) fail(check, action string, err error) {
	if denied(err) {
		r.add(check, Fail, action, "access denied: "+err.Error())
		return
	}
	r.add(check, Fail, "", err.Error())
}

func (r *run) bucket() {
	_, err := r.s3.HeadBucket(r.ctx, &s3.HeadBucketInput{Bucket: &r.t.Bucket})
	switch {
	case err == nil:
		r.add(CheckBucket, Pass, "", r.t.Bucket)
	case awserr.Status(err) == 404 || awserr.Code(err) == "NoSuchBucket" || awserr.Code(err) == "NotFound":
		r.add(CheckBucket, Fail, "", "bucket "+r.t.Bucket+" does not exist")
	default:
		r.fail(CheckBucket, "s3:ListBucket", err)
	}
}

// canaryKey is a fresh key under the target's prefix.
func (r *run) canaryKey(kind string) string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return r.t.Prefix + ".upload-gateway-preflight/" + kind + "-" + hex.EncodeToString(b)
}

// kmsAction is the action a refused encrypted write or read needs: S3
// reports a KMS refusal with a KMS.* code or a message naming KMS.
func (r *run) kmsAction(err error, s3Action, kmsAction string) string {
	if r.t.Encryption.Mode == types.ServerSideEncryptionAwsKms || r.t.Encryption.Mode == types.ServerSideEncryptionAwsKmsDsse {
		if strings.HasPrefix(awserr.Code(err), "KMS.") || strings.Contains(strings.ToLower(err.Error()), "kms") {
			return kmsAction
		}
	}
	return s3Action
}

func (r *run) canary() {
	key := r.canaryKey("object")
	body := []byte("upload-gateway preflight canary " + key)
	in := &s3.PutObjectInput{Bucket: &r.t.Bucket, Key: &key, Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body)))}
	in.ServerSideEncryption, in.SSEKMSKeyId, in.BucketKeyEnabled, in.SSEKMSEncryptionContext = r.t.Encryption.RequestFields()
	out, err := r.s3.PutObject(r.ctx, in)
	if err != nil {
		r.fail(CheckWrite, r.kmsAction(err, "s3:PutObject", "kms:GenerateDataKey"), err)
		for _, c := range []string{CheckRead, CheckTags, CheckDelete} {
			r.add(c, Skip, "", "nothing written")
		}
		return
	}
	r.add(CheckWrite, Pass, "", describeSSE(r.t.Encryption, out.ServerSideEncryption, aws.ToString(out.SSEKMSKeyId)))

	if got, err := r.s3.GetObject(r.ctx, &s3.GetObjectInput{Bucket: &r.t.Bucket, Key: &key}); err != nil {
		r.fail(CheckRead, r.kmsAction(err, "s3:GetObject", "kms:Decrypt"), err)
	} else {
		b, err := io.ReadAll(got.Body)
		_ = got.Body.Close()
		switch {
		case err != nil:
			r.add(CheckRead, Fail, "", "reading body: "+err.Error())
		case !bytes.Equal(b, body):
			r.add(CheckRead, Fail, "", "read back differs from what was written")
		default:
			r.add(CheckRead, Pass, "", "")
		}
	}

	if r.t.Tags {
		_, err := r.s3.PutObjectTagging(r.ctx, &s3.PutObjectTaggingInput{Bucket: &r.t.Bucket, Key: &key,
			Tagging: &types.Tagging{TagSet: []types.Tag{{Key: aws.String("preflight"), Value: aws.String("1")}}}})
		if err != nil {
			r.fail(CheckTags, "s3:PutObjectTagging", err)
		} else {
			r.add(CheckTags, Pass, "", "")
		}
	} else {
		r.add(CheckTags, Skip, "", "the handler does not tag objects")
	}

	if _, err := r.s3.DeleteObject(r.ctx, &s3.DeleteObjectInput{Bucket: &r.t.Bucket, Key: &key}); err != nil {
		r.fail(CheckDelete, "s3:DeleteObject", fmt.Errorf("%w (canary %s left behind)", err, key))
	} else {
		r.add(CheckDelete, Pass, "", "")
	}
}

func (r *run) multipart() {
	key := r.canaryKey("multipart")
	in := &s3.CreateMultipartUploadInput{Bucket: &r.t.Bucket, Key: &key}
	in.ServerSideEncryption, in.SSEKMSKeyId, in.BucketKeyEnabled, in.SSEKMSEncryptionContext = r.t.Encryption.RequestFields()
	out, err := r.s3.CreateMultipartUpload(r.ctx, in)
	if err != nil {
		r.fail(CheckMultipart, r.kmsAction(err, "s3:PutObject", "kms:GenerateDataKey"), err)
		return
	}
	if _, err := r.s3.AbortMultipartUpload(r.ctx, &s3.AbortMultipartUploadInput{Bucket: &r.t.Bucket, Key: &key, UploadId: out.UploadId}); err != nil {
		r.fail(CheckMultipart, "s3:AbortMultipartUpload", err)
		return
	}
	r.add(CheckMultipart, Pass, "", "")
}

// sessionPolicy is a small inline policy like the ones the file API
// sends: it narrows the role to the canary prefix.
func (r *run) sessionPolicy() string {
	return fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::%s/%s.upload-gateway-preflight/*"]}]}`,
		r.t.Bucket, r.t.Prefix)
}

func (r *run) roles(stsAPI STSAPI) {
	for _, role := range slices.Sorted(maps.Keys(r.t.RoleARNs)) {
		arn := r.t.RoleARNs[role]
		check := CheckAssume + " " + role
		if stsAPI == nil {
			r.add(check, Fail, "", "no STS client")
			continue
		}
		_, err := stsAPI.AssumeRole(r.ctx, &sts.AssumeRoleInput{
			RoleArn:         aws.String(arn),
			RoleSessionName: aws.String("upload-gateway-preflight"),
			Policy:          aws.String(r.sessionPolicy()),
			DurationSeconds: aws.Int32(900),
		})
		if err != nil {
			r.fail(check, "sts:AssumeRole on "+arn, err)
			continue
		}
		r.add(check, Pass, "", arn)
	}
}

func (r *run) cors() {
	out, err := r.s3.GetBucketCors(r.ctx, &s3.GetBucketCorsInput{Bucket: &r.t.Bucket})
	switch {
	case err != nil && awserr.Code(err) == "NoSuchCORSConfiguration":
		r.add(CheckCORS, Fail, "", "the bucket has no CORS rules; browsers cannot read ETag of uploaded parts")
		return
	case err != nil && denied(err):
		r.add(CheckCORS, Warn, "s3:GetBucketCORS", "cannot read the CORS rules; check by hand that they expose ETag")
		return
	case err != nil:
		r.add(CheckCORS, Warn, "", "reading CORS rules: "+err.Error())
		return
	}
	for _, rule := range out.CORSRules {
		for _, h := range rule.ExposeHeaders {
			if strings.EqualFold(h, "ETag") {
				r.add(CheckCORS, Pass, "", "")
				return
			}
		}
	}
	r.add(CheckCORS, Fail, "", "no CORS rule has ExposeHeaders ETag; browsers cannot complete multipart uploads")
}

func (r *run) lifecycle() {
	out, err := r.s3.GetBucketLifecycleConfiguration(r.ctx, &s3.GetBucketLifecycleConfigurationInput{Bucket: &r.t.Bucket})
	switch {
	case err != nil && awserr.Code(err) == "NoSuchLifecycleConfiguration":
		r.add(CheckLifecycle, Warn, "", "no lifecycle rules; add one with AbortIncompleteMultipartUpload")
		return
	case err != nil && denied(err):
		r.add(CheckLifecycle, Warn, "s3:GetLifecycleConfiguration", "cannot read the lifecycle rules; check by hand")
		return
	case err != nil:
		r.add(CheckLifecycle, Warn, "", "reading lifecycle rules: "+err.Error())
		return
	}
	for _, rule := range out.Rules {
		if rule.Status != types.ExpirationStatusEnabled || rule.AbortIncompleteMultipartUpload == nil {
			continue
		}
		// The rule covers every key under the prefix.
		if strings.HasPrefix(r.t.Prefix, ruleFilterPrefix(rule)) {
			r.add(CheckLifecycle, Pass, "", fmt.Sprintf("after %d days", aws.ToInt32(rule.AbortIncompleteMultipartUpload.DaysAfterInitiation)))
			return
		}
	}
	r.add(CheckLifecycle, Warn, "", "no enabled rule with AbortIncompleteMultipartUpload covers prefix "+cmp.Or(r.t.Prefix, `""`))
}

// ruleFilterPrefix is the key prefix a rule applies to ("" for all).
func ruleFilterPrefix(rule types.LifecycleRule) string {
	if rule.Filter != nil {
		if rule.Filter.Prefix != nil {
			return *rule.Filter.Prefix
		}
		if rule.Filter.And != nil && rule.Filter.And.Prefix != nil {
			return *rule.Filter.And.Prefix
		}
	}
	return aws.ToString(rule.Prefix) //nolint:staticcheck // the deprecated top-level prefix is still returned by some servers
}

func describeSSE(want s3limits.Encryption, got types.ServerSideEncryption, keyID string) string {
	if want.Mode == "" {
		return "bucket default encryption"
	}
	s := "requested " + string(want.Mode)
	if want.KMSKeyID != "" {
		s += " " + want.KMSKeyID
	}
	if got != "" {
		s += "; stored " + string(got)
		if keyID != "" {
			s += " " + keyID
		}
	}
	return s
}

// denied reports whether the service refused the call for lack of a
// permission.
func denied(err error) bool {
	switch awserr.Code(err) {
	case "AccessDenied", "AccessDeniedException", "Forbidden", "UnauthorizedOperation", "KMS.AccessDeniedException":
		return true
	}
	return awserr.Status(err) == 403
}
