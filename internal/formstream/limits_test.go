package formstream_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"strings"
	"testing"

	"github.com/caddy-upload-gateway/upload-gateway/internal/formstream"
)

// Memory the form keeps, the names of its fields and the size of part
// headers are checked as the parts arrive, before later files are stored.
func TestRewriteHooks(t *testing.T) {
	errReserved := errors.New("reserved name")
	errNoMemory := errors.New("no memory")
	big := strings.Repeat("v", 100<<10)
	tests := []struct {
		name      string
		body      string
		lim       func(reserved *int64) formstream.Limits
		wantErr   error
		wantCalls int
		wantMin   int64 // least bytes reserved
	}{
		{
			name: "a reserved field name stops the form before later files",
			body: form(file("f", "a.txt", "1"), field("f.key", "forged"), file("g", "b.txt", "2"), file("h", "c.txt", "3")),
			lim: func(*int64) formstream.Limits {
				return formstream.Limits{CheckName: func(name string) error {
					if strings.HasSuffix(name, ".key") {
						return errReserved
					}
					return nil
				}}
			},
			wantErr: errReserved, wantCalls: 1,
		},
		{
			name: "field values and headers are reserved as they are read",
			body: form(field("a", big), file("f", "a.txt", "1")),
			lim: func(reserved *int64) formstream.Limits {
				return formstream.Limits{Reserve: func(_ context.Context, n int64) error { *reserved += n; return nil }}
			},
			wantCalls: 1, wantMin: 2 * int64(len(big)),
		},
		{
			name: "a refused reservation stops the form before the value is read",
			body: form(field("a", big), file("f", "a.txt", "1")),
			lim: func(reserved *int64) formstream.Limits {
				return formstream.Limits{Reserve: func(_ context.Context, n int64) error {
					if *reserved+n > 64<<10 {
						return errNoMemory
					}
					*reserved += n
					return nil
				}}
			},
			wantErr: errNoMemory, wantCalls: 0,
		},
		{
			name:    "a file part's huge header is refused",
			body:    "--" + bnd + "\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a\"\r\nX-Pad: " + strings.Repeat("p", 64<<10) + "\r\n\r\n1\r\n--" + bnd + "--\r\n",
			lim:     func(*int64) formstream.Limits { return formstream.Limits{MaxHeaderBytes: 8 << 10} },
			wantErr: formstream.ErrFormTooLarge, wantCalls: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var reserved int64
			var rec recorder
			_, err := formstream.Rewrite(context.Background(), strings.NewReader(tt.body), bnd, tt.lim(&reserved), rec.store, multipart.NewWriter(io.Discard))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Rewrite() error = %v, want %v", err, tt.wantErr)
			}
			if len(rec.calls) != tt.wantCalls {
				t.Errorf("store called %d times, want %d", len(rec.calls), tt.wantCalls)
			}
			if reserved < tt.wantMin {
				t.Errorf("reserved %d bytes, want at least %d", reserved, tt.wantMin)
			}
		})
	}
}

// A form is charged for what it keeps, not for whole read steps: many tiny
// fields must not take a step of the memory budget each.
func TestRewriteReservesOnlyWhatArrives(t *testing.T) {
	tests := []struct {
		name   string
		fields int
		size   int
	}{
		{"one 1-byte field", 1, 1},
		{"1000 1-byte fields", 1000, 1},
		{"1000 empty fields", 1000, 0},
		{"100 fields of 100 bytes", 100, 100},
		{"10 fields just over a read step", 10, 4<<10 + 1},
		{"3 fields of 100 KiB", 3, 100 << 10},
		{"one field at the 1 MiB limit", 1, 1 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var parts []string
			var values, headers int64
			for i := range tt.fields {
				name := fmt.Sprintf("f%d", i)
				parts = append(parts, field(name, strings.Repeat("v", tt.size)))
				values += int64(tt.size)
				headers += int64(len(`Content-Disposition: form-data; name=""`) + len(name) + 4)
			}
			var reserved int64
			lim := formstream.Limits{Reserve: func(_ context.Context, n int64) error { reserved += n; return nil }}
			res, err := formstream.Rewrite(context.Background(), strings.NewReader(form(parts...)), bnd, lim, (&recorder{}).store, multipart.NewWriter(io.Discard))
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Fields) != tt.fields {
				t.Fatalf("%d fields, want %d", len(res.Fields), tt.fields)
			}
			const slack = 8 << 10 // the read buffer, once per form
			if most := 2*values + headers + slack; reserved > most {
				t.Errorf("reserved %d bytes for %d bytes of values and %d of headers, want at most %d", reserved, values, headers, most)
			}
			if least := 2*values + headers; reserved < least {
				t.Errorf("reserved %d bytes, want at least %d", reserved, least)
			}
		})
	}
}
