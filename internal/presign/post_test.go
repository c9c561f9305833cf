package presign_test

import (
	"context"
	"crypto/hmac"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddy-upload-gateway/upload-gateway/internal/objectkey"
	"github.com/caddy-upload-gateway/upload-gateway/internal/presign"
)

// policy is a decoded POST policy.
type policy struct {
	expiration time.Time
	conditions []any
	eq         map[string]string // exact conditions, by lower-case field name
	lengthMin  float64
	lengthMax  float64
	hasRange   bool
}

// decodePolicy decodes the form's policy (base64 JSON) and its conditions;
// it fails the test on any condition other than an exact match or a
// content-length-range.
func decodePolicy(t *testing.T, pp *presign.PresignedPost) policy {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(pp.Fields["policy"])
	if err != nil {
		t.Fatalf("policy is not base64: %v", err)
	}
	var doc struct {
		Expiration string `json:"expiration"`
		Conditions []any  `json:"conditions"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("policy is not JSON: %v: %s", err, raw)
	}
	p := policy{conditions: doc.Conditions, eq: map[string]string{}}
	if p.expiration, err = time.Parse(time.RFC3339, doc.Expiration); err != nil {
		t.Fatalf("policy expiration %q: %v", doc.Expiration, err)
	}
	for _, c := range doc.Conditions {
		switch c := c.(type) {
		case map[string]any: // {"field": "value"}
			for k, v := range c {
				s, ok := v.(string)
				if !ok {
					t.Fatalf("condition %v: value is not a string", c)
				}
				p.eq[strings.ToLower(k)] = s
			}
		case []any:
			switch {
			case len(c) == 3 && c[0] == "eq":
				field, _ := c[1].(string)
				value, ok := c[2].(string)
				if !strings.HasPrefix(field, "$") || !ok {
					t.Fatalf("bad condition %v", c)
				}
				p.eq[strings.ToLower(field[1:])] = value
			case len(c) == 3 && c[0] == "content-length-range":
				p.lengthMin, _ = c[1].(float64)
				p.lengthMax, _ = c[2].(float64)
				p.hasRange = true
			default:
				t.Fatalf("unexpected condition %v", c)
			}
		default:
			t.Fatalf("unexpected condition %v", c)
		}
	}
	return p
}

// A form's policy binds the bucket, the key, the type, the size range, the
// encryption and the metadata, and the form's fields satisfy it.
func TestPostObject(t *testing.T) {
	t.Parallel()
	r := presign.PostRequest{
		Bucket: "uploads", Key: "users/42/photo.png", ContentType: "image/png",
		MinSize: 1, MaxSize: 10 << 20,
		Metadata:   map[string]string{"Original-Name": "Café.png"},
		Encryption: presign.Encryption{KMSKeyID: "alias/uploads", BucketKey: true},
	}
	pp, err := pathStyleSigner().PostObject(context.Background(), sessionCreds(), r)
	if err != nil {
		t.Fatal(err)
	}
	if pp.URL != testEndpoint+"/uploads" {
		t.Errorf("URL = %s, want %s/uploads", pp.URL, testEndpoint)
	}
	p := decodePolicy(t, pp)

	date := pp.Fields["X-Amz-Date"]
	signedAt, err := time.Parse("20060102T150405Z", date)
	if err != nil {
		t.Fatalf("X-Amz-Date %q: %v", date, err)
	}
	credential := testAccessKey + "/" + signedAt.Format("20060102") + "/" + testRegion + "/s3/aws4_request"
	wantEq := map[string]string{
		"bucket":                       "uploads",
		"key":                          "users/42/photo.png",
		"content-type":                 "image/png",
		"x-amz-algorithm":              "AWS4-HMAC-SHA256",
		"x-amz-credential":             credential,
		"x-amz-date":                   date,
		"x-amz-security-token":         testToken,
		"x-amz-server-side-encryption": "aws:kms",
		"x-amz-server-side-encryption-aws-kms-key-id":     "alias/uploads",
		"x-amz-server-side-encryption-bucket-key-enabled": "true",
		"x-amz-meta-original-name":                        objectkey.MetadataValue("Café.png"),
	}
	if !reflect.DeepEqual(p.eq, wantEq) {
		t.Errorf("exact conditions:\n got %v\nwant %v", p.eq, wantEq)
	}
	if !p.hasRange || p.lengthMin != 1 || p.lengthMax != 10<<20 {
		t.Errorf("content-length-range = %v [%v, %v], want [1, %d]", p.hasRange, p.lengthMin, p.lengthMax, 10<<20)
	}

	// The form posts exactly the fields the policy names (bucket comes
	// from the URL), plus the policy and its signature.
	wantFields := map[string]string{"policy": pp.Fields["policy"], "X-Amz-Signature": pp.Fields["X-Amz-Signature"]}
	for field, v := range wantEq {
		if field != "bucket" {
			wantFields[field] = v
		}
	}
	gotFields := map[string]string{}
	for k, v := range pp.Fields {
		if k != "policy" && k != "X-Amz-Signature" {
			k = strings.ToLower(k)
		}
		gotFields[k] = v
	}
	if !reflect.DeepEqual(gotFields, wantFields) {
		t.Errorf("fields:\n got %v\nwant %v", gotFields, wantFields)
	}

	// The signature is the SigV4 HMAC of the base64 policy.
	scope := strings.SplitN(credential, "/", 2)[1]
	if want := hex.EncodeToString(hmacSHA256(signingKey(scope), pp.Fields["policy"])); !hmac.Equal([]byte(pp.Fields["X-Amz-Signature"]), []byte(want)) {
		t.Errorf("X-Amz-Signature = %s, want %s", pp.Fields["X-Amz-Signature"], want)
	}

	if !pp.Expires.Equal(p.expiration) {
		t.Errorf("Expires = %v, want the policy's %v", pp.Expires, p.expiration)
	}
	if d := time.Until(pp.Expires); d > presign.DefaultExpires || d < presign.DefaultExpires-5*time.Second {
		t.Errorf("expires in %v, want about %v", d, presign.DefaultExpires)
	}
}

// Without encryption or metadata, the policy has no such conditions and
// the form no such fields.
func TestPostObjectMinimal(t *testing.T) {
	t.Parallel()
	pp, err := pathStyleSigner().PostObject(context.Background(), staticCreds(), presign.PostRequest{
		Bucket: "b", Key: "k", ContentType: "text/plain", MaxSize: 100,
	})
	if err != nil {
		t.Fatal(err)
	}
	p := decodePolicy(t, pp)
	for field := range p.eq {
		if strings.HasPrefix(field, "x-amz-server-side") || strings.HasPrefix(field, "x-amz-meta-") || field == "x-amz-security-token" {
			t.Errorf("unexpected condition on %s", field)
		}
	}
	if !p.hasRange || p.lengthMin != 0 || p.lengthMax != 100 {
		t.Errorf("content-length-range = [%v, %v], want [0, 100]", p.lengthMin, p.lengthMax)
	}
	if len(pp.Fields) != 7 { // key, policy, Content-Type, X-Amz-Algorithm, -Credential, -Date, -Signature
		t.Errorf("fields = %v, want 7", pp.Fields)
	}
}

func TestPostObjectInvalid(t *testing.T) {
	t.Parallel()
	valid := presign.PostRequest{Bucket: "b", Key: "k", ContentType: "text/plain", MaxSize: 100}
	tests := []struct {
		name string
		edit func(*presign.PostRequest)
	}{
		{"no bucket", func(r *presign.PostRequest) { r.Bucket = "" }},
		{"no key", func(r *presign.PostRequest) { r.Key = "" }},
		{"no content type", func(r *presign.PostRequest) { r.ContentType = "" }},
		{"content type with a newline", func(r *presign.PostRequest) { r.ContentType = "a/b\nc" }},
		{"no max size", func(r *presign.PostRequest) { r.MaxSize = 0 }},
		{"negative min size", func(r *presign.PostRequest) { r.MinSize = -1 }},
		{"min above max", func(r *presign.PostRequest) { r.MinSize = 101 }},
		{"max above 5 GiB", func(r *presign.PostRequest) { r.MaxSize = 5<<30 + 1 }},
		{"bad metadata", func(r *presign.PostRequest) { r.Metadata = map[string]string{"a b": "c"} }},
		{"bad encryption", func(r *presign.PostRequest) { r.Encryption = presign.Encryption{Mode: "AES256", KMSKeyID: "k"} }},
		{"negative expiry", func(r *presign.PostRequest) { r.Expires = -time.Second }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := valid
			tt.edit(&r)
			pp, err := pathStyleSigner().PostObject(context.Background(), sessionCreds(), r)
			if !errors.Is(err, presign.ErrInvalidRequest) {
				t.Errorf("got %v, %v; want ErrInvalidRequest", pp, err)
			}
		})
	}
}
