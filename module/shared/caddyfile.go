package shared

import (
	"strconv"
	"strings"

	"github.com/dustin/go-humanize"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// ParseHandler is the httpcaddyfile parser of a handler directive: a new T
// set up by its UnmarshalCaddyfile.
func ParseHandler[T any, P interface {
	*T
	caddyfile.Unmarshaler
	caddyhttp.MiddlewareHandler
}](h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	p := P(new(T))
	err := p.UnmarshalCaddyfile(h.Dispenser)
	return p, err
}

// Block consumes the directive name, refuses arguments on its line and
// reads the block with [Subdirectives].
func Block(d *caddyfile.Dispenser, s3 *S3Config, sub func(name string) error) error {
	d.Next() // consume the directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	return Subdirectives(d, s3, sub)
}

// Subdirectives calls sub for each subdirective of the block; a storage
// subdirective goes to s3 instead when s3 is not nil. sub returns
// [Unrecognized] for a name it does not know.
func Subdirectives(d *caddyfile.Dispenser, s3 *S3Config, sub func(name string) error) error {
	for d.NextBlock(0) {
		if s3 != nil {
			if ok, err := s3.UnmarshalSubdirective(d); ok {
				if err != nil {
					return err
				}
				continue
			}
		}
		if err := sub(d.Val()); err != nil {
			return err
		}
	}
	return nil
}

// Nested reads the block a subdirective opens: it refuses arguments on the
// subdirective's line and calls sub for each subdirective of the block.
func Nested(d *caddyfile.Dispenser, sub func(name string) error) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if err := sub(d.Val()); err != nil {
			return err
		}
	}
	return nil
}

// Unrecognized is the error for a subdirective the block does not know.
func Unrecognized(d *caddyfile.Dispenser) error {
	return d.Errf("unrecognized subdirective %s", d.Val())
}

// Strings appends the subdirective's arguments, at least one, to dst.
func Strings(d *caddyfile.Dispenser, dst *[]string) error {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return d.ArgErr()
	}
	*dst = append(*dst, args...)
	return nil
}

// Off reads `off` as the subdirective's one argument into dst as -1, and
// anything else with parse.
func Off[T int | int64](d *caddyfile.Dispenser, dst *T, parse func(*caddyfile.Dispenser, *T) error) error {
	if d.NextArg() && d.Val() == "off" {
		*dst = -1
		if d.NextArg() {
			return d.ArgErr()
		}
		return nil
	}
	d.Prev()
	return parse(d, dst)
}

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

// Parse reads the subdirective's single argument into dst with parse; what
// names the kind of value in the error.
func Parse[T any](d *caddyfile.Dispenser, dst *T, what string, parse func(string) (T, error)) error {
	var s string
	if err := OneString(d, &s); err != nil {
		return err
	}
	v, err := parse(s)
	if err != nil {
		return d.Errf("invalid %s '%s': %v", what, s, err)
	}
	*dst = v
	return nil
}

// Size reads a byte size with units (`16MiB`, `1GB`) into dst.
func Size(d *caddyfile.Dispenser, dst *int64) error {
	return Parse(d, dst, "byte size", parseBytes)
}

// parseBytes parses a byte size with units.
func parseBytes(s string) (int64, error) {
	n, err := humanize.ParseBytes(s)
	return int64(n), err
}

// Rate reads a rate in bytes per second (`8KiB`, `8KiB/s`) into dst.
func Rate(d *caddyfile.Dispenser, dst *int64) error {
	return Parse(d, dst, "rate", func(s string) (int64, error) { return parseBytes(strings.TrimSuffix(s, "/s")) })
}

// Integer reads an integer into dst.
func Integer(d *caddyfile.Dispenser, dst *int) error {
	return Parse(d, dst, "number", strconv.Atoi)
}

// Duration reads a Caddy duration (`90s`, `1d`) into dst.
func Duration(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	return Parse(d, dst, "duration", func(s string) (caddy.Duration, error) {
		dur, err := caddy.ParseDuration(s)
		return caddy.Duration(dur), err
	})
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
