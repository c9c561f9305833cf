package awserr

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"testing"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestReadsSDKErrors(t *testing.T) {
	t.Parallel()
	apiErr := &smithy.GenericAPIError{Code: "AccessDenied", Message: "no"}
	respErr := &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: 503}}, Err: apiErr}
	tests := []struct {
		name        string
		err         error
		wantCode    string
		wantStatus  int
		wantTimeout bool
	}{
		{"api error", fmt.Errorf("op: %w", apiErr), "AccessDenied", 0, false},
		{"response error", fmt.Errorf("op: %w", respErr), "AccessDenied", 503, false},
		{"timeout", &net.OpError{Op: "dial", Err: timeoutErr{}}, "", 0, true},
		{"deadline", context.DeadlineExceeded, "", 0, true},
		{"plain", errors.New("boom"), "", 0, false},
		{"nil", nil, "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Code(tt.err); got != tt.wantCode {
				t.Errorf("Code = %q, want %q", got, tt.wantCode)
			}
			if got := Status(tt.err); got != tt.wantStatus {
				t.Errorf("Status = %d, want %d", got, tt.wantStatus)
			}
			if got := Timeout(tt.err); got != tt.wantTimeout {
				t.Errorf("Timeout = %v, want %v", got, tt.wantTimeout)
			}
		})
	}
	if !Is[*smithy.GenericAPIError](fmt.Errorf("x: %w", apiErr)) || Is[*smithy.GenericAPIError](errors.New("y")) {
		t.Errorf("Is does not follow the error tree")
	}
}
