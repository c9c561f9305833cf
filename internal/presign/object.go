package presign

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/caddy-upload-gateway/upload-gateway/internal/objectkey"
	"github.com/caddy-upload-gateway/upload-gateway/internal/s3limits"
)

// PutRequest describes a single-request upload (PutObject).
type PutRequest struct {
	Bucket, Key string
	// ContentType is required: it is signed, so the client cannot store
	// the object under another type.
	ContentType string
	// ContentLength is required, 1 to [s3limits.MaxPutObjectSize] bytes: it is signed,
	// so a body of another size is rejected.
	ContentLength int64
	// ChecksumSHA256 is the base64 SHA-256 of the body the client
	// declared, if any. It is signed as x-amz-checksum-sha256, so S3
	// rejects any other bytes.
	ChecksumSHA256 string
	// Metadata is the object's user metadata (x-amz-meta-*), signed.
	// Names are lower-cased; values are encoded with
	// [objectkey.MetadataValue].
	Metadata map[string]string
	// Encryption is the server-side encryption the upload requests, signed.
	Encryption Encryption
	// ContentDisposition is the Content-Disposition header value stored
	// with the object, if any (see [objectkey.ContentDisposition]), signed.
	ContentDisposition string
	// CreateOnly signs If-None-Match: *, so S3 (where it supports
	// conditional writes) stores the body only if the key holds no object
	// yet: a replay of the URL gets 412 Precondition Failed instead of
	// overwriting the object.
	CreateOnly bool
	// Expires is how long the URL lasts: DefaultExpires when 0, at most
	// MaxExpires, and never past the credentials' own expiry.
	Expires time.Duration
}

// PutObject presigns a PutObject request. The client sends PUT to the URL
// with exactly the returned Headers and a body of r.ContentLength bytes.
// Errors match ErrInvalidRequest or ErrCredentialsExpired, or wrap the
// credentials provider's error.
func (s *Signer) PutObject(ctx context.Context, creds aws.CredentialsProvider, r PutRequest) (*Presigned, error) {
	in, bound, err := r.input()
	if err != nil {
		return nil, err
	}
	return s.sign(ctx, creds, r.Expires, "PutObject", bound, func(pc *s3.PresignClient, expires func(*s3.PresignOptions)) (*v4.PresignedHTTPRequest, error) {
		return pc.PresignPutObject(ctx, in, expires)
	})
}

// input validates r and returns the SDK input with the headers it must bind.
func (r PutRequest) input() (*s3.PutObjectInput, http.Header, error) {
	if err := checkUpload(r.Bucket, r.Key, r.ContentType); err != nil {
		return nil, nil, err
	}
	if err := checkHeaderValue("content disposition", r.ContentDisposition); err != nil {
		return nil, nil, err
	}
	if r.ContentLength <= 0 || r.ContentLength > s3limits.MaxPutObjectSize {
		return nil, nil, invalid("content length %d is not between 1 and %d", r.ContentLength, s3limits.MaxPutObjectSize)
	}
	if r.ChecksumSHA256 != "" {
		if sum, err := base64.StdEncoding.DecodeString(r.ChecksumSHA256); err != nil || len(sum) != 32 {
			return nil, nil, invalid("checksum %q is not a base64 SHA-256", r.ChecksumSHA256)
		}
	}
	meta, err := metadata(r.Metadata)
	if err != nil {
		return nil, nil, err
	}
	sse, err := sseSettings(r.Encryption)
	if err != nil {
		return nil, nil, err
	}

	in := &s3.PutObjectInput{
		Bucket:        aws.String(r.Bucket),
		Key:           aws.String(r.Key),
		ContentType:   aws.String(r.ContentType),
		ContentLength: aws.Int64(r.ContentLength),
	}
	bound := http.Header{}
	bound.Set("Content-Type", r.ContentType)
	bound.Set("Content-Length", strconv.FormatInt(r.ContentLength, 10))
	if r.ChecksumSHA256 != "" {
		in.ChecksumSHA256 = aws.String(r.ChecksumSHA256)
		bound.Set("X-Amz-Checksum-Sha256", r.ChecksumSHA256)
	}
	if r.ContentDisposition != "" {
		in.ContentDisposition = aws.String(r.ContentDisposition)
		bound.Set("Content-Disposition", r.ContentDisposition)
	}
	if r.CreateOnly {
		in.IfNoneMatch = aws.String("*")
		bound.Set("If-None-Match", "*")
	}
	if len(meta) > 0 {
		in.Metadata = meta
		for name, v := range meta {
			bound.Set("X-Amz-Meta-"+name, v)
		}
	}
	in.ServerSideEncryption, in.SSEKMSKeyId, in.BucketKeyEnabled, in.SSEKMSEncryptionContext = sse.RequestFields()
	for name, v := range sse.Headers() {
		bound[name] = v
	}
	return in, bound, nil
}

