//go:build integration

package integration_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-upload-gateway/upload-gateway/integration/harness"
)

const ownBucket = "ops-own"

// Identities of the own server, each lacking one permission the gateway
// needs (SeaweedFS's actions: Read, Write, List, Tagging, Admin).
var ownIdentities = []ownIdentity{
	{"admin", "AKIAUGWOWNADMIN00001", "ownAdminSecret000000000000000000000001", []string{"Admin", "Read", "Write", "List", "Tagging"}},
	{"full", "AKIAUGWOWNFULL000001", "ownFullSecret0000000000000000000000001", []string{"Read:" + ownBucket, "Write:" + ownBucket, "List:" + ownBucket, "Tagging:" + ownBucket}},
	{"notag", "AKIAUGWOWNNOTAG00001", "ownNotagSecret000000000000000000000001", []string{"Read:" + ownBucket, "Write:" + ownBucket, "List:" + ownBucket}},
	{"noread", "AKIAUGWOWNNOREAD0001", "ownNoreadSecret00000000000000000000001", []string{"Write:" + ownBucket, "List:" + ownBucket, "Tagging:" + ownBucket}},
	{"nowrite", "AKIAUGWOWNNOWRITE001", "ownNowriteSecret0000000000000000000001", []string{"Read:" + ownBucket, "List:" + ownBucket, "Tagging:" + ownBucket}},
}

// The preflight check against identities that each lack one permission:
// the check that needs it fails and names the IAM action; the others pass.
// Only the identity the role trusts may assume it.
func TestPreflightIdentityLackingEachPermission(t *testing.T) {
	w := startOwnWeed(t, ownBucket, ownIdentities, "full")
	w.createBucket(ownIdentities[0].Access, ownIdentities[0].Secret, ownBucket)
	t.Setenv("UGW_S3_ENDPOINT", w.Endpoint)
	t.Setenv("UGW_STS_ENDPOINT", w.Endpoint)
	t.Setenv("UGW_STS_ROLE_ARN", "arn:aws:iam::role/OwnRole")
	tests := []struct {
		id   ownIdentity
		want map[string]string // check → "STATUS action"
	}{
		{ownIdentities[1], map[string]string{
			"upload_gateway #1/canary write (SSE)": "PASS -", "upload_gateway #1/canary read back": "PASS -",
			"upload_gateway #1/tag write": "PASS -", "upload_gateway #1/canary delete": "PASS -",
			"upload_gateway #1/multipart create/abort": "PASS -", "upload_api #1/assume role uploader": "PASS -"}},
		{ownIdentities[2], map[string]string{
			"upload_gateway #1/canary write (SSE)": "PASS -", "upload_gateway #1/tag write": "FAIL s3:PutObjectTagging",
			"upload_gateway #1/canary delete": "PASS -", "upload_api #1/assume role uploader": "FAIL sts:AssumeRole on arn:aws:iam::role/OwnRole"}},
		// SeaweedFS answers HeadBucket only with Read, so an identity without
		// it fails at the first check and the rest is skipped (a refused
		// GetObject alone is covered by internal/preflight's unit tests).
		{ownIdentities[3], map[string]string{
			"upload_gateway #1/bucket reachable": "FAIL s3:ListBucket", "upload_gateway #1/canary write (SSE)": "SKIP -",
			"upload_gateway #1/multipart create/abort": "SKIP -"}},
		{ownIdentities[4], map[string]string{
			"upload_gateway #1/bucket reachable": "PASS -", "upload_gateway #1/canary write (SSE)": "FAIL s3:PutObject",
			"upload_gateway #1/multipart create/abort": "FAIL s3:PutObject"}},
	}
	for _, tt := range tests {
		t.Run(tt.id.Name, func(t *testing.T) {
			code, rows, out := runPreflight(t, ownBucket, tt.id.Access, tt.id.Secret, "app/", true)
			for check, want := range tt.want {
				if got := rows[check].status + " " + rows[check].action; got != want {
					t.Errorf("%s = %q, want %q", check, got, want)
				}
			}
			if code != 1 { // no CORS rules on the bucket: always a failure
				t.Errorf("exit status %d", code)
			}
			if t.Failed() {
				t.Logf("table:\n%s", out)
			}
		})
	}
}

// Readiness follows S3: ready while the server runs, 503 within the cache
// period once it is stopped, ready again after it restarts. Liveness stays
// 200 throughout.
func TestReadinessFollowsS3(t *testing.T) {
	w := startOwnWeed(t, ownBucket, ownIdentities[:2], "full")
	w.createBucket(ownIdentities[0].Access, ownIdentities[0].Secret, ownBucket)
	full := ownIdentities[1]
	gw := startGatewayWith(t, harness.GatewayConfig{
		Site: "respond 404",
		PlainSite: fmt.Sprintf(`handle /healthz {
		upload_health
	}
	handle /readyz {
		upload_health ready {
			bucket %s
			region {env.UGW_S3_REGION}
			endpoint %s
			path_style
			access_key_id %s
			secret_access_key %s
			kms_key {env.UGW_KMS_KEY_ID}
			prefix app/
			cache_for 1s
			timeout 2s
		}
	}`, ownBucket, w.Endpoint, full.Access, full.Secret),
	})
	probe := func(path string) (int, string) {
		resp, err := http.Get(gw.HTTPURL + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitFor := func(want int, within time.Duration) string {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			code, body := probe("/readyz")
			if code == want {
				return body
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz = %d %s, want %d within %v", code, body, want, within)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	if body := waitFor(http.StatusOK, 10*time.Second); !strings.Contains(body, `"ready"`) {
		t.Errorf("ready body %q", body)
	}
	w.Stop()
	start := time.Now()
	body := waitFor(http.StatusServiceUnavailable, 10*time.Second)
	t.Logf("not ready %v after S3 stopped: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(body))
	if !strings.Contains(body, "s3: bucket "+ownBucket) {
		t.Errorf("503 body does not say S3 is down: %s", body)
	}
	if code, _ := probe("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d while S3 is down; liveness must not follow S3", code)
	}
	w.Start()
	waitFor(http.StatusOK, 30*time.Second)
	if t.Failed() {
		t.Logf("weed log:\n%s", w.log())
	}
}
