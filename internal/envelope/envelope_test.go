package envelope

import (
	"net/http/httptest"
	"testing"
)

func TestWrite(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		write      func(*httptest.ResponseRecorder) error
		wantStatus int
		wantBody   string
	}{
		{"data", func(w *httptest.ResponseRecorder) error {
			return WriteData(w, 201, map[string]int{"n": 1})
		}, 201, `{"success":true,"data":{"n":1}}` + "\n"},
		{"error", func(w *httptest.ResponseRecorder) error {
			return WriteError(w, 413, "FILE_TOO_LARGE", "file exceeds 10 bytes")
		}, 413, `{"success":false,"error":{"code":"FILE_TOO_LARGE","message":"file exceeds 10 bytes"}}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := httptest.NewRecorder()
			if err := tt.write(w); err != nil {
				t.Fatal(err)
			}
			if w.Code != tt.wantStatus || w.Body.String() != tt.wantBody {
				t.Errorf("got %d %q, want %d %q", w.Code, w.Body.String(), tt.wantStatus, tt.wantBody)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
				t.Errorf("Content-Type = %q", ct)
			}
		})
	}
}

func TestWriteFailureToAGoneClient(t *testing.T) {
	t.Parallel()
	w := httptest.NewRecorder()
	if err := WriteFailure(w, StatusClientClosedRequest, "CLIENT_CLOSED_REQUEST", "gone"); err != nil {
		t.Fatal(err)
	}
	if w.Code != StatusClientClosedRequest || w.Body.Len() != 0 {
		t.Errorf("got %d %q, want %d and no body", w.Code, w.Body.String(), StatusClientClosedRequest)
	}
	w = httptest.NewRecorder()
	if err := WriteFailure(w, 413, "FILE_TOO_LARGE", "too large"); err != nil {
		t.Fatal(err)
	}
	if w.Code != 413 || w.Body.Len() == 0 {
		t.Errorf("got %d %q, want 413 with the envelope", w.Code, w.Body.String())
	}
}
