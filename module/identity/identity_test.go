package identity

import "testing"

func TestEmailVerifiedClaim(t *testing.T) {
	tests := []struct {
		claim any
		want  bool
	}{
		{true, true}, {"true", true}, {false, false}, {"false", false}, {nil, false}, {1, false}, {"yes", false},
	}
	for _, tt := range tests {
		claims := map[string]any{}
		if tt.claim != nil {
			claims["email_verified"] = tt.claim
		}
		if got := emailVerified(claims); got != tt.want {
			t.Errorf("email_verified %#v: %v, want %v", tt.claim, got, tt.want)
		}
	}
}
