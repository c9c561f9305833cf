package gateway

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// passForm stores a form through a pass-mode gateway changed by mutate and
// returns the form the next handler gets, as "name=value" parts in order,
// or the error code of the answer.
func passForm(t *testing.T, mutate func(*Gateway), body string) (parts []string, code string) {
	t.Helper()
	g := testGateway(t, newFakeS3(), func(g *Gateway) { g.Output = OutputPass; mutate(g) })
	r := httptest.NewRequest(http.MethodPost, "/up", strings.NewReader(body))
	r.Header.Set("Content-Type", "multipart/form-data; boundary=b")
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		_, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil {
			return err
		}
		mr := multipart.NewReader(r.Body, params["boundary"])
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			v, _ := io.ReadAll(p)
			parts = append(parts, p.FormName()+"="+string(v))
		}
	})
	w, err := serve(g, r, next)
	if err != nil {
		t.Fatal(err)
	}
	if w.Code >= 400 {
		var answer struct{ Error struct{ Code string } }
		_ = json.Unmarshal(w.Body.Bytes(), &answer)
		return nil, answer.Error.Code
	}
	return parts, ""
}

func part(name, filename, value string) string {
	if filename == "" {
		return fmt.Sprintf("--b\r\nContent-Disposition: form-data; name=%q\r\n\r\n%s\r\n", name, value)
	}
	return fmt.Sprintf("--b\r\nContent-Disposition: form-data; name=%q; filename=%q\r\nContent-Type: text/plain\r\n\r\n%s\r\n", name, filename, value)
}

// keyless drops the values that change per run (keys) from parts.
func keyless(parts []string) []string {
	out := make([]string, len(parts))
	for i, p := range parts {
		if name, _, ok := strings.Cut(p, "="); ok && (strings.HasSuffix(name, "key]") || strings.HasSuffix(name, ".key") || strings.HasSuffix(name, "[path]")) {
			p = name + "=…"
		}
		out[i] = p
	}
	return out
}

func TestPassFieldNames(t *testing.T) {
	sum := md5.Sum([]byte("bravo"))
	md5b := hex.EncodeToString(sum[:])
	crcb := fmt.Sprintf("%08x", crc32.ChecksumIEEE([]byte("bravo")))
	keyOnly := []PassField{{Name: "{upload.field}.name", Value: "{upload.name}"}, {Name: "{upload.field}.key", Value: "{upload.key}"}}
	tests := []struct {
		name    string
		mutate  func(*Gateway)
		body    string
		want    []string
		wantErr string
	}{
		{
			name:   "dotted: plain names dotted, arrays nested and numbered per field",
			mutate: func(g *Gateway) { g.PassFields = keyOnly },
			body: part("title", "", "t") + part("docs[]", "a.txt", "alpha") + part("avatar", "me.txt", "x") +
				part("docs[]", "b.txt", "bravo") + part("pics[]", "p.txt", "p") + "--b--\r\n",
			want: []string{"title=t", "docs[0][name]=a.txt", "docs[0][key]=…", "avatar.name=me.txt", "avatar.key=…",
				"docs[1][name]=b.txt", "docs[1][key]=…", "pics[0][name]=p.txt", "pics[0][key]=…"},
		},
		{
			name:   "nested style",
			mutate: func(g *Gateway) { g.PassFields = keyOnly; g.PassFieldStyle = "nested" },
			body:   part("first_name", "", "Ada") + part("avatar", "me.txt", "x") + "--b--\r\n",
			want:   []string{"first_name=Ada", "avatar[name]=me.txt", "avatar[key]=…"},
		},
		{
			name: "digests and index in custom templates",
			mutate: func(g *Gateway) {
				g.PassFields = []PassField{
					{Name: "{upload.field_base}[{upload.index}][path]", Value: "{upload.key}"},
					{Name: "{upload.field_base}[{upload.index}][md5]", Value: "{upload.md5}"},
					{Name: "{upload.field_base}[{upload.index}][crc32]", Value: "{upload.crc32}"},
				}
			},
			body: part("f[]", "a.txt", "alpha") + part("f[]", "b.txt", "bravo") + "--b--\r\n",
			want: []string{"f[0][path]=…", "f[0][md5]=2c1743a391305fbf367df8e4f069f9f9", "f[0][crc32]=" + fmt.Sprintf("%08x", crc32.ChecksumIEEE([]byte("alpha"))),
				"f[1][path]=…", "f[1][md5]=" + md5b, "f[1][crc32]=" + crcb},
		},
		{
			name:   "a digest inside a value template",
			mutate: func(g *Gateway) { g.PassFields = []PassField{{Name: "{upload.field}.md5", Value: "<{upload.md5}>"}} },
			body:   part("f", "a.txt", "alpha") + "--b--\r\n",
			want:   []string{"f.md5=<2c1743a391305fbf367df8e4f069f9f9>"},
		},
		{
			name:   "pass_form_fields drops unselected fields instead of refusing them",
			mutate: func(g *Gateway) { g.PassFields = keyOnly; g.PassFormFields = []string{"^title$", `^tags\[`} },
			body:   part("title", "", "t") + part("secret", "", "s") + part("api_key", "", "k") + part("tags[]", "", "x") + part("f", "a.txt", "alpha") + "--b--\r\n",
			want:   []string{"title=t", "tags[]=x", "f.name=a.txt", "f.key=…"},
		},
		{
			name:    "a client's entry in an array of files is refused",
			mutate:  func(g *Gateway) { g.PassFields = keyOnly },
			body:    part("docs[5][key]", "", "victim") + part("docs[]", "a.txt", "alpha") + "--b--\r\n",
			wantErr: "RESERVED_FIELD",
		},
		{
			name:    "dotted style still refuses api_key",
			mutate:  func(g *Gateway) { g.PassFields = keyOnly },
			body:    part("api_key", "", "k") + "--b--\r\n",
			wantErr: "RESERVED_FIELD",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, code := passForm(t, tt.mutate, tt.body)
			if code != tt.wantErr {
				t.Fatalf("answered %q, want %q", code, tt.wantErr)
			}
			if code != "" {
				return
			}
			if got = keyless(got); !slices.Equal(got, tt.want) {
				t.Errorf("rewritten form:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}
