// Package rolecreds gives each user temporary S3 credentials that can do no
// more than the user may: the gateway assumes one IAM role with STS
// AssumeRole and passes an inline session policy built from the user's
// [policy.Grant] values. The session's permissions are the intersection of
// the role's policies and the session policy, so even a bug elsewhere in the
// gateway, or a leaked presigned URL, cannot reach another user's files.
//
// # Setup
//
// The gateway's own identity needs sts:AssumeRole on the role, and the
// role's trust policy must name that identity. The role's permission
// policy must allow at least everything any session policy grants (e.g.
// s3:* on the bucket and bucket/*, plus kms:GenerateDataKey and kms:Decrypt
// on the SSE-KMS key).
//
//	client := sts.NewFromConfig(cfg) // the gateway's credentials
//	p := rolecreds.New(client, rolecreds.Options{})
//	sess := rolecreds.Session{
//		RoleARN:   "arn:aws:iam::123456789012:role/UploadRole",
//		UserID:    claims.Subject,
//		Bucket:    "uploads",
//		KMSKeyARN: "arn:aws:kms:eu-west-1:123456789012:key/…", // optional
//		Grants:    pol.Grants(policy.Subject{ID: claims.Subject, Role: role}),
//	}
//	s3c := s3.New(s3.Options{Credentials: p.CredentialsFor(sess), …})
//
// # Session policy
//
// [SessionPolicy] writes one statement per grant for its object actions,
// on "arn:aws:s3:::<bucket>/<prefix>*", and one for listing:
//
//	upload    s3:PutObject, s3:AbortMultipartUpload, s3:ListMultipartUploadParts
//	download  s3:GetObject
//	delete    s3:DeleteObject
//	manage    s3:AbortMultipartUpload, s3:ListMultipartUploadParts, s3:PutObjectTagging
//	list      s3:ListBucket on "arn:aws:s3:::<bucket>", only when the request's
//	          prefix is StringLike "<prefix>*" (no condition for the whole bucket)
//
// s3:PutObject covers the whole multipart upload (create, parts, complete).
// When Session.KMSKeyARN is set, a last statement allows kms:GenerateDataKey
// and kms:Decrypt (upload) or kms:Decrypt (download) on that key: on AWS,
// SSE-KMS reads and writes fail without them, since the session policy
// limits KMS calls made on the session's behalf too. There are no
// conditions on the SSE headers: the gateway sets them, and SeaweedFS never
// matches such conditions.
//
// A prefix must not contain '*', '?' or '$': IAM would read them as
// wildcards or policy variables and grant more than the prefix.
// User prefixes from [policy.Policy.OwnerPrefix] never do.
//
// STS limits the policy to 2048 characters (and a packed size). SessionPolicy
// fails with [ErrPolicyTooLarge] above 2048 bytes. The default uploader's
// policy takes about 400 bytes (550 with the KMS statement) plus twice the
// escaped user id, so escaped ids up to about 700 bytes fit.
//
// # Caching
//
// Each (role ARN, user id, session policy) gets the SDK's own
// [stscreds.AssumeRoleProvider] (role session name [SessionName], the
// session policy, Duration) inside an [aws.CredentialsCache]: a user whose
// grants change gets a new session at the next Retrieve. The cache makes
// concurrent callers for the same key share one AssumeRole call, which runs
// detached from the callers' contexts (a caller that gives up does not fail
// the others); this package bounds it to 30 seconds. A cached entry is
// renewed RefreshBefore before it expires (default 5 minutes, or a quarter
// of its lifetime if that is shorter), so credentials handed out are valid
// for at least RefreshBefore: presigned URLs signed with them live at most
// that long, so keep presign lifetimes below it. The credentials carry their
// real expiry (the cache itself works with the renewal time). The Provider
// holds at most MaxEntries caches (about 1–2 KiB each) and drops the least
// recently used.
//
// Credentials already handed out cannot be revoked: they stay valid until
// they expire (Duration, default 1 hour), even if the user loses a role.
//
// # Errors
//
// STS errors are translated here. Callers test with errors.Is and answer:
//
//	ErrDenied          403  STS refused to assume the role (AccessDenied: the
//	                        role's trust policy or the gateway's permissions
//	                        do not allow it), or the session grants nothing.
//	                        Log it: unless grants are empty, this is a
//	                        configuration problem, not the user's fault.
//	ErrUnavailable     502  STS unreachable, 5xx, throttled, or an answer
//	                        without credentials;
//	                   504  if errors.Is(err, context.DeadlineExceeded) too
//	ErrPolicyTooLarge  500  the session policy is too long (also STS's
//	                        PackedPolicyTooLarge)
//	context.Canceled   499  the caller's context was cancelled
//
// Anything else (an invalid role ARN, a malformed policy, an unknown access
// key, a duration the role does not allow, ...) is a configuration error:
// callers answer 500 and log it. Error texts never hold credentials or the
// policy.
package rolecreds
