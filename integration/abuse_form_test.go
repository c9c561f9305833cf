//go:build integration

package integration_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A form of a thousand one-byte fields is charged about what it holds, not
// a read step per field: it goes through a gateway whose whole memory
// budget is 18 MiB (a 64 KiB step per field would take 62.5 MiB and get
// 503).
func TestAbuseThousandTinyFieldsFitASmallMemoryBudget(t *testing.T) {
	prefix := testPrefix(t)
	gw := startGateway(t, gatewayOpts{prefix: prefix, lines: []string{
		"output pass", "part_size 5MiB", "concurrency 2", "memory_limit 18MiB", "memory_wait 1s",
	}}.block()+"\n\trespond 200")

	parts := []secPart{{disposition: `form-data; name="doc"; filename="a.txt"`, contentType: "text/plain", body: []byte("hello")}}
	for i := range 999 {
		parts = append(parts, secPart{disposition: fmt.Sprintf(`form-data; name="f%d"`, i), body: []byte("x")})
	}
	resp := secPost(t, gw, "/form", parts...)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("a form of 999 one-byte fields and a file: %d, want 200 from the app", resp.StatusCode)
	}
}

// In pass mode a client's field names are checked against every name the
// gateway writes, under PHP's and Rack's rules too. Long bracketed names
// after many files are checked quickly, and a name over 1 KiB is refused as
// malformed; the file stored before it is rolled back.
func TestAbuseLongBracketedFieldNamesInPassMode(t *testing.T) {
	prefix := testPrefix(t)
	gw := startGateway(t, gatewayOpts{prefix: prefix, lines: []string{"output pass"}}.block()+"\n\trespond 200")

	var parts []secPart
	for i := range 15 { // 15 files × 7 fields written for each
		parts = append(parts, secPart{disposition: fmt.Sprintf(`form-data; name="doc%d"; filename="%d.txt"`, i, i), contentType: "text/plain", body: []byte("x")})
	}
	long := "a" + strings.Repeat("[b]", 330) // 991 bytes
	for i := range 985 {
		parts = append(parts, secPart{disposition: fmt.Sprintf(`form-data; name="%s[%d]"`, long, i), body: []byte("v")})
	}
	start := time.Now()
	resp := secPost(t, gw, "/form", parts...)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("985 long bracketed fields after 15 files: %d, want 200 from the app", resp.StatusCode)
	}
	t.Logf("15 files and 985 fields of ~1 KiB bracketed names passed in %v", time.Since(start))

	env.DeletePrefix(context.Background(), prefix) // the stored files, kept: the app said 200

	tooLong := "a" + strings.Repeat("[b]", 342) // 1027 bytes
	expectError(t, secPost(t, gw, "/form",
		secPart{disposition: `form-data; name="doc"; filename="a.txt"`, contentType: "text/plain", body: []byte("x")},
		secPart{disposition: `form-data; name="` + tooLong + `"`, body: []byte("v")},
	), http.StatusBadRequest, "MALFORMED_FORM")
	assertNothingLeft(t, prefix)
}
