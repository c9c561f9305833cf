package rolecreds

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/aws-sdk-go-v2/service/sts/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/caddy-upload-gateway/upload-gateway/internal/awserr"
	"github.com/caddy-upload-gateway/upload-gateway/internal/policy"
)

// API is the part of *sts.Client that Provider calls.
type API interface {
	AssumeRole(ctx context.Context, in *sts.AssumeRoleInput, optFns ...func(*sts.Options)) (*sts.AssumeRoleOutput, error)
}

// The errors of Retrieve; see the package documentation for the HTTP status
// each stands for.
var (
	// ErrDenied: STS refused to assume the role, or the session grants
	// nothing.
	ErrDenied = errors.New("rolecreds: access denied")
	// ErrUnavailable: STS was unreachable, timed out, answered 5xx,
	// throttled, or gave no credentials.
	ErrUnavailable = errors.New("rolecreds: sts unavailable")
	// ErrPolicyTooLarge: the session policy exceeds STS's limit.
	ErrPolicyTooLarge = errors.New("rolecreds: session policy too large")
)

// Defaults of Options.
const (
	DefaultDuration      = time.Hour
	DefaultRefreshBefore = 5 * time.Minute
	DefaultMaxEntries    = 10000
)

// callTimeout bounds one shared AssumeRole call, which runs detached from
// the callers' contexts.
const callTimeout = 30 * time.Second

// Options tunes a Provider. Zero values mean the defaults.
type Options struct {
	// Duration is the session length requested from STS. Default 1h. STS
	// accepts 15m up to the role's maximum session duration.
	Duration time.Duration

	// RefreshBefore is how long before expiry a cached session is renewed.
	// Default 5m, or a quarter of the session's lifetime if that is
	// shorter. A value above half the lifetime is cut to half.
	RefreshBefore time.Duration

	// MaxEntries bounds the cache; the least recently used session is
	// dropped first. Default 10000.
	MaxEntries int
}

// Session describes the credentials wanted for one user. Do not modify
// Grants after passing a Session.
type Session struct {
	RoleARN string // role to assume
	UserID  string // user the session is for; names the session (SessionName)
	Bucket  string // bucket the grants apply to

	// KMSKeyARN, when set, is the SSE-KMS key the session may use for
	// uploads (kms:GenerateDataKey, kms:Decrypt) and downloads
	// (kms:Decrypt). A key ARN, not an alias.
	KMSKeyARN string

	// Grants is what the user may do, from policy.Policy.Grants.
	Grants []policy.Grant
}

// Policy returns the session policy Retrieve sends for s: SessionPolicy of
// its bucket and grants, plus the KMS statement if KMSKeyARN is set.
func (s Session) Policy() (string, error) {
	return sessionPolicy(s.Bucket, s.KMSKeyARN, s.Grants)
}

// Provider hands out cached per-user credentials. It is safe for
// concurrent use. It starts no goroutine of its own; see Retrieve.
//
// Each (role, user, session policy) has its own aws.CredentialsCache over
// an stscreds.AssumeRoleProvider: the cache shares one AssumeRole call
// between concurrent callers and renews the credentials when they are due.
// Provider keeps at most MaxEntries of them, dropping the least recently
// used.
type Provider struct {
	api   API
	opts  Options
	calls atomic.Int64

	mu    sync.Mutex
	lru   *list.List // of *entry, most recently used first
	items map[string]*list.Element
}

// entry is the cache of one (role, user, session policy).
type entry struct {
	key   string
	cache *aws.CredentialsCache
	exp   *expiries
}

// New returns a Provider that assumes roles through api (usually an
// *sts.Client holding the gateway's own credentials).
func New(api API, opts Options) *Provider {
	if opts.Duration <= 0 {
		opts.Duration = DefaultDuration
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = DefaultMaxEntries
	}
	return &Provider{api: api, opts: opts, lru: list.New(), items: map[string]*list.Element{}}
}

// Calls returns the number of AssumeRole calls made so far, failed ones
// included.
func (p *Provider) Calls() int64 { return p.calls.Load() }

