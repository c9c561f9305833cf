package shared

import "testing"

func TestUnsignedPayload(t *testing.T) {
	tests := []struct {
		mode, endpoint string
		want           bool
	}{
		{"", "", false}, // AWS over HTTPS: the SDK decides
		{"", "https://s3.example.com", false},
		{"", "http://s3.internal:8333", false},
		{"", "http://10.0.0.5:9000", false},
		{"", "http://127.0.0.1:8333", true},
		{"", "http://127.8.9.1:8333", true},
		{"auto", "http://[::1]:8333", true},
		{"auto", "http://LOCALHOST:9000", true},
		{"auto", "http://localhost.example.com:9000", false},
		{"auto", "https://127.0.0.1:8333", false},
		{"signed", "http://127.0.0.1:8333", false},
		{"unsigned", "http://10.0.0.5:9000", true},
	}
	for _, tt := range tests {
		c := S3Config{PayloadSigning: tt.mode, Endpoint: tt.endpoint}
		if got := c.unsignedPayload(); got != tt.want {
			t.Errorf("payload_signing %q, endpoint %q: unsigned = %v, want %v", tt.mode, tt.endpoint, got, tt.want)
		}
	}
}
