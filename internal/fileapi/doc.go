// Package fileapi is the REST file API existing clients use to upload,
// list, inspect, download and delete files without streaming them through
// the gateway: the gateway decides where a file goes and who may touch it,
// and hands the client presigned S3 URLs for the bytes.
//
// [Service] is an [net/http.Handler] for these routes, relative to a base
// path the caller strips (it sees "/files/upload-url"). They are
// [net/http.ServeMux] patterns, registered once in Service.routes; the
// pattern that served a request is what [Resolved].Route reports, so
// metrics and audit lines use it as their label ("GET /files/{fileId}",
// never the fileId itself):
//
//	POST   /files/upload-url              presigned PUT (1 byte up to MaxSingleSize)
//	POST   /files/upload-post             presigned POST form (up to MaxSingleSize)
//	POST   /files/multipart/initiate      start a multipart upload, first part URLs
//	POST   /files/multipart/sign-parts    more part URLs (at most 100 per call)
//	GET    /files/multipart/{uploadId}/parts?fileId=...   parts uploaded so far
//	POST   /files/multipart/complete      verify the parts and complete
//	POST   /files/multipart/abort         abort
//	GET    /files?scope=own|all&limit=&cursor=            list files
//	GET    /files/limits                  sizes and types allowed, for pages
//	GET    /files/{fileId}                object details
//	GET    /files/{fileId}/download-url   presigned GET, as an attachment
//	DELETE /files/{fileId}                delete
//	POST   /files/{fileId}/confirm        check and count a presigned PUT/POST upload
//
// Uppy's @uppy/aws-s3 is served too (companion.go): the routes of its
// Companion server under /s3/, and POST /s3/sign for its signRequest
// callback with the S3-XML routes /s3/sign/{uploads,parts,complete,abort}.
// They answer plain JSON (or S3's XML) as Uppy expects, not the envelope;
// failures are the envelope. The upload id Uppy carries is the upload
// token, and they complete through the same function as
// /files/multipart/complete. Uppy does not declare a file's size there,
// so such a token has none: part URLs are unbound, and complete requires
// parts of equal size but the last (at least 5 MiB), within MaxFileSize.
//
// Every response is a JSON envelope (package envelope):
// {"success":true,"data":{...}} or
// {"success":false,"error":{"code":"...","message":"..."}}. Request bodies
// are JSON objects of at most 64 KiB with camelCase members; unknown members
// are ignored.
//
// # Configuration
//
// The caller (the Caddy module) authenticates the request and stores the
// user (a policy.Subject) in its context with [WithSubject]; a request
// without one gets 401.
// [New] takes a [Config]:
//
//   - Store makes the S3 calls that need no presigning (multipart create,
//     list, complete and abort; list, head and delete objects) with the
//     gateway's own credentials. An *s3.Client satisfies [ObjectStore]. That
//     identity needs s3:ListBucket, s3:GetObject (for HeadObject),
//     s3:DeleteObject, s3:PutObject (CreateMultipartUpload and
//     CompleteMultipartUpload), s3:ListMultipartUploadParts,
//     s3:AbortMultipartUpload, s3:GetObjectTagging and s3:PutObjectTagging
//     (confirm), and with SSE-KMS kms:GenerateDataKey and kms:Decrypt on
//     the key.
//   - Presigner signs URLs (a *presign.Signer) with the credentials
//     Credentials returns for the user, usually an STS session scoped to
//     the user's prefix; PostCredentials may sign POST forms instead.
//     Encryption is signed into upload URLs and forms.
//   - Authorizer decides what a user may do with a key (a policy.Policy).
//   - Secret signs multipart upload tokens. Every gateway instance behind
//     the same load balancer needs the same secret; to rotate it, move the
//     old one to OldSecrets for at least UploadTTL.
//   - CreateOnly says whether S3 honours If-None-Match: * (package
//     createonly finds out). When it does, upload-url signs the header into
//     the URL, so it is listed in requiredHeaders and the client must send
//     it, and complete sends it: a replayed URL gets 412 from S3 instead of
//     overwriting the file, and completing onto a key that exists answers
//     409 FILE_EXISTS and aborts the upload.
//   - MaxConcurrentInitiates bounds the initiate calls one user may have
//     in flight (default 4); more answer 429 TOO_MANY_REQUESTS with
//     Retry-After: 1, before any S3 call.
//
// The caller may also put a [Resolved] in the context ([WithResolved]):
// the Service records in it the key it resolved (a new file's key, or a
// fileId it accepted) and the upload id S3 knows, for audit logs, with the
// route's pattern and audit action name. Nothing
// of the request itself ends up there unchecked.
//
// # Implementation
//
// The API keeps no state. A fileId is the object key in unpadded base64url.
// It is opaque to clients but not secret: the server decodes it, accepts it
// only when it is a clean key (package objectkey) under Config.Prefix that
// encodes back to the same fileId, and then asks the Authorizer. The key of
// a new file is always the server's choice:
//
//	OwnerPrefix(user.ID) + <uuid> + "/" + objectkey.SanitizeFilename(fileName)
//
// A multipart upload is bound to an uploadToken: "v1.<payload>.<mac>", the
// payload being base64url JSON of the key, upload id, declared file size,
// part size, content type and expiry, and the mac HMAC-SHA256 over it with
// Secret (compared in constant time). sign-parts and complete require it
// and check that it names the fileId and uploadId of the request, so a
// client can change neither the size it declared nor the target key. Part
// URLs are signed for the exact length of each part.
//
// complete does not trust the client's part list: the server lists the
// parts itself, requires parts 1..n with every part but the last exactly
// partSize bytes and the total equal to the declared fileSize (and at most
// MaxFileSize). On a mismatch the upload is aborted and the answer is 400
// (413 when the total exceeds MaxFileSize); abort runs even if the client
// has gone away.
//
// Content types are checked against Config.Types with the declared type
// only, since the gateway never sees the bytes: a type passes when the
// allow-list admits it by name, alias or parent (see package contenttype).
// "application/octet-stream" passes only when the allow-list names it (or
// "application/*", or allows everything). The checked type is signed into
// the URL (PUT) or the POST policy, so S3 stores exactly that type.
//
// # Counting uploads that go straight to S3
//
// The gateway never sees the bytes of a presigned upload, so it learns of
// one only when the client tells it, and then reports the upload's outcome
// ([Resolved].Upload) for the same upload metrics and audit line as a
// streamed upload; the caller records it. This is a call, not an S3 event
// notification: it needs no queue or webhook endpoint, works the same on
// every S3-compatible server, and happens while the client waits, so a
// refused file is gone before the client reports success. An upload that is
// never confirmed is stored but not counted (and not checked beyond what
// was signed).
//
//   - A multipart upload is counted when it is completed: every completion,
//     whatever the route, goes through completeUpload, which reports the
//     upload once its outcome is final: stored (bytes, parts, the time since
//     initiate), or refused when the parts did not match and the upload was
//     aborted. Errors the client may retry report nothing.
//   - A single PUT or POST is counted by POST /files/{fileId}/confirm, with
//     an optional body {"size":n,"type":"…","sha256":"…"}. confirm heads the
//     object and checks it: size at most MaxSingleSize and equal to a
//     declared size (else 413, 400 SIZE_MISMATCH); stored type allowed and
//     equal to a declared type (415 CONTENT_TYPE_NOT_ALLOWED,
//     CONTENT_TYPE_MISMATCH); when the allow-list restricts types, the first
//     4 KiB (a ranged GET) agree with the stored type (package contenttype;
//     415); a declared sha256 equal to the stored one, when S3 has one (400
//     CHECKSUM_MISMATCH). An object that fails is deleted and reported as
//     refused. One that passes gets the object tag [ConfirmedTag] and is
//     reported as stored, with the time since its key was chosen: new keys
//     hold a version 7 UUID, whose first 48 bits are that time.
//   - A confirm of an object with the tag, or of one not uploaded with a
//     single presigned request (a multipart ETag "<md5>-<n>", or the
//     streaming gateway's gateway-write-id metadata), checks and counts
//     nothing and answers 200 with "counted": false. So a repeated confirm
//     counts once, without any state in the gateway. Two confirms racing
//     for the same untagged object may both count it.
//
// # Metadata
//
// Client metadata is an object of string values. Names are lowercased and
// must be 1 to 128 characters of [a-z0-9_-], else 400. The gateway's own
// names (s3limits.Reserved: original-name, uploaded-by, user-role, sha256,
// size, field and gateway-write-id) are
// dropped silently when a client sends them, as the form upload path does
// for X-Upload-Meta-* headers: clients written for either path keep
// working, and the gateway's values always win. Values go through
// objectkey.MetadataValue (RFC 2047 for non-ASCII). The gateway always
// stores original-name (the file name as the client sent it), uploaded-by
// (the subject's ID) and user-role, and sha256 (hex) when the client
// declares checksumSHA256 for a presigned PUT, which S3 then verifies. All
// names and values together may not exceed 2 KiB (S3's limit), else 400.
//
// # Status codes
//
// 400 bad JSON, a missing or invalid field, an invalid fileId, parts that do
// not match the upload; 401 no subject; 403 denied by the Authorizer, an
// upload token that is forged, expired or for another upload; 404 unknown
// route (a path with an empty, "." or ".." segment is one; a route name
// such as upload-url is never a fileId), missing object or multipart
// upload; 405 wrong method, with Allow (HEAD is not served); 413 body over
// 64 KiB, file over the limit; 415 body not JSON, content type not allowed;
// 409 a multipart upload completed onto a key that exists (create-only);
// 400/413/415 from confirm: the object did not match and was deleted;
// 429 too many initiate calls of the user at once; 499 the client went
// away; 502 S3 or the presigner failed; 504 S3 timed out. They are decided in one function, classify.
//
// # Considerations
//
// A multipart upload that is never completed or aborted keeps its parts
// (and costs storage) until a bucket lifecycle rule
// (AbortIncompleteMultipartUpload) removes it; set one, with more days than
// UploadTTL.
//
// DELETE is idempotent: S3 reports success for a key that does not exist,
// and so does the API. Listing returns the object keys under the prefix the
// Authorizer gives; fileName there is the last key segment (the gateway's
// sanitised name), while GET /files/{fileId} decodes the original name.
//
// Presigned URLs are bearer credentials until they expire (URLExpiry);
// anyone holding one can use it. Keep URLExpiry short. Without CreateOnly
// (an S3 server that ignores If-None-Match) a PUT URL can be replayed
// until then, overwriting the file with bytes of the same size and type
// (the same bytes when a checksum was declared). Browser POST forms cannot
// carry the condition: a POST policy stays replayable until it expires.
// An empty file cannot get a PUT URL (fileSize 0 is 400); upload-post
// accepts fileSize 0.
package fileapi
