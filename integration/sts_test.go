//go:build integration

package integration_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/caddy-upload-gateway/upload-gateway/internal/policy"
	"github.com/caddy-upload-gateway/upload-gateway/internal/rolecreds"
	"github.com/caddy-upload-gateway/upload-gateway/internal/roles"
)

// stsTestEnv returns the STS endpoint and the role the gateway may assume.
func stsTestEnv(t *testing.T) (endpoint, roleARN string) {
	t.Helper()
	endpoint, roleARN = os.Getenv("UGW_STS_ENDPOINT"), os.Getenv("UGW_STS_ROLE_ARN")
	if endpoint == "" || roleARN == "" {
		t.Fatal("UGW_STS_ENDPOINT and UGW_STS_ROLE_ARN are not set: start the test servers with integration/testenv/up.sh and source its env file")
	}
	return endpoint, roleARN
}

// stsClient is an STS client of the test server signing with the keys given.
func stsClient(endpoint, access, secret string) *sts.Client {
	return sts.New(sts.Options{
		Region:       env.Region,
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider(access, secret, ""),
	})
}

// s3With is an S3 client of the test server using creds.
func s3With(creds aws.CredentialsProvider) *s3.Client {
	return s3.New(s3.Options{
		Region:       env.Region,
		BaseEndpoint: aws.String(env.S3Endpoint),
		UsePathStyle: true,
		Credentials:  creds,
	})
}

// stsPut writes a small SSE-KMS object with c.
func stsPut(c *s3.Client, key string) error {
	_, err := c.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket:               &env.Bucket,
		Key:                  aws.String(key),
		Body:                 strings.NewReader("hello " + key),
		ServerSideEncryption: s3types.ServerSideEncryptionAwsKms,
		SSEKMSKeyId:          aws.String(env.KMSKeyID),
	})
	return err
}

// stsMultipart uploads a one-part SSE-KMS multipart upload with c, and
// aborts it if a step after the start fails.
func stsMultipart(c *s3.Client, key string) error {
	ctx := context.Background()
	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:               &env.Bucket,
		Key:                  aws.String(key),
		ServerSideEncryption: s3types.ServerSideEncryptionAwsKms,
		SSEKMSKeyId:          aws.String(env.KMSKeyID),
	})
	if err != nil {
		return err
	}
	part, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: &env.Bucket, Key: aws.String(key),
		UploadId: up.UploadId, PartNumber: aws.Int32(1), Body: strings.NewReader("part one")})
	if err == nil {
		_, err = c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: &env.Bucket, Key: aws.String(key),
			UploadId: up.UploadId, MultipartUpload: &s3types.CompletedMultipartUpload{
				Parts: []s3types.CompletedPart{{ETag: part.ETag, PartNumber: aws.Int32(1)}}}})
	}
	if err != nil {
		_, _ = env.S3().AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &env.Bucket, Key: aws.String(key), UploadId: up.UploadId})
	}
	return err
}

// stsPresignedPut presigns an SSE-KMS PUT with c and sends it. A refusal is
// returned as an error with S3's code and status, like the SDK's.
func stsPresignedPut(t *testing.T, c *s3.Client, key string) error {
	t.Helper()
	req, err := s3.NewPresignClient(c).PresignPutObject(context.Background(), &s3.PutObjectInput{
		Bucket:               &env.Bucket,
		Key:                  aws.String(key),
		ServerSideEncryption: s3types.ServerSideEncryptionAwsKms,
		SSEKMSKeyId:          aws.String(env.KMSKeyID),
	})
	if err != nil {
		t.Fatalf("presigning PUT %s: %v", key, err)
	}
	hr, err := http.NewRequest(req.Method, req.URL, strings.NewReader("presigned "+key))
	if err != nil {
		t.Fatal(err)
	}
	for name, values := range req.SignedHeader {
		if !strings.EqualFold(name, "Host") {
			hr.Header[name] = values
		}
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatalf("presigned PUT %s: %v", key, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	var code string
	if m := regexp.MustCompile(`<Code>([^<]*)</Code>`).FindSubmatch(body); m != nil {
		code = string(m[1])
	}
	return &smithy.OperationError{ServiceID: "S3", OperationName: "presigned PUT", Err: &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: resp},
		Err:      &smithy.GenericAPIError{Code: code, Message: string(body)},
	}}
}

