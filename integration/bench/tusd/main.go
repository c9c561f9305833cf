// Command tusdloop serves tusd's tus 1.0 handler (github.com/tus/tusd/v2,
// pinned by this module's go.mod) with its s3store on a loopback port, for
// the benchmark that sets it beside the gateway's upload_tus
// (integration/bench/tus.go). integration/bench/tusd-build.sh builds it.
//
// The S3 settings are flags; the keys come from AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY. -sse-kms-key adds SSE-KMS to the multipart uploads
// that hold the files (s3store has no setting for it): an initialize
// middleware of the S3 client sets it on CreateMultipartUpload, and only
// there (the .info and .part objects stay unencrypted).
package main

import (
	"context"
	"flag"
	"log"
	"net/http"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/middleware"
	"github.com/tus/tusd/v2/pkg/handler"
	"github.com/tus/tusd/v2/pkg/memorylocker"
	"github.com/tus/tusd/v2/pkg/s3store"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:1080", "address to serve on; tus uploads are created at /files/")
	endpoint := flag.String("s3-endpoint", "", "S3 endpoint URL (path-style requests)")
	region := flag.String("s3-region", "us-east-1", "S3 region")
	bucket := flag.String("s3-bucket", "", "bucket")
	prefix := flag.String("s3-object-prefix", "", "prefix of the objects' keys")
	minPart := flag.Int64("s3-min-part-size", 5<<20, "s3store.MinPartSize: the smallest part sent to S3 (S3's minimum)")
	partSize := flag.Int64("s3-part-size", 50<<20, "s3store.PreferredPartSize: the size s3store cuts bodies into")
	buffered := flag.Int64("s3-max-buffered-parts", 20, "s3store.MaxBufferedParts: parts kept on disk while others are sent")
	concurrent := flag.Int("s3-concurrent-part-uploads", 10, "parts sent to S3 at once")
	tmp := flag.String("tmp-dir", "", "s3store.TemporaryDirectory, where parts wait on disk (default the system's)")
	kmsKey := flag.String("sse-kms-key", "", "KMS key for SSE-KMS on the multipart uploads (empty: none)")
	flag.Parse()
	if *endpoint == "" || *bucket == "" {
		log.Fatal("tusdloop: -s3-endpoint and -s3-bucket are required")
	}

	opts := s3.Options{
		Region:       *region,
		BaseEndpoint: endpoint,
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"), ""),
	}
	if *kmsKey != "" {
		opts.APIOptions = append(opts.APIOptions, sseKMS(*kmsKey))
	}
	store := s3store.New(*bucket, s3.New(opts))
	store.ObjectPrefix = *prefix
	store.MinPartSize = *minPart
	store.PreferredPartSize = *partSize
	store.MaxBufferedParts = *buffered
	store.TemporaryDirectory = *tmp
	store.SetConcurrentPartUploads(*concurrent)

	composer := handler.NewStoreComposer()
	store.UseIn(composer)
	memorylocker.New().UseIn(composer)
	h, err := handler.NewHandler(handler.Config{BasePath: "/files/", StoreComposer: composer})
	if err != nil {
		log.Fatalf("tusdloop: %v", err)
	}
	http.Handle("/files/", http.StripPrefix("/files/", h))
	log.Printf("tusdloop: serving tus at http://%s/files/", *listen)
	log.Fatal(http.ListenAndServe(*listen, nil))
}

// sseKMS sets SSE-KMS with key on every CreateMultipartUpload.
func sseKMS(key string) func(*middleware.Stack) error {
	return func(st *middleware.Stack) error {
		return st.Initialize.Add(middleware.InitializeMiddlewareFunc("tusdloopSSEKMS",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				if c, ok := in.Parameters.(*s3.CreateMultipartUploadInput); ok {
					c.ServerSideEncryption = types.ServerSideEncryptionAwsKms
					c.SSEKMSKeyId = aws.String(key)
				}
				return next.HandleInitialize(ctx, in)
			}), middleware.Before)
	}
}
