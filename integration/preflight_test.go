//go:build integration

package integration_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/caddy-upload-gateway/upload-gateway/integration/harness"
)

// preflightRow is one row of the check's table.
type preflightRow struct{ status, action, detail string }

// runPreflight runs `caddy upload-gateway check` on a Caddyfile with one
// upload_gateway and one upload_api block signing with the given keys,
// (with the test STS role when withRole), and returns its exit status and rows by "handler/check".
func runPreflight(t *testing.T, bucket, access, secret, prefix string, withRole bool) (int, map[string]preflightRow, string) {
	t.Helper()
	storage := fmt.Sprintf(`bucket %s
		region {env.UGW_S3_REGION}
		endpoint {env.UGW_S3_ENDPOINT}
		path_style
		access_key_id %s
		secret_access_key %s
		kms_key {env.UGW_KMS_KEY_ID}`, bucket, access, secret)
	role := ""
	if withRole {
		role = "role_arn uploader {env.UGW_STS_ROLE_ARN}\n\t\tsts_endpoint {env.UGW_STS_ENDPOINT}"
	}
	caddyfile := fmt.Sprintf(`:0 {
	route /upload {
		upload_gateway {
			%s
			prefix %s
		}
	}
	upload_api {
		%s
		prefix %sfiles/
		%s
		insecure_random_secret
	}
}
`, storage, prefix, storage, prefix, role)
	dir := t.TempDir()
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(caddyfile), 0o644); err != nil {
		t.Fatal(err)
	}
	bin, err := harness.BuildGateway()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), bin, "upload-gateway", "check", "--config", path, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+dir)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	code := 0
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running the check: %v\n%s", err, stderr.String())
	}
	rows := map[string]preflightRow{}
	cols := regexp.MustCompile(`\s{2,}`)
	for i, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		f := cols.Split(strings.TrimSpace(line), 5)
		if i == 0 || len(f) < 4 {
			continue
		}
		r := preflightRow{status: f[2], action: f[3]}
		if len(f) == 5 {
			r.detail = f[4]
		}
		rows[f[0]+"/"+f[1]] = r
	}
	if len(rows) == 0 {
		t.Fatalf("no table rows:\n%s\n%s", stdout.String(), stderr.String())
	}
	return code, rows, stdout.String()
}

