package refusal

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRedirect(t *testing.T) {
	w := httptest.NewRecorder()
	Redirect(w, "/upload?error=413")
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/upload?error=413" {
		t.Errorf("got %d %q", w.Code, w.Header().Get("Location"))
	}
}

func TestHandOff(t *testing.T) {
	r := httptest.NewRequest(http.MethodPut, "/docs/new?x=1", strings.NewReader("--b\r\nsecret file bytes"))
	r.Header.Set("Content-Type", "multipart/form-data; boundary=b")
	r.Header.Set("Cookie", "PHPSESSID=abc")
	r.Header.Set("Expect", "100-continue")
	out, err := HandOff(r, "upload_error", Refusal{Status: 413, Code: "FILE_TOO_LARGE", Message: "a file exceeds the limit"})
	if err != nil {
		t.Fatal(err)
	}
	if out.Method != http.MethodPost || out.URL.String() != "/docs/new?x=1" || out.Header.Get("Cookie") != "PHPSESSID=abc" || out.Header.Get("Expect") != "" {
		t.Errorf("request: %s %s %v", out.Method, out.URL, out.Header)
	}
	if err := out.ParseMultipartForm(1 << 20); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"upload_error": "413", "upload_error_code": "FILE_TOO_LARGE", "upload_error_message": "a file exceeds the limit"}
	if len(out.MultipartForm.Value) != len(want) || len(out.MultipartForm.File) != 0 {
		t.Errorf("form: %v, files %v", out.MultipartForm.Value, out.MultipartForm.File)
	}
	for k, v := range want {
		if got := out.FormValue(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if out.ContentLength <= 0 {
		t.Errorf("ContentLength %d", out.ContentLength)
	}
}
