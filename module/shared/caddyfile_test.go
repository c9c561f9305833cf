package shared

import "testing"

func TestStatusCode(t *testing.T) {
	tests := []struct {
		in      string
		want    int
		wantErr bool
	}{
		{"5xx", 5, false}, {"4XX", 4, false}, {"500", 500, false}, {"422", 422, false},
		{"6xx", 0, true}, {"99", 0, true}, {"abc", 0, true}, {"600", 0, true},
	}
	for _, tt := range tests {
		got, err := StatusCode(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("StatusCode(%q) = %d, %v; want %d, err %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}
