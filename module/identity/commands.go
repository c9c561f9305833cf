package identity

import (
	"fmt"

	"github.com/spf13/cobra"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	"github.com/caddy-upload-gateway/upload-gateway/internal/localidp"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "upload-gateway-rotate-key",
		Usage: "--keys-dir <dir>",
		Short: "Rotates the signing key of the local identity provider",
		Long: `
Writes a new signing key into the keys directory of the upload_auth local
identity provider. New tokens are signed with it; running gateways sharing
the directory pick it up without a restart, and tokens signed with the
previous key stay valid until the retention period ends.

Password hashes for the users file come from: caddy hash-password`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Flags().String("keys-dir", "", "The keys_dir of the local identity provider")
			cmd.RunE = caddycmd.WrapCommandFuncForCobra(func(fl caddycmd.Flags) (int, error) {
				dir := fl.String("keys-dir")
				if dir == "" {
					return exitFailed, fmt.Errorf("--keys-dir is required")
				}
				kid, err := localidp.RotateDir(dir)
				if err != nil {
					return exitFailed, err
				}
				fmt.Println("new signing key:", kid)
				return 0, nil
			})
		},
	})
}

// exitFailed mirrors caddy's exit code for a failed command.
const exitFailed = 1
