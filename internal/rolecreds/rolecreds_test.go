package rolecreds_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/caddy-upload-gateway/upload-gateway/internal/policy"
	"github.com/caddy-upload-gateway/upload-gateway/internal/rolecreds"
	"github.com/caddy-upload-gateway/upload-gateway/internal/roles"
)

// fakeSTS answers AssumeRole with numbered credentials that live for life
// (default 1h) from now, and records the inputs. Tests that move the clock
// run in a synctest bubble.
type fakeSTS struct {
	life time.Duration

	// entered, if set, receives a value as each call starts; release, if
	// set, holds each call until it is closed.
	entered chan struct{}
	release chan struct{}

	mu     sync.Mutex
	err    error // returned by calls while set
	out    *sts.AssumeRoleOutput
	inputs []*sts.AssumeRoleInput
}

func (f *fakeSTS) AssumeRole(ctx context.Context, in *sts.AssumeRoleInput, _ ...func(*sts.Options)) (*sts.AssumeRoleOutput, error) {
	f.mu.Lock()
	f.inputs = append(f.inputs, in)
	n, err, out := len(f.inputs), f.err, f.out
	f.mu.Unlock()
	if f.entered != nil {
		f.entered <- struct{}{}
	}
	if f.release != nil {
		select {
		case <-f.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err != nil {
		return nil, err
	}
	if out != nil {
		return out, nil
	}
	life := f.life
	if life == 0 {
		life = time.Hour
	}
	exp := time.Now().Add(life)
	return &sts.AssumeRoleOutput{Credentials: &types.Credentials{
		AccessKeyId:     aws.String(fmt.Sprintf("ASIAFAKE%04d", n)),
		SecretAccessKey: aws.String(fmt.Sprintf("secret%04d", n)),
		SessionToken:    aws.String(fmt.Sprintf("token%04d", n)),
		Expiration:      &exp,
	}}, nil
}

func (f *fakeSTS) setErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakeSTS) lastInput() *sts.AssumeRoleInput {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.inputs[len(f.inputs)-1]
}

// newProvider returns a provider over a fake STS.
func newProvider(opts rolecreds.Options) (*rolecreds.Provider, *fakeSTS) {
	f := &fakeSTS{}
	return rolecreds.New(f, opts), f
}

var pol = policy.Default("files/")

// session returns an uploader's session.
func session(user string) rolecreds.Session {
	return rolecreds.Session{
		RoleARN: "arn:aws:iam::123456789012:role/UploadRole",
		UserID:  user,
		Bucket:  "uploads",
		Grants:  pol.Grants(policy.Subject{ID: user, Role: roles.Uploader}),
	}
}

func TestRetrieveCaches(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		p, f := newProvider(rolecreds.Options{})
		start := time.Now()
		s := session("alice")
		first, err := p.Retrieve(context.Background(), s)
		if err != nil {
			t.Fatalf("Retrieve: %v", err)
		}
		for range 99 {
			got, err := p.Retrieve(context.Background(), s)
			if err != nil || got != first {
				t.Fatalf("Retrieve = %+v, %v; want the cached %+v", got, err, first)
			}
		}
		if got := p.Calls(); got != 1 {
			t.Errorf("Calls() = %d after 100 Retrieves, want 1", got)
		}

		want := aws.Credentials{
			AccessKeyID: "ASIAFAKE0001", SecretAccessKey: "secret0001", SessionToken: "token0001",
			Source: stscreds.ProviderName, CanExpire: true, Expires: first.Expires,
		}
		if first != want {
			t.Errorf("credentials = %+v, want %+v", first, want)
		}
		// The real expiry, not the renewal time the cache works with.
		if life := first.Expires.Sub(start); life != time.Hour {
			t.Errorf("credentials expire in %v, want 1h", life)
		}
		in := f.lastInput()
		wantPolicy, _ := s.Policy()
		if aws.ToString(in.RoleArn) != s.RoleARN || aws.ToString(in.RoleSessionName) != "alice" ||
			aws.ToInt32(in.DurationSeconds) != 3600 || aws.ToString(in.Policy) != wantPolicy {
			t.Errorf("AssumeRole input: role %q, session name %q, duration %d, policy %q; want %q, alice, 3600, %q",
				aws.ToString(in.RoleArn), aws.ToString(in.RoleSessionName), aws.ToInt32(in.DurationSeconds),
				aws.ToString(in.Policy), s.RoleARN, wantPolicy)
		}
	})
}