// PartRequest describes one part of a multipart upload (UploadPart). The
// upload itself, with its encryption, is created with the SDK
// (CreateMultipartUpload); parts inherit its encryption.
type PartRequest struct {
	Bucket, Key, UploadID string
	// PartNumber is 1 to [s3limits.MaxParts].
	PartNumber int32
	// ContentLength, when not 0, is signed, so a part of another size is
	// rejected. 0 leaves the size to the client.
	ContentLength int64
	// Expires is as for [PutRequest.Expires].
	Expires time.Duration
}

// UploadPart presigns an UploadPart request. The client sends PUT to the URL
// with exactly the returned Headers (Content-Length when r.ContentLength is
// set) and the part as body. Errors are as for [Signer.PutObject].
func (s *Signer) UploadPart(ctx context.Context, creds aws.CredentialsProvider, r PartRequest) (*Presigned, error) {
	if err := checkObject(r.Bucket, r.Key); err != nil {
		return nil, err
	}
	switch {
	case r.UploadID == "":
		return nil, invalid("no upload id")
	case r.PartNumber < 1 || r.PartNumber > s3limits.MaxParts:
		return nil, invalid("part number %d is not between 1 and %d", r.PartNumber, s3limits.MaxParts)
	case r.ContentLength < 0 || r.ContentLength > s3limits.MaxPartSize:
		return nil, invalid("content length %d is not between 0 and %d", r.ContentLength, s3limits.MaxPartSize)
	}
	in := &s3.UploadPartInput{
		Bucket:     aws.String(r.Bucket),
		Key:        aws.String(r.Key),
		UploadId:   aws.String(r.UploadID),
		PartNumber: aws.Int32(r.PartNumber),
	}
	bound := http.Header{}
	if r.ContentLength > 0 {
		in.ContentLength = aws.Int64(r.ContentLength)
		bound.Set("Content-Length", strconv.FormatInt(r.ContentLength, 10))
	}
	bound.Set("PartNumber", strconv.Itoa(int(r.PartNumber)))
	bound.Set("UploadId", r.UploadID)

	return s.sign(ctx, creds, r.Expires, "UploadPart", bound, func(pc *s3.PresignClient, expires func(*s3.PresignOptions)) (*v4.PresignedHTTPRequest, error) {
		return pc.PresignUploadPart(ctx, in, expires)
	})
}

// GetRequest describes a download (GetObject).
type GetRequest struct {
	Bucket, Key string
	// FileName, when set, makes S3 answer with Content-Disposition:
	// attachment under this name (see [objectkey.ContentDisposition]), so
	// a browser downloads the object instead of rendering it.
	FileName string
	// Expires is as for [PutRequest.Expires].
	Expires time.Duration
}

// GetObject presigns a GetObject request. The client sends GET to the URL;
// there are no headers to send. Errors are as for [Signer.PutObject].
func (s *Signer) GetObject(ctx context.Context, creds aws.CredentialsProvider, r GetRequest) (*Presigned, error) {
	if err := checkObject(r.Bucket, r.Key); err != nil {
		return nil, err
	}
	in := &s3.GetObjectInput{Bucket: aws.String(r.Bucket), Key: aws.String(r.Key)}
	bound := http.Header{}
	if r.FileName != "" {
		cd := objectkey.ContentDisposition(r.FileName)
		in.ResponseContentDisposition = aws.String(cd)
		bound.Set("Response-Content-Disposition", cd)
	}
	// A download link is opened by a browser, which sends no extra headers:
	// do not let the SDK sign x-amz-checksum-mode into it.
	return s.sign(ctx, creds, r.Expires, "GetObject", bound, func(pc *s3.PresignClient, expires func(*s3.PresignOptions)) (*v4.PresignedHTTPRequest, error) {
		return pc.PresignGetObject(ctx, in, expires, func(o *s3.PresignOptions) {
			o.ClientOptions = append(o.ClientOptions, func(o *s3.Options) {
				o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
			})
		})
	})
}

// sign retrieves the signing credentials and presigns with them through
// call, for the lifetime retrieve allows; op names the operation in errors.
func (s *Signer) sign(ctx context.Context, creds aws.CredentialsProvider, want time.Duration, op string, bound http.Header,
	call func(pc *s3.PresignClient, expires func(*s3.PresignOptions)) (*v4.PresignedHTTPRequest, error),
) (*Presigned, error) {
	c, ttl, err := retrieve(ctx, creds, want)
	if err != nil {
		return nil, err
	}
	req, err := call(s.presignClient(c), s3.WithPresignExpires(ttl))
	if err != nil {
		return nil, fmt.Errorf("presign: presigning %s: %v", op, err)
	}
	return result(req, bound)
}
