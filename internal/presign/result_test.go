package presign

import (
	"net/http"
	"reflect"
	"testing"
	"time"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// result refuses the presigner's output when a value that must be bound is
// neither a signed header nor a query parameter with the same value, so an
// SDK that stopped signing something would fail loudly.
func TestResultChecksBindings(t *testing.T) {
	t.Parallel()
	const query = "X-Amz-Date=20260102T030405Z&X-Amz-Expires=60&X-Amz-SignedHeaders=content-type%3Bhost&X-Amz-Meta-A=v&X-Amz-Signature=00"
	req := &v4.PresignedHTTPRequest{
		URL:          "http://s3.test/b/k?" + query,
		Method:       http.MethodPut,
		SignedHeader: http.Header{"Host": {"s3.test"}, "Content-Type": {"a/b"}},
	}
	tests := []struct {
		name  string
		bound http.Header
		ok    bool
	}{
		{"signed header", http.Header{"Content-Type": {"a/b"}}, true},
		{"signed header, other value", http.Header{"Content-Type": {"c/d"}}, false},
		{"not signed at all", http.Header{"Content-Length": {"5"}}, false},
		{"in the query", http.Header{"X-Amz-Meta-A": {"v"}}, true},
		{"in the query, other value", http.Header{"X-Amz-Meta-A": {"w"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := result(req, tt.bound)
			if (err == nil) != tt.ok {
				t.Fatalf("got %v, want ok=%v", err, tt.ok)
			}
			if err != nil {
				return
			}
			if want := (http.Header{"Content-Type": {"a/b"}}); !reflect.DeepEqual(p.Headers, want) {
				t.Errorf("Headers = %v, want %v (no Host)", p.Headers, want)
			}
			if want := time.Date(2026, 1, 2, 3, 5, 5, 0, time.UTC); !p.Expires.Equal(want) {
				t.Errorf("Expires = %v, want %v", p.Expires, want)
			}
		})
	}
}