func TestRetrieveSeparatesSessions(t *testing.T) {
	t.Parallel()
	p, _ := newProvider(rolecreds.Options{})
	otherRole := session("alice")
	otherRole.RoleARN = "arn:aws:iam::123456789012:role/Other"
	otherBucket := session("alice")
	otherBucket.Bucket = "other"
	admin := session("alice")
	admin.Grants = pol.Grants(policy.Subject{ID: "alice", Role: roles.Admin})
	withKMS := session("alice")
	withKMS.KMSKeyARN = "arn:aws:kms:eu-west-1:123456789012:key/k"
	sessions := map[string]rolecreds.Session{
		"alice": session("alice"), "bob": session("bob"), "a/b": session("a/b"), "a_b": session("a_b"),
		"alice as admin": admin, "alice, other role": otherRole, "alice, other bucket": otherBucket,
		"alice with KMS": withKMS,
	}
	keys := map[string]string{} // access key -> session
	for range 3 {
		for name, s := range sessions {
			c, err := p.Retrieve(context.Background(), s)
			if err != nil {
				t.Fatalf("Retrieve(%s): %v", name, err)
			}
			if prev, ok := keys[c.AccessKeyID]; ok && prev != name {
				t.Errorf("sessions %s and %s share credentials %s", prev, name, c.AccessKeyID)
			}
			keys[c.AccessKeyID] = name
		}
	}
	if got, want := p.Calls(), int64(len(sessions)); got != want {
		t.Errorf("Calls() = %d, want one per session, %d", got, want)
	}
}

func TestRetrieveRenewsNearExpiry(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		opts          rolecreds.Options
		life          time.Duration // granted by STS
		cachedUntil   time.Duration // last moment still served from the cache
		renewedAt     time.Duration
		wantDuration  int32
		wantRenewLife time.Duration
	}{
		{"default", rolecreds.Options{}, time.Hour, 55*time.Minute - time.Second, 55 * time.Minute, 3600, time.Hour},
		{"short lifetime: a quarter", rolecreds.Options{Duration: 16 * time.Minute}, 16 * time.Minute, 12*time.Minute - time.Second, 12 * time.Minute, 960, 16 * time.Minute},
		{"STS grants less than asked", rolecreds.Options{}, 20 * time.Minute, 15*time.Minute - time.Second, 15 * time.Minute, 3600, 20 * time.Minute},
		{"explicit", rolecreds.Options{RefreshBefore: 10 * time.Minute}, time.Hour, 50*time.Minute - time.Second, 50 * time.Minute, 3600, time.Hour},
		{"explicit, cut to half", rolecreds.Options{RefreshBefore: 45 * time.Minute}, time.Hour, 30*time.Minute - time.Second, 30 * time.Minute, 3600, time.Hour},
		{"expired", rolecreds.Options{}, time.Hour, 0, 2 * time.Hour, 3600, time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				p, f := newProvider(tt.opts)
				f.life = tt.life
				s := session("alice")
				first, err := p.Retrieve(context.Background(), s)
				if err != nil {
					t.Fatalf("Retrieve: %v", err)
				}
				if got := aws.ToInt32(f.lastInput().DurationSeconds); got != tt.wantDuration {
					t.Errorf("DurationSeconds = %d, want %d", got, tt.wantDuration)
				}
				time.Sleep(tt.cachedUntil)
				if got, err := p.Retrieve(context.Background(), s); err != nil || got != first || p.Calls() != 1 {
					t.Fatalf("at +%v: Retrieve = %s, %v, %d calls; want the cached %s, 1 call", tt.cachedUntil, got.AccessKeyID, err, p.Calls(), first.AccessKeyID)
				}
				time.Sleep(tt.renewedAt - tt.cachedUntil)
				renewed, err := p.Retrieve(context.Background(), s)
				if err != nil || p.Calls() != 2 || renewed.AccessKeyID == first.AccessKeyID {
					t.Fatalf("at +%v: Retrieve = %s, %v, %d calls; want new credentials, 2 calls", tt.renewedAt, renewed.AccessKeyID, err, p.Calls())
				}
				if want := time.Now().Add(tt.wantRenewLife); !renewed.Expires.Equal(want) {
					t.Errorf("renewed credentials expire at %v, want %v", renewed.Expires, want)
				}
				if got, _ := p.Retrieve(context.Background(), s); got != renewed || p.Calls() != 2 {
					t.Errorf("after renewal: Retrieve = %s, %d calls; want the renewed %s from the cache", got.AccessKeyID, p.Calls(), renewed.AccessKeyID)
				}
			})
		})
	}
}

