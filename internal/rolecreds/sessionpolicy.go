package rolecreds

import (
	"bytes"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/caddy-upload-gateway/upload-gateway/internal/policy"
)

// MaxPolicyLen is the longest session policy STS accepts, in characters;
// SessionPolicy counts bytes.
const MaxPolicyLen = 2048

// objectActions are the S3 object actions each policy action allows.
var objectActions = map[policy.Action][]string{
	policy.Upload:   {"s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"},
	policy.Download: {"s3:GetObject"},
	policy.Delete:   {"s3:DeleteObject"},
	policy.Manage:   {"s3:AbortMultipartUpload", "s3:ListMultipartUploadParts", "s3:PutObjectTagging"},
	policy.List:     nil, // s3:ListBucket, on the bucket
}

type document struct {
	Version   string      `json:"Version"`
	Statement []statement `json:"Statement"`
}

type statement struct {
	Effect    string                         `json:"Effect"`
	Action    []string                       `json:"Action"`
	Resource  []string                       `json:"Resource"`
	Condition map[string]map[string][]string `json:"Condition,omitempty"`
}

// SessionPolicy returns the inline IAM session policy, as compact JSON,
// that allows on bucket exactly what grants allow (see the package
// documentation for the mapping). It fails on an empty bucket or grants, a
// prefix holding '*', '?' or '$', an unknown action, and with
// ErrPolicyTooLarge above MaxPolicyLen.
func SessionPolicy(bucket string, grants []policy.Grant) (string, error) {
	return sessionPolicy(bucket, "", grants)
}

func sessionPolicy(bucket, kmsKeyARN string, grants []policy.Grant) (string, error) {
	if bucket == "" || strings.ContainsAny(bucket, "*?$/:") {
		return "", fmt.Errorf("rolecreds: invalid bucket name %q", bucket)
	}
	if strings.ContainsAny(kmsKeyARN, "*?$") {
		return "", fmt.Errorf("rolecreds: invalid KMS key ARN %q", kmsKeyARN)
	}
	if len(grants) == 0 {
		return "", errors.New("rolecreds: session policy without grants")
	}
	doc := document{Version: "2012-10-17"}
	var upload, download bool
	for _, g := range grants {
		if strings.ContainsAny(g.Prefix, "*?$") {
			return "", fmt.Errorf("rolecreds: prefix %q holds an IAM wildcard or variable character ('*', '?', '$')", g.Prefix)
		}
		var acts []string
		list := false
		for _, a := range g.Actions {
			s3acts, ok := objectActions[a]
			if !ok {
				return "", fmt.Errorf("rolecreds: unknown action %q", string(a))
			}
			for _, s := range s3acts {
				if !slices.Contains(acts, s) {
					acts = append(acts, s)
				}
			}
			list = list || a == policy.List
			upload = upload || a == policy.Upload
			download = download || a == policy.Download
		}
		if len(acts) > 0 {
			doc.Statement = append(doc.Statement, statement{
				Effect:   "Allow",
				Action:   acts,
				Resource: []string{"arn:aws:s3:::" + bucket + "/" + g.Prefix + "*"},
			})
		}
		if list {
			st := statement{
				Effect:   "Allow",
				Action:   []string{"s3:ListBucket"},
				Resource: []string{"arn:aws:s3:::" + bucket},
			}
			if g.Prefix != "" {
				st.Condition = map[string]map[string][]string{"StringLike": {"s3:prefix": {g.Prefix + "*"}}}
			}
			doc.Statement = append(doc.Statement, st)
		}
	}
	if kmsKeyARN != "" && (upload || download) {
		acts := []string{"kms:Decrypt"}
		if upload {
			acts = []string{"kms:GenerateDataKey", "kms:Decrypt"}
		}
		doc.Statement = append(doc.Statement, statement{Effect: "Allow", Action: acts, Resource: []string{kmsKeyARN}})
	}
	if len(doc.Statement) == 0 {
		return "", errors.New("rolecreds: session policy without actions")
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return "", fmt.Errorf("rolecreds: encoding the session policy: %v", err)
	}
	s := strings.TrimSuffix(buf.String(), "\n")
	if len(s) > MaxPolicyLen {
		return "", fmt.Errorf("%w: %d bytes, the limit is %d", ErrPolicyTooLarge, len(s), MaxPolicyLen)
	}
	return s, nil
}

// Session names: STS allows [\w+=,.@-], 2 to 64 characters.
const (
	maxSessionName = 64
	hashChars      = 24 // 120 bits of SHA-256, base32
)

var nameHash = base32.StdEncoding.WithPadding(base32.NoPadding)

// SessionName returns the RoleSessionName for a user id; it shows in the
// assumed-role ARN and in audit logs. ASCII letters, digits and "_+,.@-"
// are kept; every other byte, '=' included, becomes '=' and two uppercase
// hex digits ("a/b" -> "a=2Fb"), so distinct ids give distinct names. A
// result shorter than 2 or longer than 64 characters is replaced by its
// first 38 characters, "==" and a 24-character hash of the id: "==" never
// occurs in an unshortened name, so shortened and unshortened names never
// collide, and two shortened names only if SHA-256 does.
func SessionName(userID string) string {
	var b strings.Builder
	for i := 0; i < len(userID); i++ {
		c := userID[i]
		if sessionNameByte(c) {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "=%02X", c)
	}
	name := b.String()
	if len(name) >= 2 && len(name) <= maxSessionName {
		return name
	}
	sum := sha256.Sum256([]byte(userID))
	keep := min(len(name), maxSessionName-2-hashChars)
	return name[:keep] + "==" + nameHash.EncodeToString(sum[:])[:hashChars]
}

func sessionNameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte("_+,.@-", c) >= 0
}
