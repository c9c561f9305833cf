package fileapi

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/caddy-upload-gateway/upload-gateway/internal/contenttype"
	"github.com/caddy-upload-gateway/upload-gateway/internal/objectkey"
	"github.com/caddy-upload-gateway/upload-gateway/internal/policy"
	"github.com/caddy-upload-gateway/upload-gateway/internal/s3limits"
)

// decodeJSON reads a JSON object of at most maxBodyBytes into v. Unknown
// members are ignored; anything after the object is an error.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return errNotJSON
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if err := dec.Decode(&json.RawMessage{}); err != io.EOF {
		if err == nil {
			return badRequest("unexpected data after the JSON object")
		}
		return jsonError(err)
	}
	return nil
}

// jsonError describes a decoding error for the client.
func jsonError(err error) error {
	typeErr, isType := errors.AsType[*json.UnmarshalTypeError](err)
	switch _, tooLarge := errors.AsType[*http.MaxBytesError](err); {
	case tooLarge:
		return err
	case isType && typeErr.Field != "":
		return badRequest("%s: want %s, got %s", typeErr.Field, jsonType(typeErr.Type.Kind().String()), typeErr.Value)
	case isType:
		return badRequest("the body must be a JSON object")
	}
	return badRequest("the body is not valid JSON")
}

func jsonType(kind string) string {
	switch {
	case strings.HasPrefix(kind, "int"), strings.HasPrefix(kind, "uint"):
		return "an integer"
	case kind == "string":
		return "a string"
	case kind == "map", kind == "struct":
		return "an object"
	case kind == "slice":
		return "an array"
	}
	return kind
}

// maxFileNameLen bounds the fileName a client sends; the stored name is
// shorter still (objectkey.MaxFilenameLen, MaxMetadataValueLen).
const maxFileNameLen = 1024

// newKey chooses the key of a new file of user:
// OwnerPrefix(user) + <uuid> + "/" + SanitizeFilename(fileName).
func (s *Service) newKey(user policy.Subject, fileName string) (string, error) {
	owner := s.cfg.Authorizer.OwnerPrefix(user.ID)
	if owner != "" && !strings.HasSuffix(owner, "/") {
		owner += "/"
	}
	return objectkey.Clean(s.prefix, owner+s.newID()+"/"+objectkey.SanitizeFilename(fileName))
}

const octetStream = "application/octet-stream"

// unknownBytes are bytes contenttype detects as application/octet-stream:
// checking them, with no declared type, asks whether the allow-list admits
// application/octet-stream itself.
var unknownBytes = []byte{0, 1, 2, 3}

// checkType checks a declared content type against the allow-list without
// any bytes, and returns the type to sign and store. contenttype.Check
// checks the declared type against the allow-list first (ErrNotAllowed),
// and only then against the bytes; with no bytes those look like empty
// text, so ErrMismatch here means "allowed, but not text", which is fine.
func (s *Service) checkType(declared string) (string, error) {
	if strings.TrimSpace(declared) == "" {
		return "", badRequest("contentType is required")
	}
	mt, _, err := mime.ParseMediaType(declared)
	if err != nil || strings.Contains(mt, "*") || !strings.Contains(mt, "/") {
		return "", badRequest("contentType %q is not a media type", declared)
	}
	types := s.cfg.Types
	if mt == octetStream {
		if !types.AllowsAll() {
			if _, err := types.Check("", unknownBytes); err != nil {
				return "", err
			}
		}
		return mt, nil
	}
	got, err := types.Check(declared, nil)
	switch {
	case err == nil:
		return got, nil
	case errors.Is(err, contenttype.ErrMismatch):
		return mt, nil // allowed, and not text: no parameters to keep
	}
	return "", err
}

// metadata builds the user metadata of a new file: the client's, less the
// reserved names, then the gateway's own. sha256 is the hex digest, or "".
func metadata(client map[string]string, user policy.Subject, fileName, sha256 string) (map[string]string, error) {
	meta := make(map[string]string, len(client)+4)
	for k, v := range client {
		name := strings.ToLower(k)
		if !validMetadataName(name) {
			return nil, fmt.Errorf("%w: name %q: want 1 to 128 of a-z, 0-9, '-' and '_'", errMetadata, k)
		}
		if s3limits.Reserved(name) { // the gateway's own: dropped
			continue
		}
		if _, dup := meta[name]; dup {
			return nil, fmt.Errorf("%w: name %q given twice", errMetadata, name)
		}
		meta[name] = objectkey.MetadataValue(v)
	}
	meta[s3limits.MetaOriginalName] = objectkey.MetadataValue(fileName)
	meta[s3limits.MetaUploadedBy] = objectkey.MetadataValue(user.ID)
	meta[s3limits.MetaUserRole] = objectkey.MetadataValue(string(user.Role))
	if sha256 != "" {
		meta[s3limits.MetaSHA256] = sha256
	}
	// Nothing is added later: presigned writes carry exactly this.
	if err := s3limits.CheckMetadata(meta, 0); err != nil {
		return nil, err
	}
	return meta, nil
}

func validMetadataName(k string) bool {
	return k != "" && len(k) <= 128 && strings.Trim(k, "abcdefghijklmnopqrstuvwxyz0123456789-_") == ""
}

// parseSHA256 accepts the SHA-256 digest of the member name as 64 hex
// digits or as standard base64 (S3's form) and returns it in both forms;
// "" stays "".
func parseSHA256(name, s string) (b64, hexDigest string, err error) {
	if s == "" {
		return "", "", nil
	}
	var sum []byte
	if len(s) == 64 {
		sum, err = hex.DecodeString(s)
	} else {
		sum, err = base64.StdEncoding.Strict().DecodeString(s)
	}
	if err != nil || len(sum) != 32 {
		return "", "", badRequest("%s: want a SHA-256 digest in hex or base64", name)
	}
	return base64.StdEncoding.EncodeToString(sum), hex.EncodeToString(sum), nil
}

// flatten turns signed headers into the object clients send them as.
func flatten(h http.Header) map[string]string {
	out := make(map[string]string, len(h))
	for k, v := range h {
		out[k] = strings.Join(v, ",")
	}
	return out
}

// uploadKey checks fileName, returns the key of a new file of that name for
// user, reports it as the request's resolved key (even when denied), and
// checks that user may upload there.
func (s *Service) uploadKey(ctx context.Context, user policy.Subject, fileName string) (string, error) {
	switch {
	case strings.TrimSpace(fileName) == "":
		return "", badRequest("fileName is required")
	case len(fileName) > maxFileNameLen:
		return "", badRequest("fileName is longer than %d bytes", maxFileNameLen)
	}
	key, err := s.newKey(user, fileName)
	if err != nil {
		return "", err
	}
	resolved(ctx, key, "")
	if err := s.authorize(user, policy.Upload, key); err != nil {
		return "", err
	}
	return key, nil
}

// tooLargeForSingle is the error for a file of size bytes, above
// MaxSingleSize.
func (s *Service) tooLargeForSingle(size int64) error {
	return fmt.Errorf("%w: %d bytes, the limit for a single upload is %d; use a multipart upload",
		errTooLarge, size, s.cfg.MaxSingleSize)
}

// typeAndMetadata checks the content type and builds the metadata of a new
// object (see metadata).
func (s *Service) typeAndMetadata(contentType string, client map[string]string, user policy.Subject, fileName, sha256 string) (string, map[string]string, error) {
	ct, err := s.checkType(contentType)
	if err != nil {
		return "", nil, err
	}
	meta, err := metadata(client, user, fileName, sha256)
	if err != nil {
		return "", nil, err
	}
	return ct, meta, nil
}