// The shared server's identities: the gateway's, scoped to the bucket,
// passes what uploads need; the read-only one fails each write with the
// action it lacks named; nothing is left behind either way.
func TestPreflightNamesMissingActions(t *testing.T) {
	prefix := testPrefix(t)
	reader, readerSecret := os.Getenv("UGW_S3_READER_ACCESS_KEY"), os.Getenv("UGW_S3_READER_SECRET_KEY")
	if reader == "" || os.Getenv("UGW_STS_ROLE_ARN") == "" {
		t.Skip("the test environment has no reader identity or STS role")
	}
	tests := []struct {
		name, access, secret string
		want                 map[string]preflightRow // status and action; detail unchecked
	}{
		{"gateway identity", env.GatewayAccess, env.GatewaySecret, map[string]preflightRow{
			"upload_gateway #1/bucket reachable":       {status: "PASS", action: "-"},
			"upload_gateway #1/canary write (SSE)":     {status: "PASS", action: "-"},
			"upload_gateway #1/canary read back":       {status: "PASS", action: "-"},
			"upload_gateway #1/tag write":              {status: "PASS", action: "-"},
			"upload_gateway #1/canary delete":          {status: "PASS", action: "-"},
			"upload_gateway #1/multipart create/abort": {status: "PASS", action: "-"},
			"upload_api #1/assume role uploader":       {status: "PASS", action: "-"},
			"upload_api #1/multipart create/abort":     {status: "PASS", action: "-"},
		}},
		{"read-only identity", reader, readerSecret, map[string]preflightRow{
			"upload_gateway #1/bucket reachable":       {status: "PASS", action: "-"},
			"upload_gateway #1/canary write (SSE)":     {status: "FAIL", action: "s3:PutObject"},
			"upload_gateway #1/tag write":              {status: "SKIP", action: "-"},
			"upload_gateway #1/multipart create/abort": {status: "FAIL", action: "s3:PutObject"},
			"upload_api #1/assume role uploader":       {status: "FAIL", action: "sts:AssumeRole on " + os.Getenv("UGW_STS_ROLE_ARN")},
		}},
		{"unknown identity", "AKIAUGWNOBODY0000001", "nobodySecret0000000000000000000000000001", map[string]preflightRow{
			"upload_gateway #1/bucket reachable":   {status: "FAIL", action: "s3:ListBucket"},
			"upload_gateway #1/canary write (SSE)": {status: "SKIP", action: "-"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, rows, out := runPreflight(t, env.Bucket, tt.access, tt.secret, prefix, true)
			for check, want := range tt.want {
				got, ok := rows[check]
				if !ok || got.status != want.status || got.action != want.action {
					t.Errorf("%s = %+v, want %s %s", check, got, want.status, want.action)
				}
			}
			// The shared bucket has no CORS rules: the file API's check fails
			// there, so every run exits non-zero.
			if code != 1 {
				t.Errorf("exit status %d, want 1", code)
			}
			if t.Failed() {
				t.Logf("table:\n%s", out)
			}
		})
	}
	assertNothingLeft(t, prefix)
}

// A bucket set up as the README says: CORS exposing ETag and a lifecycle
// rule aborting incomplete uploads. Every check passes and the exit
// status is 0 (the admin identity signs, and may assume no role, so no
// role is configured); removing the ETag from the CORS rule fails the run.
func TestPreflightPassesOnAWellConfiguredBucket(t *testing.T) {
	ctx := context.Background()
	admin := env.S3()
	bucket := newBucket(t, "ops-preflight")
	cors := func(expose ...string) {
		t.Helper()
		_, err := admin.PutBucketCors(ctx, &s3.PutBucketCorsInput{Bucket: &bucket, CORSConfiguration: &types.CORSConfiguration{
			CORSRules: []types.CORSRule{{AllowedMethods: []string{"PUT", "POST", "GET"}, AllowedOrigins: []string{"https://app.example.com"},
				AllowedHeaders: []string{"*"}, ExposeHeaders: expose}},
		}})
		if err != nil {
			t.Fatalf("PutBucketCors: %v", err)
		}
	}
	cors("ETag")
	_, err := admin.PutBucketLifecycleConfiguration(ctx, &s3.PutBucketLifecycleConfigurationInput{Bucket: &bucket,
		LifecycleConfiguration: &types.BucketLifecycleConfiguration{Rules: []types.LifecycleRule{{
			ID: aws.String("abort-incomplete"), Status: types.ExpirationStatusEnabled,
			Filter:                         &types.LifecycleRuleFilter{Prefix: aws.String("")},
			AbortIncompleteMultipartUpload: &types.AbortIncompleteMultipartUpload{DaysAfterInitiation: aws.Int32(1)},
		}}}})
	if err != nil {
		t.Fatalf("PutBucketLifecycleConfiguration: %v", err)
	}

	code, rows, out := runPreflight(t, bucket, env.AccessKey, env.SecretKey, "app/", false)
	for check, r := range rows {
		if r.status != "PASS" && !(strings.HasSuffix(check, "/tag write") && r.status == "SKIP") {
			t.Errorf("%s = %+v", check, r)
		}
	}
	if code != 0 {
		t.Errorf("exit status %d, want 0:\n%s", code, out)
	}

	cors("x-amz-version-id")
	code, rows, _ = runPreflight(t, bucket, env.AccessKey, env.SecretKey, "app/", false)
	if r := rows["upload_api #1/bucket CORS exposes ETag"]; r.status != "FAIL" || code != 1 {
		t.Errorf("CORS without ETag: %+v, exit %d", r, code)
	}
}

// deleteBucket empties and deletes a bucket the test created.
func deleteBucket(c *s3.Client, bucket string) {
	ctx := context.Background()
	if ups, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &bucket}); err == nil {
		for _, u := range ups.Uploads {
			_, _ = c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &bucket, Key: u.Key, UploadId: u.UploadId})
		}
	}
	if objs, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &bucket}); err == nil {
		for _, o := range objs.Contents {
			_, _ = c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: o.Key})
		}
	}
	_, _ = c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: &bucket})
}
