package shared

import (
	"strconv"
	"strings"

	"github.com/dustin/go-humanize"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// OneString reads the subdirective's single argument into dst.
func OneString(d *caddyfile.Dispenser, dst *string) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	*dst = d.Val()
	if d.NextArg() {
		return d.Errf("unexpected argument '%s'", d.Val())
	}
	return nil
}

// BoolFlag sets dst for a subdirective that takes no argument.
func BoolFlag(d *caddyfile.Dispenser, dst *bool) error {
	if d.NextArg() {
		return d.Errf("unexpected argument '%s'", d.Val())
	}
	*dst = true
	return nil
}

// Pair adds the subdirective's two arguments to dst as name and value.
func Pair(d *caddyfile.Dispenser, dst *map[string]string) error {
	args := d.RemainingArgs()
	if len(args) != 2 {
		return d.ArgErr()
	}
	if *dst == nil {
		*dst = map[string]string{}
	}
	(*dst)[args[0]] = args[1]
	return nil
}

// Size reads a byte size with units (`16MiB`, `1GB`) into dst.
func Size(d *caddyfile.Dispenser, dst *int64) error {
	var s string
	if err := OneString(d, &s); err != nil {
		return err
	}
	n, err := humanize.ParseBytes(s)
	if err != nil {
		return d.Errf("invalid byte size '%s': %v", s, err)
	}
	*dst = int64(n)
	return nil
}

// Integer reads an integer into dst.
func Integer(d *caddyfile.Dispenser, dst *int) error {
	var s string
	if err := OneString(d, &s); err != nil {
		return err
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return d.Errf("invalid number '%s': %v", s, err)
	}
	*dst = n
	return nil
}

// Duration reads a Caddy duration (`90s`, `1d`) into dst.
func Duration(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	var s string
	if err := OneString(d, &s); err != nil {
		return err
	}
	dur, err := caddy.ParseDuration(s)
	if err != nil {
		return d.Errf("invalid duration '%s': %v", s, err)
	}
	*dst = caddy.Duration(dur)
	return nil
}

// StatusCode parses `500` or a class such as `5xx` (returned as 5).
func StatusCode(s string) (int, error) {
	if len(s) == 3 && strings.HasSuffix(strings.ToLower(s), "xx") && s[0] >= '1' && s[0] <= '5' {
		return int(s[0] - '0'), nil
	}
	code, err := strconv.Atoi(s)
	if err != nil || code < 100 || code > 599 {
		return 0, strconv.ErrSyntax
	}
	return code, nil
}
