package tus

import (
	"errors"
	"testing"
)

func TestSealer(t *testing.T) {
	old := []byte("old-secret-old-secret-old-secret")
	s, err := newSealer([][]byte{testSecret, old})
	if err != nil {
		t.Fatal(err)
	}
	oldOnly, _ := newSealer([][]byte{old})
	other, _ := newSealer([][]byte{[]byte("another-secret-another-secret-xx")})
	c := claims{Key: "up/k", UploadID: "u", Owner: "alice", Length: 10, Expires: 99}
	tok := s.seal(c)
	if got, err := s.open(tok); err != nil || got != c {
		t.Errorf("open(seal(c)) = %+v, %v", got, err)
	}
	if got, err := s.open(oldOnly.seal(c)); err != nil || got != c {
		t.Errorf("token sealed with the old secret: %+v, %v", got, err)
	}
	if s.seal(c) == tok {
		t.Error("two seals of the same claims are equal: nonce reused")
	}
	tampered := []byte(tok)
	tampered[len(tampered)/2] ^= 1
	if tampered[len(tampered)/2] == '-' || tampered[len(tampered)/2] == '_' {
		tampered[len(tampered)/2] = 'A'
	}
	for name, bad := range map[string]string{
		"other secret": other.seal(c), "tampered": string(tampered), "empty": "", "truncated": tok[:20], "not base64": "!!!",
	} {
		if _, err := s.open(bad); !errors.Is(err, errInvalidToken) {
			t.Errorf("%s: err %v, want errInvalidToken", name, err)
		}
	}
}