// Retrieve returns credentials for s, from the cache unless they are
// missing or due for renewal. Concurrent callers for the same session share
// one AssumeRole call; it runs detached from the callers' contexts and ends
// when STS answers or after 30 seconds, whether or not the callers still
// wait. Errors are not cached. See the package documentation for the
// errors.
func (p *Provider) Retrieve(ctx context.Context, s Session) (aws.Credentials, error) {
	if s.RoleARN == "" || s.Bucket == "" {
		return aws.Credentials{}, errors.New("rolecreds: session without role ARN or bucket")
	}
	if len(s.Grants) == 0 {
		return aws.Credentials{}, fmt.Errorf("%w: the session grants nothing", ErrDenied)
	}
	pol, err := s.Policy()
	if err != nil {
		return aws.Credentials{}, err
	}
	if err := ctx.Err(); err != nil {
		return aws.Credentials{}, ctxError(err)
	}
	e := p.entry(s, pol)
	c, err := e.cache.Retrieve(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return aws.Credentials{}, ctxError(ctx.Err())
		}
		return aws.Credentials{}, err
	}
	return e.exp.real(c), nil
}

// ctxError wraps the error of the caller's context.
func ctxError(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w (%w): waiting for AssumeRole", ErrUnavailable, context.DeadlineExceeded)
	}
	return fmt.Errorf("rolecreds: waiting for AssumeRole: %w", err)
}

// CredentialsFor returns s's credentials as an aws.CredentialsProvider, for
// S3 clients and presign clients. Its Retrieve is p.Retrieve(ctx, s); it
// needs no aws.CredentialsCache around it.
func (p *Provider) CredentialsFor(s Session) aws.CredentialsProvider {
	return aws.CredentialsProviderFunc(func(ctx context.Context) (aws.Credentials, error) {
		return p.Retrieve(ctx, s)
	})
}

// entry returns the cache of s, whose session policy is pol, creating it
// if needed and dropping the least recently used beyond MaxEntries.
func (p *Provider) entry(s Session, pol string) *entry {
	sum := sha256.Sum256([]byte(pol))
	key := s.RoleARN + "\x00" + s.UserID + "\x00" + hex.EncodeToString(sum[:])
	p.mu.Lock()
	defer p.mu.Unlock()
	if el, ok := p.items[key]; ok {
		p.lru.MoveToFront(el)
		return el.Value.(*entry)
	}
	exp := &expiries{refreshBefore: p.refreshBefore}
	assume := stscreds.NewAssumeRoleProvider(checked{p: p, role: s.RoleARN}, s.RoleARN, func(o *stscreds.AssumeRoleOptions) {
		o.RoleSessionName = SessionName(s.UserID)
		o.Duration = p.opts.Duration
		o.Policy = aws.String(pol)
	})
	e := &entry{key: key, exp: exp, cache: aws.NewCredentialsCache(renewing{assume, exp}, func(o *aws.CredentialsCacheOptions) {
		// Any positive window makes the cache call AdjustExpiresBy,
		// which computes the real one.
		o.ExpiryWindow = DefaultRefreshBefore
	})}
	p.items[key] = p.lru.PushFront(e)
	for p.lru.Len() > p.opts.MaxEntries {
		old := p.lru.Back()
		p.lru.Remove(old)
		delete(p.items, old.Value.(*entry).key)
	}
	return e
}

// refreshBefore returns how long before expiry a session of the given
// lifetime is renewed.
func (p *Provider) refreshBefore(life time.Duration) time.Duration {
	if p.opts.RefreshBefore <= 0 {
		return min(DefaultRefreshBefore, life/4)
	}
	return min(p.opts.RefreshBefore, life/2)
}

// renewing is the provider inside a session's aws.CredentialsCache. The
// cache renews credentials when their Expires has passed, so AdjustExpiresBy
// moves Expires back to the renewal time; expiries remembers the real
// expiry, which Retrieve hands out (presigned URLs are bounded by it).
type renewing struct {
	*stscreds.AssumeRoleProvider
	exp *expiries
}

