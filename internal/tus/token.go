package tus

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// MinSecretLen is the shortest secret that may seal upload URLs.
const MinSecretLen = 32

// claims is what an upload URL carries, sealed: nothing about an upload is
// kept by the gateway between requests.
type claims struct {
	Key      string `json:"k"`           // the object key of the finished upload
	UploadID string `json:"u,omitempty"` // S3's multipart upload id; "" for an empty upload
	Owner    string `json:"o"`           // the user id that created it
	Length   int64  `json:"l"`           // declared length; -1 when deferred
	Expires  int64  `json:"e"`           // Unix seconds
	Metadata string `json:"m,omitempty"` // Upload-Metadata as the client sent it
}

const (
	tokenVersion = 1
	tokenContext = "upload-gateway tus upload url\n"
	maxTokenLen  = 4096
)

var (
	b64             = base64.RawURLEncoding.Strict()
	errInvalidToken = errors.New("invalid upload url")
)

// sealer seals claims with AES-256-GCM under keys derived from the
// configured secrets: the first seals, every one opens (rotation).
type sealer struct {
	aeads []cipher.AEAD
}

func newSealer(secrets [][]byte) (*sealer, error) {
	if len(secrets) == 0 {
		return nil, errors.New("no secret")
	}
	s := &sealer{}
	for i, secret := range secrets {
		if len(secret) < MinSecretLen {
			return nil, fmt.Errorf("secret %d is %d bytes long, it must be at least %d", i+1, len(secret), MinSecretLen)
		}
		key := sha256.Sum256(append([]byte(tokenContext), secret...))
		block, err := aes.NewCipher(key[:])
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		s.aeads = append(s.aeads, aead)
	}
	return s, nil
}

// seal returns the URL-safe token of c.
func (s *sealer) seal(c claims) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // "<" would take 6 bytes of the token
	_ = enc.Encode(c)        // strings and integers: cannot fail
	plain := bytes.TrimSuffix(b.Bytes(), []byte("\n"))
	aead := s.aeads[0]
	out := make([]byte, 1+aead.NonceSize(), 1+aead.NonceSize()+len(plain)+aead.Overhead())
	out[0] = tokenVersion
	_, _ = rand.Read(out[1:])
	out = aead.Seal(out, out[1:], plain, out[:1])
	return b64.EncodeToString(out)
}

// open authenticates and decodes a token; it does not check expiry.
func (s *sealer) open(token string) (claims, error) {
	var c claims
	if token == "" || len(token) > maxTokenLen {
		return c, fmt.Errorf("%w: length %d", errInvalidToken, len(token))
	}
	raw, err := b64.DecodeString(token)
	if err != nil {
		return c, fmt.Errorf("%w: %v", errInvalidToken, err)
	}
	ns := s.aeads[0].NonceSize()
	if len(raw) < 1+ns || raw[0] != tokenVersion {
		return c, fmt.Errorf("%w: malformed", errInvalidToken)
	}
	for _, aead := range s.aeads {
		plain, err := aead.Open(nil, raw[1:1+ns], raw[1+ns:], raw[:1])
		if err != nil {
			continue
		}
		if err := json.Unmarshal(plain, &c); err != nil {
			return c, fmt.Errorf("%w: %v", errInvalidToken, err)
		}
		if c.Key == "" || c.Length < -1 {
			return c, fmt.Errorf("%w: impossible claims", errInvalidToken)
		}
		return c, nil
	}
	return c, fmt.Errorf("%w: not sealed by this gateway", errInvalidToken)
}

// expired reports whether c has expired at now.
func (c claims) expired(now time.Time) bool { return !now.Before(time.Unix(c.Expires, 0)) }
