package fileapi

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/caddy-upload-gateway/upload-gateway/internal/objectkey"
	"github.com/caddy-upload-gateway/upload-gateway/internal/policy"
	"github.com/caddy-upload-gateway/upload-gateway/internal/s3limits"
)

var b64 = base64.RawURLEncoding.Strict()

// maxFileIDLen fits the longest S3 key (1024 bytes) in base64.
const maxFileIDLen = (s3limits.MaxKeyLen*8 + 5) / 6

// fileID returns the fileId of a key.
func fileID(key string) string { return b64.EncodeToString([]byte(key)) }

// keyOf decodes and validates a fileId: it must be the unpadded base64url of
// a clean key below the base prefix, written the one way fileID writes it.
func (s *Service) keyOf(id string) (string, error) {
	if id == "" || len(id) > maxFileIDLen {
		return "", fmt.Errorf("%w: length %d", errInvalidFileID, len(id))
	}
	raw, err := b64.DecodeString(id)
	if err != nil {
		return "", fmt.Errorf("%w: %v", errInvalidFileID, err)
	}
	key := string(raw)
	// encoding/base64 skips CR and LF even in strict mode: accept only the
	// one spelling fileID writes, so a file has a single id.
	if fileID(key) != id {
		return "", fmt.Errorf("%w: not in canonical form", errInvalidFileID)
	}
	if !utf8.ValidString(key) {
		return "", fmt.Errorf("%w: not UTF-8", errInvalidFileID)
	}
	clean, err := objectkey.Clean(s.prefix, key)
	if err != nil {
		return "", fmt.Errorf("%w: %v", errInvalidFileID, err)
	}
	if clean != key {
		return "", fmt.Errorf("%w: key %q is not clean", errInvalidFileID, key)
	}
	return key, nil
}

// fileKey decodes the fileId id (see keyOf), records its key as the
// request's and checks that user may perform action on it.
func (s *Service) fileKey(ctx context.Context, user policy.Subject, action policy.Action, id string) (string, error) {
	key, err := s.keyOf(id)
	if err != nil {
		return "", err
	}
	resolved(ctx, key, "")
	if err := s.authorize(user, action, key); err != nil {
		return "", err
	}
	return key, nil
}

// uploadClaims is the payload of an upload token.
type uploadClaims struct {
	Key         string `json:"k"`
	UploadID    string `json:"u"`
	FileSize    int64  `json:"s"` // 0: not declared (Uppy's Companion routes)
	PartSize    int64  `json:"p"` // 0: not declared
	ContentType string `json:"t"`
	Expires     int64  `json:"e"` // Unix seconds
}

// sized reports whether the client declared the file's size at initiate,
// so that every part has a known length.
func (c uploadClaims) sized() bool { return c.FileSize > 0 }

// totalParts is the number of parts of the upload: S3's limit when the
// size was not declared.
func (c uploadClaims) totalParts() int {
	if !c.sized() {
		return s3limits.MaxParts
	}
	return int((c.FileSize + c.PartSize - 1) / c.PartSize)
}

// partLength is the size of part n (1-based): PartSize, except the last;
// 0 (any length) when the size was not declared.
func (c uploadClaims) partLength(n int) int64 {
	if !c.sized() {
		return 0
	}
	if n == c.totalParts() {
		return c.FileSize - int64(n-1)*c.PartSize
	}
	return c.PartSize
}

const (
	tokenVersion = "v1"
	tokenContext = "upload-gateway fileapi upload token\n"
	maxTokenLen  = 4096
)

// signToken returns "v1.<payload>.<mac>" for c, signed with the current
// secret.
func (s *Service) signToken(c uploadClaims) string { return s.seal(tokenContext, c) }

// seal returns "v1.<payload>.<mac>" for v (JSON of strings and integers),
// signed with the current secret in the given context, so that a token of
// one kind never passes for another.
func (s *Service) seal(context string, v any) string {
	payload, _ := json.Marshal(v) // strings and integers: cannot fail
	signed := tokenVersion + "." + b64.EncodeToString(payload)
	return signed + "." + b64.EncodeToString(tokenMAC(context, s.secrets[0], signed))
}

func tokenMAC(context string, secret []byte, signed string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(context))
	m.Write([]byte(signed))
	return m.Sum(nil)
}

// verifyToken checks an upload token's signature (against every secret, in
// constant time), its expiry, and that it was issued for key and uploadID.
func (s *Service) verifyToken(token, key, uploadID string) (uploadClaims, error) {
	c, err := s.parseToken(token)
	if err != nil {
		return c, err
	}
	if c.Key != key || c.UploadID != uploadID {
		return c, fmt.Errorf("%w: issued for another file or upload", errInvalidToken)
	}
	return c, nil
}

// parseToken checks an upload token's signature and expiry and returns
// its claims.
func (s *Service) parseToken(token string) (uploadClaims, error) {
	var c uploadClaims
	if err := s.open(tokenContext, token, &c); err != nil {
		return c, err
	}
	if c.Key == "" || c.UploadID == "" {
		return c, fmt.Errorf("%w: malformed payload", errInvalidToken)
	}
	if c.sized() && (c.PartSize < s3limits.MinPartSize || c.PartSize > s3limits.MaxPartSize || c.totalParts() > s3limits.MaxParts) ||
		!c.sized() && (c.FileSize != 0 || c.PartSize != 0) {
		return c, fmt.Errorf("%w: impossible sizes", errInvalidToken)
	}
	if !s.now().Before(time.Unix(c.Expires, 0)) {
		return c, errTokenExpired
	}
	return c, nil
}

// open checks the signature of a sealed token of the given context
// (against every secret, in constant time) and decodes its payload into v.
func (s *Service) open(context, token string, v any) error {
	if len(token) > maxTokenLen {
		return fmt.Errorf("%w: too long", errInvalidToken)
	}
	i := strings.LastIndexByte(token, '.')
	if i < 0 || !strings.HasPrefix(token, tokenVersion+".") {
		return fmt.Errorf("%w: malformed", errInvalidToken)
	}
	signed, sig := token[:i], token[i+1:]
	mac, err := b64.DecodeString(sig)
	if err != nil || len(mac) != sha256.Size {
		return fmt.Errorf("%w: malformed signature", errInvalidToken)
	}
	ok := false
	for _, secret := range s.secrets { // every one, in constant time
		ok = hmac.Equal(mac, tokenMAC(context, secret, signed)) || ok
	}
	if !ok {
		return fmt.Errorf("%w: bad signature", errInvalidToken)
	}
	payload, err := b64.DecodeString(strings.TrimPrefix(signed, tokenVersion+"."))
	if err != nil || json.Unmarshal(payload, v) != nil {
		return fmt.Errorf("%w: malformed payload", errInvalidToken)
	}
	return nil
}
