package module

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	"github.com/caddy-upload-gateway/upload-gateway/module/gateway"
	"github.com/caddy-upload-gateway/upload-gateway/module/page"
	"github.com/caddy-upload-gateway/upload-gateway/module/shared"
)

var update = flag.Bool("update", false, "rewrite golden files")

// adapt turns a Caddyfile into indented JSON.
func adapt(t *testing.T, caddyfile []byte) ([]byte, error) {
	t.Helper()
	adapter := caddyconfig.GetAdapter("caddyfile")
	out, warnings, err := adapter.Adapt(caddyfile, map[string]any{"filename": "Caddyfile"})
	if err != nil {
		return nil, err
	}
	for _, w := range warnings {
		t.Logf("warning: %s", w.String())
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, out, "", "\t"); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// TestExampleCaddyfiles adapts every example in caddyfiles/ and compares
// the JSON with caddyfiles/golden/<name>.json (go test -update rewrites them).
func TestExampleCaddyfiles(t *testing.T) {
	files, err := filepath.Glob("../caddyfiles/*.Caddyfile")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example Caddyfiles found: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".Caddyfile")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			got, err := adapt(t, src)
			if err != nil {
				t.Fatalf("adapting %s: %v", file, err)
			}
			golden := filepath.Join("../caddyfiles/golden", name+".json")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("reading golden file (run go test ./module -update to create it): %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("adapted %s differs from %s; got:\n%s", file, golden, got)
			}
			// The adapted config must also provision: decode the handler.
			assertHandlersValid(t, got)
		})
	}
}

// assertHandlersValid decodes every upload_gateway handler in an adapted
// config and runs Validate after applying defaults.
func assertHandlersValid(t *testing.T, cfg []byte) {
	t.Helper()
	raws, err := shared.HandlerJSON(cfg, func(name string) bool { return strings.HasPrefix(name, "upload_") })
	if err != nil {
		t.Fatal(err)
	}
	found := len(raws)
	var order []string
	for _, raw := range raws {
		var head struct {
			Handler string `json:"handler"`
		}
		_ = json.Unmarshal(raw, &head)
		order = append(order, head.Handler)
		if head.Handler == "upload_page" {
			var p page.Page
			if err := json.Unmarshal(raw, &p); err != nil {
				t.Errorf("decoding upload_page: %v", err)
			} else if err := p.Validate(); err != nil {
				t.Errorf("upload_page does not validate: %v\n%s", err, raw)
			}
			continue
		}
		if head.Handler != "upload_gateway" {
			continue
		}
		var g gateway.Gateway
		if err := json.Unmarshal(raw, &g); err != nil {
			t.Errorf("decoding handler: %v", err)
			continue
		}
		g.ApplyDefaults()
		// {env.*} placeholders are expanded at provision time.
		if err := g.Validate(); err != nil {
			t.Errorf("handler does not validate: %v\n%s", err, raw)
		}
	}
	if found == 0 {
		t.Errorf("no upload_* handler in the adapted config")
	}
	// The page must load before anyone signs in: it comes before upload_auth.
	if i := slices.Index(order, "upload_page"); i >= 0 && slices.Index(order, "upload_auth") < i {
		t.Errorf("upload_page comes after upload_auth: %q", order)
	}
}

// TestAdaptFixtures runs testdata/caddyfile_adapt/*.caddyfiletest: a
// Caddyfile, a line of dashes, then the expected JSON or "error: <substring>".
func TestAdaptFixtures(t *testing.T) {
	files, err := filepath.Glob("testdata/caddyfile_adapt/*.caddyfiletest")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			caddyfile, expected, ok := bytes.Cut(src, []byte("\n----------\n"))
			if !ok {
				t.Fatalf("%s has no ---------- separator", file)
			}
			got, err := adapt(t, caddyfile)
			if msg, isErr := strings.CutPrefix(strings.TrimSpace(string(expected)), "error:"); isErr {
				if err == nil || !strings.Contains(err.Error(), strings.TrimSpace(msg)) {
					t.Fatalf("got error %v, want one containing %q", err, strings.TrimSpace(msg))
				}
				return
			}
			if err != nil {
				t.Fatalf("adapting: %v", err)
			}
			if *update {
				out := append(append(caddyfile, []byte("\n----------\n")...), got...)
				if err := os.WriteFile(file, out, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if strings.TrimSpace(string(got)) != strings.TrimSpace(string(expected)) {
				t.Errorf("adapted JSON differs; got:\n%s", got)
			}
		})
	}
}