// stsGet reads an object with c.
func stsGet(c *s3.Client, key string) error {
	out, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: &env.Bucket, Key: aws.String(key)})
	if err == nil {
		out.Body.Close()
	}
	return err
}

// stsList lists prefix with c and returns the keys.
func stsList(c *s3.Client, prefix string) ([]string, error) {
	out, err := c.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: &env.Bucket, Prefix: aws.String(prefix)})
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	return keys, nil
}

// wantAllowed fails the test if err is not nil.
func wantAllowed(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Errorf("%s: %v, want it allowed", what, err)
	}
}

// wantDenied fails the test unless err is S3's 403 AccessDenied.
func wantDenied(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: allowed, want AccessDenied", what)
		return
	}
	var ae smithy.APIError
	var re *smithyhttp.ResponseError
	if !errors.As(err, &ae) || ae.ErrorCode() != "AccessDenied" || !errors.As(err, &re) || re.HTTPStatusCode() != 403 {
		t.Errorf("%s: %v, want 403 AccessDenied", what, err)
	}
}

// TestSTSSessionPolicyLimitsUserToOwnPrefix assumes the upload role for an
// uploader with the session policy built from policy.Default, and checks
// with those credentials that the S3 server itself keeps the user inside
// the user's own prefix: plain requests, multipart, tagging, listing and
// presigned URLs.
func TestSTSSessionPolicyLimitsUserToOwnPrefix(t *testing.T) {
	ctx := context.Background()
	endpoint, roleARN := stsTestEnv(t)
	base := testPrefix(t)
	outside := testPrefix(t) // a second prefix, outside base
	pol := policy.Default(base)
	const userA, userB = "user-a@example.com", "user/b"

	// Arrange: B's file, written by the admin; a provider assuming the
	// role with the gateway's keys.
	keyB := pol.OwnerPrefix(userB) + "b.txt"
	if err := stsPut(env.S3(), keyB); err != nil {
		t.Fatalf("admin PutObject %s: %v", keyB, err)
	}
	prov := rolecreds.New(stsClient(endpoint, env.GatewayAccess, env.GatewaySecret), rolecreds.Options{})
	sessA := rolecreds.Session{
		RoleARN:   roleARN,
		UserID:    userA,
		Bucket:    env.Bucket,
		KMSKeyARN: env.KMSKeyARN,
		Grants:    pol.Grants(policy.Subject{ID: userA, Role: roles.Uploader}),
	}
	a := s3With(prov.CredentialsFor(sessA))
	keyA := pol.OwnerPrefix(userA) + "a.txt"

	// Act and assert: A is confined to A's prefix.
	wantAllowed(t, "A puts under A's prefix", stsPut(a, keyA))
	assertEncrypted(t, keyA)
	wantAllowed(t, "A gets A's file", stsGet(a, keyA))
	wantDenied(t, "A puts under B's prefix", stsPut(a, pol.OwnerPrefix(userB)+"from-a.txt"))
	wantDenied(t, "A puts in the base prefix", stsPut(a, base+"from-a.txt"))
	wantDenied(t, "A puts outside the base prefix", stsPut(a, outside+"from-a.txt"))
	wantDenied(t, "A gets B's file", stsGet(a, keyB))
	_, err := a.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &env.Bucket, Key: aws.String(keyB)})
	wantDenied(t, "A deletes B's file", err)

	_, err = a.PutObjectTagging(ctx, &s3.PutObjectTaggingInput{Bucket: &env.Bucket, Key: aws.String(keyA),
		Tagging: &s3types.Tagging{TagSet: []s3types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}}})
	wantAllowed(t, "A tags A's file", err)
	_, err = a.PutObjectTagging(ctx, &s3.PutObjectTaggingInput{Bucket: &env.Bucket, Key: aws.String(keyB),
		Tagging: &s3types.Tagging{TagSet: []s3types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}}})
	wantDenied(t, "A tags B's file", err)
	wantAllowed(t, "A uploads in parts under A's prefix", stsMultipart(a, pol.OwnerPrefix(userA)+"parts.bin"))
	wantDenied(t, "A uploads in parts under B's prefix", stsMultipart(a, pol.OwnerPrefix(userB)+"parts.bin"))

	// Presigned URLs carry the session's limits.
	wantAllowed(t, "presigned PUT under A's prefix", stsPresignedPut(t, a, pol.OwnerPrefix(userA)+"presigned.txt"))
	wantDenied(t, "presigned PUT under B's prefix", stsPresignedPut(t, a, pol.OwnerPrefix(userB)+"presigned.txt"))

	// A user whose id differs only in case has a prefix that differs even
	// without regard to case, which SeaweedFS ignores when it matches
	// session policy resources.
	const userACaps = "User-A@Example.com"
	wantDenied(t, "A puts under the prefix of an id differing in case", stsPut(a, pol.OwnerPrefix(userACaps)+"from-a.txt"))
	if err := stsPut(a, base+"users/"+strings.ToUpper(userA)+"/from-a.txt"); err == nil {
		t.Logf("note: this server matches session policy resources without regard to case (A wrote under %s)",
			base+"users/"+strings.ToUpper(userA)+"/")
	}

	keys, err := stsList(a, pol.OwnerPrefix(userA))
	wantAllowed(t, "A lists A's prefix", err)
	if err == nil && (len(keys) != 3 || !slices.Contains(keys, keyA)) {
		t.Errorf("A lists A's prefix: %v, want %s, parts.bin and presigned.txt", keys, keyA)
	}
	_, err = stsList(a, base)
	wantDenied(t, "A lists the base prefix", err)
	_, err = stsList(a, pol.OwnerPrefix(userB))
	wantDenied(t, "A lists B's prefix", err)
	_, err = stsList(a, "")
	wantDenied(t, "A lists the whole bucket", err)

	// Every request above retrieved A's credentials from the provider.
	for range 100 {
		if _, err := prov.Retrieve(ctx, sessA); err != nil {
			t.Fatalf("Retrieve: %v", err)
		}
	}
	if got := prov.Calls(); got != 1 {
		t.Errorf("AssumeRole calls for one user = %d, want 1", got)
	}

	// An admin session reads everybody's files.
	adm := s3With(prov.CredentialsFor(rolecreds.Session{
		RoleARN:   roleARN,
		UserID:    "admin-1",
		Bucket:    env.Bucket,
		KMSKeyARN: env.KMSKeyARN,
		Grants:    pol.Grants(policy.Subject{ID: "admin-1", Role: roles.Admin}),
	}))
	wantAllowed(t, "admin gets A's file", stsGet(adm, keyA))
	wantAllowed(t, "admin gets B's file", stsGet(adm, keyB))
	keys, err = stsList(adm, base)
	wantAllowed(t, "admin lists the base prefix", err)
	if err == nil && (!slices.Contains(keys, keyA) || !slices.Contains(keys, keyB)) {
		t.Errorf("admin lists the base prefix: %v, want A's and B's files among them", keys)
	}
	wantDenied(t, "admin puts outside the base prefix", stsPut(adm, outside+"from-admin.txt"))
	if got := prov.Calls(); got != 2 {
		t.Errorf("AssumeRole calls for two users = %d, want 2", got)
	}
}