func TestRetrieveSharesOneCall(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		p, f := newProvider(rolecreds.Options{})
		f.entered = make(chan struct{}, 1)
		f.release = make(chan struct{})
		const n = 50
		var done sync.WaitGroup
		creds := make([]aws.Credentials, n)
		errs := make([]error, n)
		for i := range n {
			done.Go(func() {
				creds[i], errs[i] = p.Retrieve(context.Background(), session("alice"))
			})
		}
		<-f.entered
		synctest.Wait() // every caller is waiting for the one call in flight
		close(f.release)
		done.Wait()
		for i := range n {
			if errs[i] != nil || creds[i] != creds[0] {
				t.Fatalf("caller %d: %s, %v; want %s", i, creds[i].AccessKeyID, errs[i], creds[0].AccessKeyID)
			}
		}
		if got := p.Calls(); got != 1 {
			t.Errorf("Calls() = %d for %d concurrent callers, want 1", got, n)
		}
	})
}

func TestRetrieveCallerGivesUp(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		p, f := newProvider(rolecreds.Options{})
		f.entered = make(chan struct{}, 1)
		f.release = make(chan struct{})

		// The patient caller starts the call.
		type result struct {
			c   aws.Credentials
			err error
		}
		patient := make(chan result, 1)
		go func() {
			c, err := p.Retrieve(context.Background(), session("alice"))
			patient <- result{c, err}
		}()
		<-f.entered

		// Callers that give up get their context's error, wrapped.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := p.Retrieve(ctx, session("alice")); !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled caller: %v, want context.Canceled", err)
		}
		ctx, cancel = context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		if _, err := p.Retrieve(ctx, session("alice")); !errors.Is(err, rolecreds.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("caller past its deadline: %v, want ErrUnavailable and DeadlineExceeded", err)
		}

		// The shared call was not cancelled with them.
		close(f.release)
		r := <-patient
		if r.err != nil || r.c.AccessKeyID == "" {
			t.Fatalf("patient caller: %+v, %v; want credentials", r.c, r.err)
		}
		if got := p.Calls(); got != 1 {
			t.Errorf("Calls() = %d, want 1", got)
		}
	})
}

// sdkError builds an error as the SDK returns it for an HTTP answer.
func sdkError(status int, apiErr error) error {
	return &smithy.OperationError{ServiceID: "STS", OperationName: "AssumeRole",
		Err: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
			Err:      apiErr,
		}}
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// errNone stands for "none of the sentinels" in test tables.
var errNone = errors.New("none of the sentinels")

func sentinel(err error) error {
	for _, s := range []error{rolecreds.ErrDenied, rolecreds.ErrUnavailable, rolecreds.ErrPolicyTooLarge, context.Canceled} {
		if errors.Is(err, s) {
			return s
		}
	}
	return errNone
}

func TestRetrieveTranslatesErrors(t *testing.T) {
	t.Parallel()
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	tests := []struct {
		name         string
		err          error
		want         error
		wantDeadline bool
	}{
		{"AccessDenied", sdkError(403, &smithy.GenericAPIError{Code: "AccessDenied", Message: "not authorized to assume role"}), rolecreds.ErrDenied, false},
		{"PackedPolicyTooLarge", sdkError(400, &types.PackedPolicyTooLargeException{}), rolecreds.ErrPolicyTooLarge, false},
		{"Throttling", sdkError(400, &smithy.GenericAPIError{Code: "Throttling"}), rolecreds.ErrUnavailable, false},
		{"HTTP 429", sdkError(429, &smithy.GenericAPIError{Code: "TooManyRequests"}), rolecreds.ErrUnavailable, false},
		{"HTTP 500", sdkError(500, &smithy.GenericAPIError{Code: "InternalFailure"}), rolecreds.ErrUnavailable, false},
		{"HTTP 503", sdkError(503, &smithy.GenericAPIError{Code: "ServiceUnavailable"}), rolecreds.ErrUnavailable, false},
		{"connection refused", &smithy.OperationError{Err: &smithyhttp.RequestSendError{Err: refused}}, rolecreds.ErrUnavailable, false},
		{"network timeout", &smithy.OperationError{Err: &smithyhttp.RequestSendError{Err: timeoutError{}}}, rolecreds.ErrUnavailable, true},
		{"deadline exceeded", &smithy.OperationError{Err: &smithy.CanceledError{Err: context.DeadlineExceeded}}, rolecreds.ErrUnavailable, true},
		{"canceled", &smithy.OperationError{Err: &smithy.CanceledError{Err: context.Canceled}}, context.Canceled, false},
		{"MalformedPolicyDocument", sdkError(400, &types.MalformedPolicyDocumentException{}), errNone, false},
		{"InvalidClientTokenId", sdkError(403, &smithy.GenericAPIError{Code: "InvalidClientTokenId"}), errNone, false},
		{"SignatureDoesNotMatch", sdkError(403, &smithy.GenericAPIError{Code: "SignatureDoesNotMatch"}), errNone, false},
		{"InvalidParameterValue", sdkError(400, &smithy.GenericAPIError{Code: "InvalidParameterValue"}), errNone, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, f := newProvider(rolecreds.Options{})
			f.setErr(tt.err)
			_, err := p.Retrieve(context.Background(), session("alice"))
			if err == nil {
				t.Fatal("Retrieve succeeded, want an error")
			}
			if got := sentinel(err); got != tt.want {
				t.Errorf("Retrieve error %v matches %v, want %v", err, got, tt.want)
			}
			if got := errors.Is(err, context.DeadlineExceeded); got != tt.wantDeadline {
				t.Errorf("errors.Is(%v, DeadlineExceeded) = %v, want %v", err, got, tt.wantDeadline)
			}

			// Errors are not cached.
			f.setErr(nil)
			if _, err := p.Retrieve(context.Background(), session("alice")); err != nil || p.Calls() != 2 {
				t.Errorf("Retrieve after the error: %v, %d calls; want credentials from a second call", err, p.Calls())
			}
		})
	}
}

