package gateway

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-upload-gateway/upload-gateway/internal/refusal"
	"github.com/caddy-upload-gateway/upload-gateway/internal/uploadreq"
	"github.com/caddy-upload-gateway/upload-gateway/module/shared"
)

// OnError says what a browser gets when the gateway refuses a form, instead
// of the JSON error a script would read: a redirect to a page that explains,
// or the request handed to the next handler (the application) with fields
// naming the error in place of the form, so that the application re-renders
// its page with a message. Nothing is stored either way: whatever was
// stored before the refusal has been deleted.
//
// Set exactly one of redirect and pass_field.
type OnError struct {
	// Answer 303 See Other to this URL. Placeholders are replaced, among
	// them `{http.upload_gateway.error_status}` (e.g. 413),
	// `{http.upload_gateway.error_code}` (e.g. `FILE_TOO_LARGE`) and
	// `{http.upload_gateway.error}` (the message; escape it with care in
	// URLs). Example: `/upload?error={http.upload_gateway.error_status}`.
	Redirect string `json:"redirect,omitempty"`

	// Pass the request on as a POST of a new multipart form holding only
	// `<pass_field>` (the status), `<pass_field>_code` and
	// `<pass_field>_message`: none of the client's fields or files. Its
	// values say only that the form was refused; the application must not
	// trust them for anything else (a client can send such a form itself).
	PassField string `json:"pass_field,omitempty"`

	// The statuses handled this way; others get the JSON error. 4 and 5
	// stand for all 4xx and 5xx. Default 401, 403, 413 and 415.
	Statuses []int `json:"statuses,omitempty"`
}

// defaultOnErrorStatuses are the refusals a form's page can explain.
var defaultOnErrorStatuses = []int{http.StatusUnauthorized, http.StatusForbidden,
	http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType}

func (o *OnError) validate() error {
	if (o.Redirect == "") == (o.PassField == "") {
		return fmt.Errorf("on_error: set one of redirect and pass_field")
	}
	for _, s := range o.Statuses {
		if (s < 400 && s != 4 && s != 5) || s > 599 {
			return fmt.Errorf("on_error: invalid status %d (want 4xx or 5xx)", s)
		}
	}
	return nil
}

// handles reports whether a refusal with status is handled.
func (o *OnError) handles(status int) bool {
	if len(o.Statuses) == 0 {
		return slices.Contains(defaultOnErrorStatuses, status)
	}
	return slices.Contains(o.Statuses, status) || slices.Contains(o.Statuses, status/100)
}

// refuse answers a form refused with a, one of the statuses on_error
// handles: a redirect, or the app gets the hand-off form. The request's
// outcome (metrics, audit) stays the refusal's status.
func (g *Gateway) refuse(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, repl *caddy.Replacer, a uploadreq.Answer) error {
	repl.Set("http.upload_gateway.error_status", strconv.Itoa(a.Status))
	if g.OnError.Redirect != "" {
		refusal.Redirect(w, repl.ReplaceAll(g.OnError.Redirect, ""))
		return nil
	}
	handOff, err := refusal.HandOff(r, g.OnError.PassField, refusal.Refusal{Status: a.Status, Code: a.Code, Message: a.Message})
	if err != nil {
		return a.Write(w)
	}
	return next.ServeHTTP(w, handOff)
}

// unmarshalOnError parses `on_error redirect <url> [<status>...]` or
// `on_error pass <field> [<status>...]`.
func unmarshalOnError(d *caddyfile.Dispenser) (*OnError, error) {
	args := d.RemainingArgs()
	if len(args) < 2 {
		return nil, d.ArgErr()
	}
	o := new(OnError)
	switch args[0] {
	case "redirect":
		o.Redirect = args[1]
	case "pass":
		o.PassField = args[1]
	default:
		return nil, d.Errf("on_error: unknown action %q (want redirect or pass)", args[0])
	}
	for _, a := range args[2:] {
		code, err := shared.StatusCode(a)
		if err != nil || (code > 5 && code < 400) || code < 4 {
			return nil, d.Errf("on_error: invalid status %q", a)
		}
		o.Statuses = append(o.Statuses, code)
	}
	return o, nil
}
