package formstream_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"mime/multipart"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/caddy-upload-gateway/upload-gateway/internal/formstream"
)

// FuzzRewrite checks that Rewrite does not panic, fails only with the
// documented errors, and that a form it rewrote reads back as the same
// plain fields in the same order, with each file replaced by the one field
// the store returned.
func FuzzRewrite(f *testing.F) {
	paths, err := filepath.Glob("testdata/*.form")
	if err != nil {
		f.Fatal(err)
	}
	for _, path := range paths {
		boundary, body := readForm(f, path)
		f.Add(boundary, body)
	}
	f.Add(bnd, []byte(form(field("a", "1"), file("f", "", ""), file("g", "", "x"))))
	f.Add(bnd, []byte(form("Content-Disposition: form-data; name=\"q\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9=\r\n!")))
	f.Add(bnd, []byte(form("Content-Disposition: form-data; name*=UTF-8''%E2%82%AC; filename*=UTF-8''%E2%82%AC.txt\r\n\r\neuro")))
	f.Add(bnd, []byte(form("Content-Disposition: form-data; name=\"=?utf-8?B?w6k=?=\"; filename*=ISO-8859-1''%A3.txt\r\n\r\nx", "Content-Disposition: form-data; name=\"=?ISO-8859-1?Q?pr=E9nom?=\"\r\nContent-Type: text/plain; charset=windows-1252\r\n\r\n\x80")))
	f.Add(bnd, []byte("--"+bnd+"\nContent-Disposition: form-data; name=\"a\"\n\n1\n--"+bnd+"--"))

	// The store's fields carry a value the input cannot predict, so they
	// cannot be mistaken for plain fields when the output is read back.
	nonce := rand.Text()
	stored := func(i int) formstream.Field {
		return formstream.Field{Name: "stored", Value: nonce + strconv.Itoa(i)}
	}
	lim := formstream.Limits{MaxFiles: 50, MaxFields: 100, MaxFieldBytes: 4 << 10, MaxFormBytes: 64 << 10}

	f.Fuzz(func(t *testing.T, boundary string, body []byte) {
		var out bytes.Buffer
		mw := multipart.NewWriter(&out)
		store := func(_ context.Context, f *formstream.File) ([]formstream.Field, error) {
			if _, err := io.Copy(io.Discard, f.Body); err != nil {
				return nil, err
			}
			return []formstream.Field{stored(f.Index)}, nil
		}
		res, err := formstream.Rewrite(context.Background(), bytes.NewReader(body), boundary, lim, store, mw)
		if err != nil {
			for _, documented := range []error{formstream.ErrMalformed, formstream.ErrTooManyFiles, formstream.ErrTooManyFields, formstream.ErrFieldTooLarge, formstream.ErrFormTooLarge} {
				if errors.Is(err, documented) {
					return
				}
			}
			t.Fatalf("Rewrite() error = %v, not one of the documented errors", err)
		}
		if err := mw.Close(); err != nil {
			t.Fatal(err)
		}

		noFiles := func(context.Context, *formstream.File) ([]formstream.Field, error) {
			return nil, errors.New("the rewritten form has a file")
		}
		big := formstream.Limits{MaxFields: 1 << 20, MaxFieldBytes: 1 << 30, MaxFormBytes: 1 << 30}
		back, err := formstream.Rewrite(context.Background(), &out, mw.Boundary(), big, noFiles, nil)
		if err != nil {
			t.Fatalf("reading the rewritten form back: %v", err)
		}
		var plain []formstream.Field
		files := 0
		for _, fl := range back.Fields {
			if fl == stored(files) {
				files++
				continue
			}
			plain = append(plain, fl)
		}
		if !slices.Equal(plain, res.Fields) {
			t.Errorf("plain fields read back:\n got %q\nwant %q", plain, res.Fields)
		}
		if files != res.Files {
			t.Errorf("read back %d replaced files, want %d", files, res.Files)
		}
	})
}