// TestSTSUntrustedIdentityIsDenied checks that STS's refusal to assume the
// role, for an identity the role's trust policy does not name, arrives as
// rolecreds.ErrDenied, and that a wrong duration is a plain error.
func TestSTSUntrustedIdentityIsDenied(t *testing.T) {
	ctx := context.Background()
	endpoint, roleARN := stsTestEnv(t)
	sess := rolecreds.Session{
		RoleARN: roleARN,
		UserID:  "user-a",
		Bucket:  env.Bucket,
		Grants:  policy.Default("files/").Grants(policy.Subject{ID: "user-a", Role: roles.Uploader}),
	}

	// The admin identity may do anything in S3 but is not trusted by the role.
	untrusted := rolecreds.New(stsClient(endpoint, env.AccessKey, env.SecretKey), rolecreds.Options{})
	if _, err := untrusted.Retrieve(ctx, sess); !errors.Is(err, rolecreds.ErrDenied) {
		t.Errorf("untrusted identity: %v, want ErrDenied", err)
	}

	tooShort := rolecreds.New(stsClient(endpoint, env.GatewayAccess, env.GatewaySecret), rolecreds.Options{Duration: time.Minute})
	_, err := tooShort.Retrieve(ctx, sess)
	if err == nil || errors.Is(err, rolecreds.ErrDenied) || errors.Is(err, rolecreds.ErrUnavailable) {
		t.Errorf("1m session: %v, want a configuration error (STS allows 15m or more)", err)
	}
}