// AdjustExpiresBy implements aws.AdjustExpiresByCredentialsCacheStrategy;
// it ignores the cache's fixed window.
func (r renewing) AdjustExpiresBy(c aws.Credentials, _ time.Duration) (aws.Credentials, error) {
	return r.exp.renewAt(c), nil
}

// expiries remembers the real expiry of a session's latest credentials.
type expiries struct {
	refreshBefore func(life time.Duration) time.Duration

	mu      sync.Mutex
	key     string    // access key of the latest credentials
	expires time.Time // their real expiry
}

// renewAt remembers c's expiry and returns c with Expires moved back to
// when c is due for renewal.
func (x *expiries) renewAt(c aws.Credentials) aws.Credentials {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.key, x.expires = c.AccessKeyID, c.Expires
	c.Expires = c.Expires.Add(-x.refreshBefore(time.Until(c.Expires)))
	return c
}

// real returns c with its real expiry. Credentials replaced since the
// caller got them keep their renewal time, which is earlier: safe.
func (x *expiries) real(c aws.Credentials) aws.Credentials {
	x.mu.Lock()
	defer x.mu.Unlock()
	if c.AccessKeyID == x.key {
		c.Expires = x.expires
	}
	return c
}

// checked is the STS client of the AssumeRoleProviders: it counts the
// calls, bounds each by callTimeout, translates errors and refuses answers
// without usable credentials.
type checked struct {
	p    *Provider
	role string
}

func (c checked) AssumeRole(ctx context.Context, in *sts.AssumeRoleInput, optFns ...func(*sts.Options)) (*sts.AssumeRoleOutput, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	c.p.calls.Add(1)
	out, err := c.p.api.AssumeRole(ctx, in, optFns...)
	if err != nil {
		return nil, translate(c.role, err)
	}
	if out == nil || out.Credentials == nil || aws.ToString(out.Credentials.AccessKeyId) == "" ||
		aws.ToString(out.Credentials.SecretAccessKey) == "" || aws.ToString(out.Credentials.SessionToken) == "" {
		return nil, fmt.Errorf("%w: AssumeRole %s answered without credentials", ErrUnavailable, c.role)
	}
	now := time.Now()
	if out.Credentials.Expiration == nil {
		creds := *out.Credentials
		creds.Expiration = aws.Time(now.Add(c.p.opts.Duration))
		out = &sts.AssumeRoleOutput{Credentials: &creds, AssumedRoleUser: out.AssumedRoleUser}
	}
	if exp := *out.Credentials.Expiration; !exp.After(now) {
		return nil, fmt.Errorf("%w: AssumeRole %s answered with credentials that expired at %s (clock skew?)",
			ErrUnavailable, c.role, exp.Format(time.RFC3339))
	}
	return out, nil
}

// translate maps an AssumeRole error to the package's errors (see the
// package documentation).
func translate(role string, err error) error {
	switch code := awserr.Code(err); {
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("rolecreds: AssumeRole %s: %w", role, context.Canceled)
	case code == "AccessDenied", code == "AccessDeniedException":
		return fmt.Errorf("%w: AssumeRole %s: %v", ErrDenied, role, err)
	case awserr.Is[*types.PackedPolicyTooLargeException](err), code == "PackedPolicyTooLarge":
		return fmt.Errorf("%w: AssumeRole %s: %v", ErrPolicyTooLarge, role, err)
	case errors.Is(err, context.DeadlineExceeded), awserr.Timeout(err):
		return fmt.Errorf("%w (%w): AssumeRole %s: %v", ErrUnavailable, context.DeadlineExceeded, role, err)
	case code == "Throttling", code == "ThrottlingException", code == "TooManyRequestsException",
		code == "RequestLimitExceeded", code == "SlowDown", code == "ServiceUnavailable",
		code == "InternalFailure", code == "InternalError",
		awserr.Status(err) == http.StatusTooManyRequests, awserr.Status(err) >= 500,
		awserr.Is[*smithyhttp.RequestSendError](err), awserr.Is[net.Error](err):
		return fmt.Errorf("%w: AssumeRole %s: %v", ErrUnavailable, role, err)
	}
	return fmt.Errorf("rolecreds: AssumeRole %s: %v", role, err)
}
