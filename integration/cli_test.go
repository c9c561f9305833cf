//go:build integration

package integration_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/caddy-upload-gateway/upload-gateway/integration/harness"
)

// An operator checks that the custom build carries the gateway's modules.
func TestListModulesShowsTheGateway(t *testing.T) {
	bin, err := harness.BuildGateway()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "list-modules").CombinedOutput()
	if err != nil {
		t.Fatalf("caddy list-modules: %v\n%s", err, out)
	}
	for _, id := range []string{"http.handlers.upload_gateway", "http.handlers.upload_auth", "http.authentication.providers.upload_auth", "http.handlers.upload_api", "upload_gateway_metrics"} {
		if !strings.Contains("\n"+string(out), "\n"+id+"\n") {
			t.Errorf("list-modules does not show %s:\n%s", id, out)
		}
	}
}
