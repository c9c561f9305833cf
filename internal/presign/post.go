package presign

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/caddy-upload-gateway/upload-gateway/internal/s3limits"
)

// PostRequest describes a browser form upload (POST Object).
type PostRequest struct {
	Bucket, Key string
	// ContentType is required: the form must post it as the Content-Type
	// field, and the policy accepts no other value.
	ContentType string
	// MinSize and MaxSize bound the file's size in bytes
	// (content-length-range): 0 <= MinSize <= MaxSize, 1 <= MaxSize <=
	// [s3limits.MaxPutObjectSize].
	MinSize, MaxSize int64
	// Metadata is the object's user metadata, posted as x-amz-meta-*
	// fields. Names are lower-cased; values are encoded with
	// [objectkey.MetadataValue].
	Metadata map[string]string
	// Encryption is the server-side encryption the form requests.
	Encryption Encryption
	// Expires is as for [PutRequest.Expires].
	Expires time.Duration
}

// PresignedPost is a presigned browser form. The browser posts a
// multipart/form-data body to URL with every field of Fields (in any
// order) and then the file in a field named "file", which must be last:
// S3 ignores fields after the file.
type PresignedPost struct {
	URL    string
	Fields map[string]string
	// Expires is when S3 stops accepting the form (the policy's expiration).
	Expires time.Time
}

// PostObject presigns a browser form upload. Errors are as for
// [Signer.PutObject].
func (s *Signer) PostObject(ctx context.Context, creds aws.CredentialsProvider, r PostRequest) (*PresignedPost, error) {
	conditions, fields, err := r.conditions()
	if err != nil {
		return nil, err
	}
	c, ttl, err := retrieve(ctx, creds, r.Expires)
	if err != nil {
		return nil, err
	}
	req, err := s.presignClient(c).PresignPostObject(ctx,
		&s3.PutObjectInput{Bucket: aws.String(r.Bucket), Key: aws.String(r.Key)},
		func(o *s3.PresignPostOptions) {
			o.Expires = ttl
			o.Conditions = conditions
		})
	if err != nil {
		return nil, fmt.Errorf("presign: presigning PostObject: %v", err)
	}
	for name, v := range req.Values {
		if _, dup := fields[name]; dup {
			return nil, fmt.Errorf("presign: the presigner set the form field %s", name)
		}
		fields[name] = v
	}
	expires, err := checkPolicy(fields, r.Bucket, r.Key, c.SessionToken)
	if err != nil {
		return nil, err
	}
	return &PresignedPost{URL: req.URL, Fields: fields, Expires: expires}, nil
}

// conditions validates r and returns the policy conditions it adds to the
// SDK's (algorithm, bucket, credential, date, session token and key) with
// the form fields that satisfy them.
func (r PostRequest) conditions() ([]any, map[string]string, error) {
	if err := checkUpload(r.Bucket, r.Key, r.ContentType); err != nil {
		return nil, nil, err
	}
	if r.MinSize < 0 || r.MaxSize < 1 || r.MinSize > r.MaxSize || r.MaxSize > s3limits.MaxPutObjectSize {
		return nil, nil, invalid("size range [%d, %d] is not within [0, %d] or is empty", r.MinSize, r.MaxSize, s3limits.MaxPutObjectSize)
	}
	meta, err := metadata(r.Metadata)
	if err != nil {
		return nil, nil, err
	}
	enc, err := sseSettings(r.Encryption)
	if err != nil {
		return nil, nil, err
	}
	sse := enc.Headers()

	conditions := []any{
		[]any{"eq", "$Content-Type", r.ContentType},
		[]any{"content-length-range", r.MinSize, r.MaxSize},
	}
	fields := map[string]string{"Content-Type": r.ContentType}
	eq := func(field, value string) {
		conditions = append(conditions, []any{"eq", "$" + field, value})
		fields[field] = value
	}
	for _, name := range slices.Sorted(maps.Keys(sse)) {
		eq(strings.ToLower(name), sse.Get(name))
	}
	for _, name := range slices.Sorted(maps.Keys(meta)) {
		eq("x-amz-meta-"+name, meta[name])
	}
	return conditions, fields, nil
}

// checkPolicy decodes the form's policy, checks that the SDK bound the
// bucket, the key and the session token, and returns its expiration.
func checkPolicy(fields map[string]string, bucket, key, token string) (time.Time, error) {
	raw, err := base64.StdEncoding.DecodeString(fields["policy"])
	if err != nil {
		return time.Time{}, fmt.Errorf("presign: the presigner returned a bad policy: %v", err)
	}
	var doc struct {
		Expiration string `json:"expiration"`
		Conditions []any  `json:"conditions"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return time.Time{}, fmt.Errorf("presign: the presigner returned a bad policy: %v", err)
	}
	expires, err := time.Parse(time.RFC3339, doc.Expiration)
	if err != nil {
		return time.Time{}, fmt.Errorf("presign: the presigner returned a bad policy expiration: %v", err)
	}
	want := map[string]string{"bucket": bucket, "key": key}
	if token != "" {
		want["x-amz-security-token"] = token
	}
	for _, c := range doc.Conditions {
		m, ok := c.(map[string]any)
		if !ok {
			continue
		}
		for name, v := range m {
			if w, ok := want[strings.ToLower(name)]; ok && v == w {
				delete(want, strings.ToLower(name))
			}
		}
	}
	if len(want) > 0 {
		return time.Time{}, fmt.Errorf("presign: the presigner's policy does not bind %v", slices.Sorted(maps.Keys(want)))
	}
	if fields["key"] != key || (token != "" && fields["X-Amz-Security-Token"] != token) {
		return time.Time{}, fmt.Errorf("presign: the presigner returned fields that do not match its policy")
	}
	return expires, nil
}
