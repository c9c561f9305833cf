//go:build integration

package integration_test

// Payload signing: what the gateway signs when it sends bodies to a
// plain-HTTP S3 endpoint, and that a body altered on the way is refused by
// S3 either way (by the signed SHA-256, or by the per-part checksum alone).

import (
	"net/http"
	"regexp"
	"testing"

	"github.com/caddy-upload-gateway/upload-gateway/integration/harness"
)

var hexSHA256 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// An operator runs the gateway on the same host as its S3 server (the fault
// proxy in front of SeaweedFS listens on 127.0.0.1). By default (auto) the
// parts go as UNSIGNED-PAYLOAD, since nobody can alter loopback traffic, and
// their CRC32C checksum still lets S3 refuse a damaged part; with
// payload_signing signed every part is signed with its SHA-256. Single
// PutObject bodies are signed the same way, except that with hash sha256
// they are always signed with the full-object SHA-256 the gateway computes
// anyway. In every mode a body tampered with on the way fails the upload
// with 502 and leaves nothing behind.
func TestPayloadSigning(t *testing.T) {
	const unsigned = "UNSIGNED-PAYLOAD"
	tests := []struct {
		mode     string // payload_signing; "" is the default (auto)
		partHash string // "sha256" or UNSIGNED-PAYLOAD
		hash     bool   // hash sha256
	}{
		{"", unsigned, false},
		{"signed", "sha256", false},
		{"unsigned", unsigned, false},
		{"unsigned", unsigned, true},
	}
	for _, tt := range tests {
		name := tt.mode
		if name == "" {
			name = "auto"
		}
		if tt.hash {
			name += ", hash sha256"
		}
		t.Run(name, func(t *testing.T) {
			var lines []string
			if tt.mode != "" {
				lines = append(lines, "payload_signing "+tt.mode)
			}
			if tt.hash {
				lines = append(lines, "hash sha256")
			}
			prefix := testPrefix(t)
			gw, proxy := faultProxyGateway(t, prefix, lines...)

			resp, src := faultPut(t, gw, "parts.bin", 71, 12*mib) // three 5 MiB parts
			faultExpectStored(t, resp, src, 12*mib)
			resp, src = faultPut(t, gw, "small.bin", 72, 1000) // one PutObject
			faultExpectStored(t, resp, src, 1000)
			faultLogRecords(t, proxy)
			for _, r := range proxy.Records() {
				switch r.Op {
				case harness.OpUploadPart:
					if tt.partHash == unsigned && r.PayloadHash != unsigned || tt.partHash != unsigned && !hexSHA256.MatchString(r.PayloadHash) {
						t.Errorf("UploadPart signed with payload hash %q, want %s", r.PayloadHash, tt.partHash)
					}
				case harness.OpPutObject:
					if tt.hash || tt.partHash != unsigned {
						if !hexSHA256.MatchString(r.PayloadHash) {
							t.Errorf("PutObject signed with payload hash %q, want the body's SHA-256", r.PayloadHash)
						}
					} else if r.PayloadHash != unsigned {
						t.Errorf("PutObject signed with payload hash %q, want %s", r.PayloadHash, unsigned)
					}
				}
			}

			t.Run("a tampered part is refused", func(t *testing.T) {
				proxy.Inject(harness.Fault{Op: harness.OpUploadPart, Skip: 1, Limit: 1, Corrupt: true})
				resp, _ := faultPut(t, gw, "tampered-part.bin", 73, 12*mib)
				expectError(t, resp, http.StatusBadGateway, "STORAGE_ERROR")
				assertNothingLeft(t, prefix+"tampered-part")
				expectTamperedRefused(t, proxy, harness.OpUploadPart)
				faultLogRecords(t, proxy)
				proxy.Clear()
			})
			t.Run("a tampered single object is refused", func(t *testing.T) {
				proxy.Inject(harness.Fault{Op: harness.OpPutObject, Limit: 1, Corrupt: true})
				resp, _ := faultPut(t, gw, "tampered-small.bin", 74, 1000)
				expectError(t, resp, http.StatusBadGateway, "STORAGE_ERROR")
				assertNothingLeft(t, prefix+"tampered-small")
				expectTamperedRefused(t, proxy, harness.OpPutObject)
				faultLogRecords(t, proxy)
				proxy.Clear()
			})
		})
	}
}

// expectTamperedRefused checks that S3 answered the tampered request of op
// with a 4xx error.
func expectTamperedRefused(t *testing.T, proxy *harness.HTTPFaultProxy, op string) {
	t.Helper()
	for _, r := range proxy.Records() {
		if r.Tampered && r.Op == op {
			if r.Status < 400 || r.Status > 499 {
				t.Errorf("S3 answered the tampered %s with %d, want a 4xx refusal", op, r.Status)
			}
			return
		}
	}
	t.Errorf("no tampered %s was sent", op)
}
