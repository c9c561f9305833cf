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
	out := HandOff(r, "upload_error", Refusal{Status: 413, Code: "FILE_TOO_LARGE", Message: "a file exceeds the limit"})
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

func TestPolicy(t *testing.T) {
	for _, p := range []Policy{{}, {Redirect: "/a", PassField: "b"}, {Redirect: "/a", Statuses: []int{302}}, {Redirect: "/a", Statuses: []int{3}}} {
		if err := p.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", p)
		}
	}
	handles := []struct {
		statuses []int
		status   int
		want     bool
	}{
		{nil, 401, true},
		{nil, 413, true},
		{nil, 500, false},
		{[]int{413}, 401, false},
		{[]int{413}, 413, true},
		{[]int{4}, 429, true},
		{[]int{4}, 503, false},
	}
	for _, tt := range handles {
		p := Policy{Redirect: "/a", Statuses: tt.statuses}
		if err := p.Validate(); err != nil {
			t.Errorf("Validate(%v) = %v", tt.statuses, err)
		}
		if got := p.Handles(tt.status); got != tt.want {
			t.Errorf("statuses %v: Handles(%d) = %v, want %v", tt.statuses, tt.status, got, tt.want)
		}
	}
}
