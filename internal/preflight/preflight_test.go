package preflight

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/caddy-upload-gateway/upload-gateway/internal/s3limits"
)

// fakeS3 stores objects in memory; errs makes a named call fail.
type fakeS3 struct {
	mu      sync.Mutex
	objects map[string][]byte
	uploads int
	errs    map[string]error
	cors    []types.CORSRule
	rules   []types.LifecycleRule
}

func (f *fakeS3) err(op string) error { return f.errs[op] }

func (f *fakeS3) HeadBucket(context.Context, *s3.HeadBucketInput, ...func(*s3.Options)) (*s3.HeadBucketOutput, error) {
	return &s3.HeadBucketOutput{}, f.err("HeadBucket")
}

func (f *fakeS3) PutObject(_ context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	if err := f.err("PutObject"); err != nil {
		return nil, err
	}
	b, _ := io.ReadAll(in.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.objects[*in.Key] = b
	return &s3.PutObjectOutput{ServerSideEncryption: in.ServerSideEncryption, SSEKMSKeyId: in.SSEKMSKeyId}, nil
}

func (f *fakeS3) GetObject(_ context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	if err := f.err("GetObject"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return &s3.GetObjectOutput{Body: io.NopCloser(bytes.NewReader(f.objects[*in.Key]))}, nil
}

func (f *fakeS3) DeleteObject(_ context.Context, in *s3.DeleteObjectInput, _ ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	if err := f.err("DeleteObject"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.objects, *in.Key)
	return &s3.DeleteObjectOutput{}, nil
}

func (f *fakeS3) PutObjectTagging(context.Context, *s3.PutObjectTaggingInput, ...func(*s3.Options)) (*s3.PutObjectTaggingOutput, error) {
	return &s3.PutObjectTaggingOutput{}, f.err("PutObjectTagging")
}

func (f *fakeS3) CreateMultipartUpload(context.Context, *s3.CreateMultipartUploadInput, ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	if err := f.err("CreateMultipartUpload"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.uploads++
	return &s3.CreateMultipartUploadOutput{UploadId: aws.String("u1")}, nil
}

func (f *fakeS3) AbortMultipartUpload(context.Context, *s3.AbortMultipartUploadInput, ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error) {
	if err := f.err("AbortMultipartUpload"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.uploads--
	return &s3.AbortMultipartUploadOutput{}, nil
}

func (f *fakeS3) GetBucketCors(context.Context, *s3.GetBucketCorsInput, ...func(*s3.Options)) (*s3.GetBucketCorsOutput, error) {
	return &s3.GetBucketCorsOutput{CORSRules: f.cors}, f.err("GetBucketCors")
}

func (f *fakeS3) GetBucketLifecycleConfiguration(context.Context, *s3.GetBucketLifecycleConfigurationInput, ...func(*s3.Options)) (*s3.GetBucketLifecycleConfigurationOutput, error) {
	return &s3.GetBucketLifecycleConfigurationOutput{Rules: f.rules}, f.err("GetBucketLifecycleConfiguration")
}

// fakeSTS refuses calls without a session policy on the canary prefix.
type fakeSTS struct{ err error }

func (f *fakeSTS) AssumeRole(_ context.Context, in *sts.AssumeRoleInput, _ ...func(*sts.Options)) (*sts.AssumeRoleOutput, error) {
	if in.Policy == nil || !strings.Contains(*in.Policy, "arn:aws:s3:::uploads/files/.upload-gateway-preflight/") {
		return nil, &smithy.GenericAPIError{Code: "MalformedPolicyDocument", Message: "no session policy"}
	}
	return &sts.AssumeRoleOutput{}, f.err
}

func denyErr(msg string) error { return &smithy.GenericAPIError{Code: "AccessDenied", Message: msg} }

func healthyS3() *fakeS3 {
	return &fakeS3{
		objects: map[string][]byte{},
		errs:    map[string]error{},
		cors:    []types.CORSRule{{AllowedMethods: []string{"PUT"}, AllowedOrigins: []string{"*"}, ExposeHeaders: []string{"etag"}}},
		rules: []types.LifecycleRule{{Status: types.ExpirationStatusEnabled, Filter: &types.LifecycleRuleFilter{Prefix: aws.String("")},
			AbortIncompleteMultipartUpload: &types.AbortIncompleteMultipartUpload{DaysAfterInitiation: aws.Int32(1)}}},
	}
}

func target() Target {
	return Target{
		Name: "upload_api #1", Bucket: "uploads", Prefix: "files/",
		Encryption: s3limits.Encryption{Mode: types.ServerSideEncryptionAwsKms, KMSKeyID: "alias/k"},
		Tags:       true, FileAPI: true,
		RoleARNs: map[string]string{"uploader": "arn:aws:iam::1:role/up"},
	}
}

func byCheck(results []Result) map[string]Result {
	m := map[string]Result{}
	for _, r := range results {
		m[r.Check] = r
	}
	return m
}

func TestRun(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		break_ func(*fakeS3, *fakeSTS)
		check  string
		status Status
		action string
	}{
		{"all pass", func(*fakeS3, *fakeSTS) {}, CheckWrite, Pass, ""},
		{"put denied", func(f *fakeS3, _ *fakeSTS) { f.errs["PutObject"] = denyErr("nope") }, CheckWrite, Fail, "s3:PutObject"},
		{"kms denied", func(f *fakeS3, _ *fakeSTS) {
			f.errs["PutObject"] = &smithy.GenericAPIError{Code: "KMS.AccessDeniedException", Message: "not allowed to use key"}
		}, CheckWrite, Fail, "kms:GenerateDataKey"},
		{"read denied", func(f *fakeS3, _ *fakeSTS) { f.errs["GetObject"] = denyErr("nope") }, CheckRead, Fail, "s3:GetObject"},
		{"tags denied", func(f *fakeS3, _ *fakeSTS) { f.errs["PutObjectTagging"] = denyErr("nope") }, CheckTags, Fail, "s3:PutObjectTagging"},
		{"delete denied", func(f *fakeS3, _ *fakeSTS) { f.errs["DeleteObject"] = denyErr("nope") }, CheckDelete, Fail, "s3:DeleteObject"},
		{"create denied", func(f *fakeS3, _ *fakeSTS) { f.errs["CreateMultipartUpload"] = denyErr("nope") }, CheckMultipart, Fail, "s3:PutObject"},
		{"abort denied", func(f *fakeS3, _ *fakeSTS) { f.errs["AbortMultipartUpload"] = denyErr("nope") }, CheckMultipart, Fail, "s3:AbortMultipartUpload"},
		{"assume denied", func(_ *fakeS3, s *fakeSTS) { s.err = denyErr("not trusted") }, CheckAssume + " uploader", Fail, "sts:AssumeRole on arn:aws:iam::1:role/up"},
		{"no cors", func(f *fakeS3, _ *fakeSTS) {
			f.errs["GetBucketCors"] = &smithy.GenericAPIError{Code: "NoSuchCORSConfiguration"}
		}, CheckCORS, Fail, ""},
		{"cors without etag", func(f *fakeS3, _ *fakeSTS) { f.cors[0].ExposeHeaders = nil }, CheckCORS, Fail, ""},
		{"cors unreadable", func(f *fakeS3, _ *fakeSTS) { f.errs["GetBucketCors"] = denyErr("nope") }, CheckCORS, Warn, "s3:GetBucketCORS"},
		{"no lifecycle", func(f *fakeS3, _ *fakeSTS) {
			f.errs["GetBucketLifecycleConfiguration"] = &smithy.GenericAPIError{Code: "NoSuchLifecycleConfiguration"}
		}, CheckLifecycle, Warn, ""},
		{"lifecycle on other prefix", func(f *fakeS3, _ *fakeSTS) { f.rules[0].Filter.Prefix = aws.String("tmp/") }, CheckLifecycle, Warn, ""},
		{"lifecycle disabled", func(f *fakeS3, _ *fakeSTS) { f.rules[0].Status = types.ExpirationStatusDisabled }, CheckLifecycle, Warn, ""},
		{"bucket missing", func(f *fakeS3, _ *fakeSTS) {
			f.errs["HeadBucket"] = &smithy.GenericAPIError{Code: "NotFound"}
		}, CheckWrite, Skip, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, s := healthyS3(), &fakeSTS{}
			tt.break_(f, s)
			results := Run(t.Context(), target(), f, s)
			got := byCheck(results)[tt.check]
			if got.Status != tt.status || got.Action != tt.action {
				t.Errorf("%s = %s %q (%s), want %s %q", tt.check, got.Status, got.Action, got.Detail, tt.status, tt.action)
			}
			wantFailed := tt.status == Fail || tt.name == "bucket missing"
			if Failed(results) != wantFailed {
				t.Errorf("Failed = %v, want %v: %+v", Failed(results), wantFailed, results)
			}
			if tt.name == "all pass" {
				for _, r := range results {
					if r.Status != Pass {
						t.Errorf("%s: %s %s", r.Check, r.Status, r.Detail)
					}
				}
				if len(f.objects) != 0 || f.uploads != 0 {
					t.Errorf("left behind %d objects, %d uploads", len(f.objects), f.uploads)
				}
			}
		})
	}
}

func TestWriteTable(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	err := WriteTable(&b, []Result{
		{Target: "upload_gateway #1", Check: CheckWrite, Status: Fail, Action: "s3:PutObject", Detail: "access denied:\nline two"},
		{Target: "upload_gateway #1", Check: CheckLifecycle, Status: Warn},
	})
	if err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"MISSING ACTION", "FAIL", "s3:PutObject", "access denied: line two", "WARN"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "\n"); n != 3 {
		t.Errorf("table has %d lines, want 3:\n%s", n, out)
	}
}