func TestRetrieveBadAnswers(t *testing.T) {
	t.Parallel()
	past := time.Now().Add(-time.Minute)
	tests := []struct {
		name string
		out  *sts.AssumeRoleOutput
	}{
		{"no credentials", &sts.AssumeRoleOutput{}},
		{"no session token", &sts.AssumeRoleOutput{Credentials: &types.Credentials{AccessKeyId: aws.String("a"), SecretAccessKey: aws.String("s")}}},
		{"already expired", &sts.AssumeRoleOutput{Credentials: &types.Credentials{
			AccessKeyId: aws.String("a"), SecretAccessKey: aws.String("s"), SessionToken: aws.String("t"), Expiration: &past}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, f := newProvider(rolecreds.Options{})
			f.out = tt.out
			if _, err := p.Retrieve(context.Background(), session("alice")); !errors.Is(err, rolecreds.ErrUnavailable) {
				t.Errorf("Retrieve = %v, want ErrUnavailable", err)
			}
		})
	}
}

func TestRetrieveRefusesBeforeCalling(t *testing.T) {
	t.Parallel()
	nothing := session("alice")
	nothing.Grants = pol.Grants(policy.Subject{ID: "alice", Role: roles.None})
	noRole := session("alice")
	noRole.RoleARN = ""
	wildcard := session("alice")
	wildcard.Grants = []policy.Grant{{Prefix: "files/*", Actions: []policy.Action{policy.Download}}}
	tests := []struct {
		name string
		s    rolecreds.Session
		want error
	}{
		{"no grants", nothing, rolecreds.ErrDenied},
		{"no role", noRole, errNone},
		{"wildcard in prefix", wildcard, errNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, _ := newProvider(rolecreds.Options{})
			_, err := p.Retrieve(context.Background(), tt.s)
			if err == nil || sentinel(err) != tt.want {
				t.Errorf("Retrieve = %v, want an error matching %v", err, tt.want)
			}
			if p.Calls() != 0 {
				t.Errorf("Calls() = %d, want 0", p.Calls())
			}
		})
	}
}

func TestRetrieveEvictsLeastRecentlyUsed(t *testing.T) {
	t.Parallel()
	p, _ := newProvider(rolecreds.Options{MaxEntries: 2})
	get := func(user string) {
		t.Helper()
		if _, err := p.Retrieve(context.Background(), session(user)); err != nil {
			t.Fatalf("Retrieve(%s): %v", user, err)
		}
	}
	get("alice")
	get("bob")
	get("alice") // alice is now the most recently used
	get("carol") // evicts bob
	if got := p.Calls(); got != 3 {
		t.Fatalf("Calls() = %d, want 3", got)
	}
	get("alice")
	get("carol")
	if got := p.Calls(); got != 3 {
		t.Errorf("Calls() = %d after alice and carol again, want 3 (both cached)", got)
	}
	get("bob")
	if got := p.Calls(); got != 4 {
		t.Errorf("Calls() = %d after bob again, want 4 (evicted)", got)
	}
}

func TestCredentialsFor(t *testing.T) {
	t.Parallel()
	p, _ := newProvider(rolecreds.Options{})
	var cp aws.CredentialsProvider = p.CredentialsFor(session("alice"))
	got, err := cp.Retrieve(context.Background())
	if err != nil {
		t.Fatalf("Retrieve: %v", err)
	}
	want, err := p.Retrieve(context.Background(), session("alice"))
	if err != nil || got != want {
		t.Errorf("CredentialsFor(...).Retrieve = %+v, want Provider.Retrieve's %+v (%v)", got, want, err)
	}
	if !got.CanExpire || got.Expires.IsZero() {
		t.Errorf("credentials %+v do not expire", got)
	}
	if p.Calls() != 1 {
		t.Errorf("Calls() = %d, want 1", p.Calls())
	}
}
