// Package presign issues presigned S3 requests (PUT, UploadPart, GET and
// browser POST forms) that bind what the client may send: the object key,
// the body size, the content type, the encryption, the user metadata and,
// when the client declared one, the body's SHA-256. A URL or form issued for
// one file cannot be reused to store other bytes, a larger body or another
// type, and it never outlives the credentials that signed it.
//
// # Configuration
//
// Build one [Signer] per S3 client with [New]; it does no network I/O. The
// client only supplies the region, the endpoint and the addressing style
// (path style or virtual host): its own credentials are never used. Every
// call takes the credentials to sign with, usually a user's STS session or
// the gateway's own keys:
//
//	signer := presign.New(s3Client)
//	p, err := signer.PutObject(r.Context(), creds, presign.PutRequest{
//		Bucket: "uploads", Key: key, ContentType: "image/png",
//		ContentLength: 52_113,
//		Encryption:    presign.Encryption{KMSKeyID: "alias/uploads"},
//	})
//	// The client sends: PUT p.URL with exactly p.Headers, before p.Expires.
//
// The identity behind the credentials needs s3:PutObject (PUT, POST,
// UploadPart) or s3:GetObject (GET) on the keys, and, for SSE-KMS,
// kms:GenerateDataKey (and kms:Decrypt for multipart uploads and GETs) on
// the key.
//
// # What is bound, and how
//
// A presigned URL is a SigV4 signature over the method, the path, the query
// string and the headers named in X-Amz-SignedHeaders. The client must send
// those headers with the same values; [Presigned.Headers] lists them:
//
//	content-length                                   PutObject; UploadPart when a length is given
//	content-type                                     PutObject
//	content-disposition                              PutObject, when given
//	if-none-match: *                                 PutObject, when CreateOnly (replays get 412)
//	x-amz-checksum-sha256                            PutObject, when declared
//	x-amz-meta-*                                     PutObject
//	x-amz-server-side-encryption                     PutObject, unless no encryption is asked for
//	x-amz-server-side-encryption-aws-kms-key-id      PutObject, SSE-KMS with a key
//	x-amz-server-side-encryption-bucket-key-enabled  PutObject, SSE-KMS with a bucket key
//	x-amz-server-side-encryption-context             PutObject, SSE-KMS with a context
//
// The SDK's presigner would hoist the bucket-key flag (every x-amz-* header
// outside its fixed list) into the query string instead: the signature
// still covers it there, but S3 servers read some settings only from
// headers (SeaweedFS ignores a hoisted bucket-key flag), so the Signer
// disables hoisting and signs every header as a header. The query holds
// only SigV4's own parameters (with X-Amz-Security-Token for session
// credentials), x-id, and the operation's parameters: partNumber and
// uploadId for UploadPart, response-content-disposition for GetObject; the
// signature covers all of them. Every call checks the presigner's output
// against what it asked for and fails if a value is not bound, so an SDK
// change cannot silently produce a URL that accepts other bytes.
//
// A POST form is bound by its policy instead: exact conditions on the
// bucket, the key, Content-Type, the encryption fields and every
// x-amz-meta-* field, a content-length-range, and the credential, algorithm,
// date and session token fields. [PresignedPost.Fields] holds every field
// the form must post, in any order, followed by the file in a field named
// "file".
//
// # Expiry
//
// Requests last 15 minutes unless asked otherwise, at most 7 days (S3's
// limit), and never longer than the signing credentials: a request signed
// with an STS session that ends in 10 minutes lasts at most 10 minutes less
// one second. The effective expiry is returned with every request.
//
// # Considerations
//
// Browsers cannot set Content-Length: they send the length of the body they
// upload, so binding it only rejects bodies of another size. A checksum is
// the only way to bind the bytes themselves. S3 stores user metadata as
// HTTP header values, so values go through [objectkey.MetadataValue] and the
// client must send the encoded value that Headers gives.
package presign
