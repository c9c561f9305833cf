package stscreds

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
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/aws-sdk-go-v2/service/sts/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"golang.org/x/sync/singleflight"

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
	ErrDenied = errors.New("stscreds: access denied")
	// ErrUnavailable: STS was unreachable, timed out, answered 5xx,
	// throttled, or gave no credentials.
	ErrUnavailable = errors.New("stscreds: sts unavailable")
	// ErrPolicyTooLarge: the session policy exceeds STS's limit.
	ErrPolicyTooLarge = errors.New("stscreds: session policy too large")
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

	// Now returns the current time. Default time.Now.
	Now func() time.Time
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
type Provider struct {
	api   API
	opts  Options
	calls atomic.Int64
	group singleflight.Group

	mu    sync.Mutex
	lru   *list.List // of *entry, most recently used first
	items map[string]*list.Element
}

type entry struct {
	key       string
	creds     aws.Credentials
	refreshAt time.Time
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
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Provider{api: api, opts: opts, lru: list.New(), items: map[string]*list.Element{}}
}

// Calls returns the number of AssumeRole calls made so far, failed ones
// included.
func (p *Provider) Calls() int64 { return p.calls.Load() }

// Retrieve returns credentials for s, from the cache unless they are
// missing or due for renewal. Concurrent callers for the same session share
// one AssumeRole call; it runs in a goroutine that ends when STS answers or
// after 30 seconds, whether or not the callers still wait. Errors are not
// cached. See the package documentation for the errors.
func (p *Provider) Retrieve(ctx context.Context, s Session) (aws.Credentials, error) {
	if s.RoleARN == "" || s.Bucket == "" {
		return aws.Credentials{}, errors.New("stscreds: session without role ARN or bucket")
	}
	if len(s.Grants) == 0 {
		return aws.Credentials{}, fmt.Errorf("%w: the session grants nothing", ErrDenied)
	}
	pol, err := s.Policy()
	if err != nil {
		return aws.Credentials{}, err
	}
	sum := sha256.Sum256([]byte(pol))
	key := s.RoleARN + "\x00" + s.UserID + "\x00" + hex.EncodeToString(sum[:])

	if c, ok := p.cached(key); ok {
		return c, nil
	}
	if err := ctx.Err(); err != nil {
		return aws.Credentials{}, ctxError(err)
	}
	ch := p.group.DoChan(key, func() (any, error) {
		// A flight that ended between our cache miss and now has stored
		// fresh credentials.
		if c, ok := p.cached(key); ok {
			return c, nil
		}
		return p.assume(context.WithoutCancel(ctx), key, s, pol)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return aws.Credentials{}, r.Err
		}
		return r.Val.(aws.Credentials), nil
	case <-ctx.Done():
		return aws.Credentials{}, ctxError(ctx.Err())
	}
}

// ctxError wraps the error of the caller's context.
func ctxError(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w (%w): waiting for AssumeRole", ErrUnavailable, context.DeadlineExceeded)
	}
	return fmt.Errorf("stscreds: waiting for AssumeRole: %w", err)
}

// CredentialsFor returns s's credentials as an aws.CredentialsProvider, for
// S3 clients and presign clients. Its Retrieve is p.Retrieve(ctx, s); it
// needs no aws.CredentialsCache around it.
func (p *Provider) CredentialsFor(s Session) aws.CredentialsProvider {
	return sessionCredentials{p: p, s: s}
}

type sessionCredentials struct {
	p *Provider
	s Session
}

func (c sessionCredentials) Retrieve(ctx context.Context) (aws.Credentials, error) {
	return c.p.Retrieve(ctx, c.s)
}

// cached returns the credentials under key unless they are due for renewal.
func (p *Provider) cached(key string) (aws.Credentials, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	el, ok := p.items[key]
	if !ok {
		return aws.Credentials{}, false
	}
	e := el.Value.(*entry)
	if !p.opts.Now().Before(e.refreshAt) {
		return aws.Credentials{}, false
	}
	p.lru.MoveToFront(el)
	return e.creds, true
}

// store caches e, dropping the least recently used entries beyond
// MaxEntries.
func (p *Provider) store(e *entry) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if el, ok := p.items[e.key]; ok {
		el.Value = e
		p.lru.MoveToFront(el)
		return
	}
	p.items[e.key] = p.lru.PushFront(e)
	for p.lru.Len() > p.opts.MaxEntries {
		old := p.lru.Back()
		p.lru.Remove(old)
		delete(p.items, old.Value.(*entry).key)
	}
}

// assume calls AssumeRole and caches the result.
func (p *Provider) assume(ctx context.Context, key string, s Session, pol string) (aws.Credentials, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	p.calls.Add(1)
	out, err := p.api.AssumeRole(ctx, &sts.AssumeRoleInput{
		RoleArn:         aws.String(s.RoleARN),
		RoleSessionName: aws.String(SessionName(s.UserID)),
		DurationSeconds: aws.Int32(int32(p.opts.Duration / time.Second)),
		Policy:          aws.String(pol),
	})
	if err != nil {
		return aws.Credentials{}, translate(s.RoleARN, err)
	}
	if out == nil || out.Credentials == nil || aws.ToString(out.Credentials.AccessKeyId) == "" ||
		aws.ToString(out.Credentials.SecretAccessKey) == "" || aws.ToString(out.Credentials.SessionToken) == "" {
		return aws.Credentials{}, fmt.Errorf("%w: AssumeRole %s answered without credentials", ErrUnavailable, s.RoleARN)
	}
	now := p.opts.Now()
	exp := now.Add(p.opts.Duration)
	if out.Credentials.Expiration != nil {
		exp = *out.Credentials.Expiration
	}
	life := exp.Sub(now)
	if life <= 0 {
		return aws.Credentials{}, fmt.Errorf("%w: AssumeRole %s answered with credentials that expired at %s (clock skew?)",
			ErrUnavailable, s.RoleARN, exp.Format(time.RFC3339))
	}
	c := aws.Credentials{
		AccessKeyID:     aws.ToString(out.Credentials.AccessKeyId),
		SecretAccessKey: aws.ToString(out.Credentials.SecretAccessKey),
		SessionToken:    aws.ToString(out.Credentials.SessionToken),
		Source:          "stscreds",
		CanExpire:       true,
		Expires:         exp,
	}
	p.store(&entry{key: key, creds: c, refreshAt: exp.Add(-p.refreshBefore(life))})
	return c, nil
}

// refreshBefore returns how long before expiry a session of the given
// lifetime is renewed.
func (p *Provider) refreshBefore(life time.Duration) time.Duration {
	if p.opts.RefreshBefore <= 0 {
		return min(DefaultRefreshBefore, life/4)
	}
	return min(p.opts.RefreshBefore, life/2)
}

// translate maps an AssumeRole error to the package's errors (see the
// package documentation).
func translate(role string, err error) error {
	switch code := awserr.Code(err); {
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("stscreds: AssumeRole %s: %w", role, context.Canceled)
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
	return fmt.Errorf("stscreds: AssumeRole %s: %v", role, err)
}
