package ops

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/spf13/cobra"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	"github.com/caddy-upload-gateway/upload-gateway/internal/preflight"
	"github.com/caddy-upload-gateway/upload-gateway/module/shared"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "upload-gateway",
		Short: "Upload gateway tools (check, probe)",
		Long: `
Tools for operating the upload gateway. Subcommands:

  check --config <file> [--adapter <name>]
      Checks, for every upload_gateway and upload_api handler of the config,
      that the identity the gateway runs as can reach the bucket, write and
      read back an object with the configured encryption (then delete it),
      tag objects, create and abort multipart uploads, and assume every
      role ARN with a session policy; that the bucket's CORS rules expose
      ETag when the file API is used; and that a lifecycle rule aborts
      incomplete multipart uploads (a warning only). Prints a table of
      checks naming the IAM action a refused call needs, and exits with
      status 1 when a check failed.

  probe <url>
      GETs url (an upload_health endpoint) and exits with status 0 on a
      2xx answer, 1 otherwise: a container health check for images
      without curl.`,
		CobraFunc: func(cmd *cobra.Command) {
			check := &cobra.Command{
				Use:   "check --config <file> [--adapter <name>]",
				Short: "Checks S3, KMS and STS permissions of every handler in a config",
			}
			check.Flags().StringP("config", "c", "", "Configuration file")
			check.Flags().StringP("adapter", "a", "", "Name of config adapter to apply")
			check.Flags().Duration("timeout", 30*time.Second, "Time limit for all checks")
			check.RunE = caddycmd.WrapCommandFuncForCobra(func(fl caddycmd.Flags) (int, error) {
				return runCheck(os.Stdout, fl.String("config"), fl.String("adapter"), fl.Duration("timeout"))
			})
			cmd.AddCommand(check)

			probe := &cobra.Command{
				Use:   "probe <url>",
				Short: "Exits 0 when a GET of url answers 2xx",
				Args:  cobra.ExactArgs(1),
			}
			probe.Flags().Duration("timeout", 5*time.Second, "Time limit")
			probe.RunE = func(c *cobra.Command, args []string) error {
				timeout, _ := c.Flags().GetDuration("timeout")
				return runProbe(c.Context(), args[0], timeout)
			}
			cmd.AddCommand(probe)
		},
	})
}

func runCheck(w io.Writer, configFile, adapter string, timeout time.Duration) (int, error) {
	if configFile == "" {
		return 1, fmt.Errorf("--config is required")
	}
	cfgJSON, _, _, err := caddycmd.LoadConfig(configFile, adapter)
	if err != nil {
		return 1, fmt.Errorf("loading config: %v", err)
	}
	handlers, err := FindHandlers(cfgJSON)
	if err != nil {
		return 1, err
	}
	if len(handlers) == 0 {
		return 1, fmt.Errorf("no upload_gateway or upload_api handler in %s", configFile)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cctx, cancelCaddy := caddy.NewContext(caddy.Context{Context: ctx})
	defer cancelCaddy()
	var results []preflight.Result
	for i := range handlers {
		h := &handlers[i]
		res, err := h.check(cctx)
		if err != nil {
			return 1, fmt.Errorf("%s: %v", h.Name, err)
		}
		results = append(results, res...)
	}
	if err := preflight.WriteTable(w, results); err != nil {
		return 1, err
	}
	if preflight.Failed(results) {
		return 1, fmt.Errorf("preflight failed")
	}
	return 0, nil
}

// runProbe GETs url and fails unless the answer is 2xx.
func runProbe(ctx context.Context, url string, timeout time.Duration) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s answered %s", url, resp.Status)
	}
	return nil
}

// HandlerConfig is what the check reads of an upload_gateway or upload_api
// handler's JSON.
type HandlerConfig struct {
	// Name labels the handler in the report: its module name and its
	// position among the handlers of that name in the config.
	Name string `json:"-"`

	Handler string `json:"handler"`
	shared.S3Config
	Prefix      string            `json:"prefix,omitempty"`
	DisableTags bool              `json:"disable_tags,omitempty"`
	RoleARNs    map[string]string `json:"role_arns,omitempty"`
	STSEndpoint string            `json:"sts_endpoint,omitempty"`
}

// Handler module names the check looks for.
const (
	handlerGateway = "upload_gateway"
	handlerAPI     = "upload_api"
)

// FindHandlers returns the upload_gateway and upload_api handlers of a
// Caddy JSON config, in the order they appear, wherever they are nested
// (routes, subroutes, error routes).
func FindHandlers(cfgJSON []byte) ([]HandlerConfig, error) {
	raws, err := shared.HandlerJSON(cfgJSON, func(name string) bool { return name == handlerGateway || name == handlerAPI })
	if err != nil {
		return nil, err
	}
	out := make([]HandlerConfig, 0, len(raws))
	count := map[string]int{}
	for _, raw := range raws {
		var h HandlerConfig
		if err := json.Unmarshal(raw, &h); err != nil {
			return nil, fmt.Errorf("decoding %s handler: %v", h.Handler, err)
		}
		count[h.Handler]++
		h.Name = fmt.Sprintf("%s #%d", h.Handler, count[h.Handler])
		out = append(out, h)
	}
	return out, nil
}

// Target is what the preflight checks of h, with the defaults the handler
// applies at provision time. It expands h's placeholders in place.
func (h *HandlerConfig) Target() (preflight.Target, error) {
	h.S3Config.ApplyDefaults()
	h.S3Config.Expand()
	if err := h.S3Config.Validate(); err != nil {
		return preflight.Target{}, err
	}
	enc, err := h.ObjectEncryption()
	if err != nil {
		return preflight.Target{}, err
	}
	t := preflight.Target{Name: h.Name, Bucket: h.Bucket, Prefix: h.Prefix, Encryption: enc}
	switch h.Handler {
	case handlerGateway:
		t.Prefix = cmp.Or(t.Prefix, "uploads/")
		t.Tags = !h.DisableTags
	case handlerAPI:
		t.Prefix = cmp.Or(t.Prefix, "files/")
		t.FileAPI = true
		t.RoleARNs = maps.Clone(h.RoleARNs)
		repl := caddy.NewReplacer()
		for role, arn := range t.RoleARNs {
			t.RoleARNs[role] = repl.ReplaceAll(arn, "")
		}
	}
	return t, nil
}

func (h *HandlerConfig) check(ctx caddy.Context) ([]preflight.Result, error) {
	t, err := h.Target()
	if err != nil {
		return nil, err
	}
	cfg, err := h.AWSConfig(ctx, 1)
	if err != nil {
		return nil, fmt.Errorf("loading AWS configuration: %v", err)
	}
	var stsAPI preflight.STSAPI
	if len(t.RoleARNs) > 0 {
		endpoint := caddy.NewReplacer().ReplaceAll(h.STSEndpoint, "")
		stsAPI = sts.NewFromConfig(cfg, func(o *sts.Options) {
			if endpoint != "" {
				o.BaseEndpoint = aws.String(endpoint)
			}
		})
	}
	return preflight.Run(ctx, t, h.NewS3Client(cfg, nil), stsAPI), nil
}
