package formstream_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"strconv"
	"strings"

	"github.com/caddy-upload-gateway/upload-gateway/internal/formstream"
)

func ExampleRewrite() {
	contentType := "multipart/form-data; boundary=XyZ"
	body := strings.NewReader("--XyZ\r\n" +
		"Content-Disposition: form-data; name=\"title\"\r\n\r\nHoliday\r\n" +
		"--XyZ\r\n" +
		"Content-Disposition: form-data; name=\"photo\"; filename=\"beach.jpg\"\r\n" +
		"Content-Type: image/jpeg\r\n\r\n<jpeg bytes>\r\n" +
		"--XyZ--\r\n")

	// The gateway streams f.Body to S3 here.
	store := func(ctx context.Context, f *formstream.File) ([]formstream.Field, error) {
		n, err := io.Copy(io.Discard, f.Body)
		if err != nil {
			return nil, err
		}
		return []formstream.Field{
			{Name: f.Field + ".name", Value: f.FileName},
			{Name: f.Field + ".size", Value: strconv.FormatInt(n, 10)},
		}, nil
	}

	boundary, err := formstream.Boundary(contentType)
	if err != nil {
		panic(err) // 415 or 400
	}
	var upstream bytes.Buffer
	mw := multipart.NewWriter(&upstream)
	res, err := formstream.Rewrite(context.Background(), body, boundary, formstream.Limits{MaxFiles: 10}, store, mw)
	if err != nil {
		panic(err)
	}
	if err := mw.Close(); err != nil {
		panic(err)
	}
	fmt.Printf("fields %v, %d file\n", res.Fields, res.Files)

	// What the upstream application reads:
	r := multipart.NewReader(&upstream, mw.Boundary())
	for p, err := r.NextPart(); err == nil; p, err = r.NextPart() {
		v, _ := io.ReadAll(p)
		fmt.Printf("%s = %s\n", p.FormName(), v)
	}
	// Output:
	// fields [{title Holiday}], 1 file
	// title = Holiday
	// photo.name = beach.jpg
	// photo.size = 12
}
