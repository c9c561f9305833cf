package gateway

import (
	"net/http"
	"reflect"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-upload-gateway/upload-gateway/internal/refusal"
)

// A refused form gets the redirect or the hand-off on_error asks for, and
// only for the statuses it lists; the form's bytes never reach the app and
// nothing stays stored.
func TestOnError(t *testing.T) {
	tests := []struct {
		name         string
		onError      *refusal.Policy
		anonymous    bool // allow_anonymous; without it the form is refused with 401
		user, role   string
		wantStatus   int
		wantLocation string
		wantFields   map[string]string // what the app got; nil: the app was not called
	}{
		{name: "no on_error: JSON 401", wantStatus: http.StatusUnauthorized},
		{name: "redirect 401", onError: &refusal.Policy{Redirect: "/form?error={http.upload_gateway.error_status}&code={http.upload_gateway.error_code}"},
			wantStatus: http.StatusSeeOther, wantLocation: "/form?error=401&code=UNAUTHENTICATED"},
		{name: "redirect 403", onError: &refusal.Policy{Redirect: "/form?error={http.upload_gateway.error_status}"}, user: "u", role: "viewer",
			wantStatus: http.StatusSeeOther, wantLocation: "/form?error=403"},
		{name: "redirect 413 after part of the file", onError: &refusal.Policy{Redirect: "/form?error={http.upload_gateway.error_status}"}, anonymous: true,
			wantStatus: http.StatusSeeOther, wantLocation: "/form?error=413"},
		{name: "status not listed", onError: &refusal.Policy{Redirect: "/form", Statuses: []int{413}}, wantStatus: http.StatusUnauthorized},
		{name: "hand-off", onError: &refusal.Policy{PassField: "upload_error"}, wantStatus: http.StatusOK,
			wantFields: map[string]string{"upload_error": "401", "upload_error_code": "UNAUTHENTICATED", "upload_error_message": "authentication required"}},
		{name: "hand-off 413", onError: &refusal.Policy{PassField: "upload_error", Statuses: []int{4}}, anonymous: true, wantStatus: http.StatusOK,
			wantFields: map[string]string{"upload_error": "413", "upload_error_code": "FILE_TOO_LARGE", "upload_error_message": "a file exceeds the limit of 10 bytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFakeS3()
			g := testGateway(t, fake, func(g *Gateway) {
				g.OnError = tt.onError
				g.AllowAnonymous = tt.anonymous
				g.Output = OutputPass
				g.MaxFileSize = 10
			})
			var got map[string]string
			next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
				if err := r.ParseMultipartForm(1 << 20); err != nil {
					t.Fatal(err)
				}
				if len(r.MultipartForm.File) != 0 {
					t.Errorf("the app got files: %v", r.MultipartForm.File)
				}
				got = map[string]string{}
				for k, v := range r.MultipartForm.Value {
					got[k] = v[0]
				}
				return nil
			})
			w, err := serve(g, formRequest(t, "more than ten bytes of file"), next, func(repl *caddy.Replacer) {
				if tt.user != "" {
					repl.Set("http.auth.user.id", tt.user)
					repl.Set("http.auth.user.role", tt.role)
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			if w.Code != tt.wantStatus || w.Header().Get("Location") != tt.wantLocation {
				t.Errorf("got %d %q, want %d %q", w.Code, w.Header().Get("Location"), tt.wantStatus, tt.wantLocation)
			}
			if !reflect.DeepEqual(got, tt.wantFields) {
				t.Errorf("app's form %v, want %v", got, tt.wantFields)
			}
			if objects, open, calls := fake.state(); objects != 0 || open != 0 {
				t.Errorf("left in S3: %d objects, %d multipart uploads (%s)", objects, open, calls)
			}
		})
	}
}

func TestUnmarshalOnError(t *testing.T) {
	tests := []struct {
		input   string
		want    *refusal.Policy
		wantErr bool
	}{
		{input: "on_error redirect /f?e={http.upload_gateway.error_status}", want: &refusal.Policy{Redirect: "/f?e={http.upload_gateway.error_status}"}},
		{input: "on_error pass upload_error 413 4xx", want: &refusal.Policy{PassField: "upload_error", Statuses: []int{413, 4}}},
		{input: "on_error pass", wantErr: true},
		{input: "on_error drop x", wantErr: true},
		{input: "on_error redirect /f abc", wantErr: true},
		{input: "on_error redirect /f 302", wantErr: true},
	}
	for _, tt := range tests {
		d := caddyfile.NewTestDispenser(tt.input)
		d.Next()
		got, err := unmarshalOnError(d)
		if (err != nil) != tt.wantErr {
			t.Errorf("%q: err %v", tt.input, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q: got %+v, want %+v", tt.input, got, tt.want)
		}
	}
}
