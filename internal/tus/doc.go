// Package tus serves resumable uploads by the tus 1.0 protocol
// (https://tus.io/protocols/resumable-upload) over S3 multipart uploads,
// with no state in the gateway: any instance can continue any upload.
//
// # Protocol
//
// Core (OPTIONS, HEAD, PATCH) and the extensions creation,
// creation-with-upload, creation-defer-length, termination, expiration
// and checksum; X-HTTP-Method-Override is honoured on POST. The upload
// URL is the POST path, "/", and a sealed upload id. A PATCH at another
// offset than S3 holds answers 409 with the real Upload-Offset.
// Upload-Checksum (sha1, md5, crc32 as 4 big-endian bytes, sha256,
// sha512) covers the whole body that carries it; a mismatch answers 460
// and stores nothing.
//
// # IETF draft
//
// Requests with Upload-Draft-Interop-Version 3 to 6 (drafts -01 to -05 of
// draft-ietf-httpbis-resumable-upload, as tusd v2 serves them) follow the
// draft over the same uploads: POST or PUT creates an upload and
// announces its Location with 104 Upload Resumption Supported before
// reading the body; HEAD, PATCH and DELETE retrieve the offset, append
// and cancel. A length unknown at creation is set by Upload-Length or by
// the append with Upload-Complete: ?1 (Upload-Incomplete: ?0 at version
// 3), where its body ends if it arrived whole.
//
// # Implementation
//
// The upload id is the upload's claims (object key, S3 upload id, owner,
// declared length, expiry, Upload-Metadata) sealed with AES-256-GCM under
// a key derived from a shared secret, so it can be neither guessed nor
// altered, and a request by another user is refused (403).
//
// The offset is the sum of the parts S3 lists (ListParts) plus the size
// of the tail: the object <temp prefix><upload>/tail-<N> holding the
// bytes after the parts (which end at N) that are short of S3's 5 MiB
// minimum part. A PATCH reads the tail back, appends its body, sends
// every PartSize bytes as a part and keeps what is left as the new tail;
// when the declared length is reached it sends the rest as the last part,
// completes the upload and removes the temporary objects. A body that
// breaks off is not lost: what arrived is stored before the answer.
//
// A body with Upload-Checksum must not count before all of it has
// arrived and matched, yet the gateway holds only PartSize bytes of it:
// each full part is stored as a staged object stage-<N> under the
// temporary directory, which the offset does not include. When the body
// matches, the staged objects become parts by UploadPartCopy (inside S3)
// and the rest is handled as above; when it does not, or breaks off, the
// staged objects are deleted and the parts and tail are as before. A
// crash between copies leaves a consistent upload whose offset ends at a
// copied (verified) part; staged objects left by a crash are removed
// with the temporary directory. Where S3 does not implement
// UploadPartCopy (501), a staged part is read back into a second buffer
// and uploaded. An upload whose bytes are all in S3 but whose completion
// failed is completed by the next HEAD. A PATCH holds at most PartSize
// bytes in memory; nothing is kept in memory or on disk between requests.
//
// Writers exclude each other with a lock made of S3 conditional writes:
// lock-<n> objects created with If-None-Match: *, so exactly one request
// creates each generation. A PATCH that finds a generation younger than
// LockTimeout answers 409; an older one was left by a request that died
// and is taken over by creating the next generation. A holder renews (by
// creating the next generation itself) before a write once its newest
// generation is half LockTimeout old; if another request took over, the
// renewal fails and the holder writes nothing more. Deferred lengths are
// stored once, in <temp prefix><upload>/length, also with If-None-Match.
//
// # Considerations
//
// The S3 server must support conditional PutObject (If-None-Match: *,
// answering 412 or 409) and strongly consistent ListObjectsV2 and
// ListParts: AWS S3 and SeaweedFS do. LockTimeout must exceed the time to
// send one part to S3 and read the next PartSize bytes of a PATCH body;
// a request slower than that can lose its lock, and one whose lock is
// taken over while a part is in flight could still write that part.
// Staleness is judged from S3's LastModified (one-second resolution)
// against the gateway's clock, so the clocks must agree to well within
// LockTimeout. Each PATCH in progress holds PartSize bytes; the number of
// PATCHes in progress is not bounded here.
//
// # Lifecycle
//
// DELETE aborts the multipart upload and deletes the temporary directory
// and the open marker at once; Handler.Sweep (the janitor) removes what
// expired uploads left. With MaxOpenUploads, each open upload has a
// marker <temp prefix>open/<owner hash>/<upload>, which a creation counts.
//
// With Config.Tags, the finished object is tagged sha256 and size. The
// SHA-256 state of the bytes in parts (crypto/sha256 marshals it) is
// stored as sha256-<end of the parts> before the part that ends there, so
// an instance that dies between the two never leaves parts without their
// state; the next request reads it back, and the tail's bytes are hashed
// when they become a part.
//
// With Config.Types, the declared type must be allowed at creation and
// the first contenttype.SniffLen bytes are checked (Allowlist.Check)
// once they are in a PATCH's buffer, before any of them is stored beyond
// a tail; a refusal terminates the upload.
//
// Not yet done: the checksum-trailer extension.
package tus
