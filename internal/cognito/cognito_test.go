package cognito

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	"github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// fakeAPI records the InitiateAuth and RevokeToken calls and answers with
// out or err.
type fakeAPI struct {
	out     *cip.InitiateAuthOutput
	err     error
	calls   []*cip.InitiateAuthInput
	revokes []*cip.RevokeTokenInput
}

func (f *fakeAPI) RevokeToken(_ context.Context, in *cip.RevokeTokenInput, _ ...func(*cip.Options)) (*cip.RevokeTokenOutput, error) {
	f.revokes = append(f.revokes, in)
	if f.err != nil {
		return nil, f.err
	}
	return &cip.RevokeTokenOutput{}, nil
}

func (f *fakeAPI) InitiateAuth(_ context.Context, in *cip.InitiateAuthInput, _ ...func(*cip.Options)) (*cip.InitiateAuthOutput, error) {
	f.calls = append(f.calls, in)
	return f.out, f.err
}

func authenticated(id, access, refresh string) *cip.InitiateAuthOutput {
	return &cip.InitiateAuthOutput{AuthenticationResult: &types.AuthenticationResultType{
		IdToken: aws.String(id), AccessToken: aws.String(access), RefreshToken: aws.String(refresh),
		ExpiresIn: 3600, TokenType: aws.String("Bearer"),
	}}
}

// Expected SECRET_HASH values, computed independently:
//
//	python3 -c 'import hmac,hashlib,base64; print(base64.b64encode(hmac.new(
//	    b"app-client-secret", b"uploader@example.com" + b"client-123", hashlib.sha256).digest()))'
const (
	testClientID   = "client-123"
	testSecret     = "app-client-secret"
	hashForEmail   = "1Q3zFaI3SfYifAsUJkUgFQBmN1Foqn333CQvoTFLUUo=" // uploader@example.com
	testUsername   = "6f1c3e9a-0000-4000-8000-000000000001"
	hashForSubName = "7NNW5efHNhmGbfKiu0RQE0sGIq2W5KFa3dh3RDqHi0s=" // testUsername
)

func TestLogin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		secret     string
		email, pw  string
		out        *cip.InitiateAuthOutput
		err        error
		wantParams map[string]string // nil: InitiateAuth must not be called
		want       *Tokens
		wantErr    error
		wantChall  *ChallengeError
	}{
		{
			name: "tokens", email: "uploader@example.com", pw: "pw",
			out:        authenticated("id", "access", "refresh"),
			wantParams: map[string]string{"USERNAME": "uploader@example.com", "PASSWORD": "pw"},
			want:       &Tokens{IDToken: "id", AccessToken: "access", RefreshToken: "refresh", ExpiresIn: 3600, TokenType: "Bearer"},
		},
		{
			name: "client secret adds SECRET_HASH of email+client id", secret: testSecret,
			email: "uploader@example.com", pw: "pw",
			out:        authenticated("id", "access", "refresh"),
			wantParams: map[string]string{"USERNAME": "uploader@example.com", "PASSWORD": "pw", "SECRET_HASH": hashForEmail},
			want:       &Tokens{IDToken: "id", AccessToken: "access", RefreshToken: "refresh", ExpiresIn: 3600, TokenType: "Bearer"},
		},
		{
			name: "cognito-local: no ExpiresIn, no TokenType", email: "a@example.com", pw: "pw",
			out: &cip.InitiateAuthOutput{AuthenticationResult: &types.AuthenticationResultType{
				IdToken: aws.String("id"), AccessToken: aws.String("access"), RefreshToken: aws.String("refresh"),
			}},
			wantParams: map[string]string{"USERNAME": "a@example.com", "PASSWORD": "pw"},
			want:       &Tokens{IDToken: "id", AccessToken: "access", RefreshToken: "refresh"},
		},
		{
			name: "new password required", email: "newpw@example.com", pw: "temp",
			out: &cip.InitiateAuthOutput{
				ChallengeName:       types.ChallengeNameTypeNewPasswordRequired,
				Session:             aws.String("session-1"),
				ChallengeParameters: map[string]string{"USER_ID_FOR_SRP": "uuid-1"},
			},
			wantParams: map[string]string{"USERNAME": "newpw@example.com", "PASSWORD": "temp"},
			wantErr:    ErrChallenge,
			wantChall: &ChallengeError{Name: "NEW_PASSWORD_REQUIRED", Session: "session-1",
				Parameters: map[string]string{"USER_ID_FOR_SRP": "uuid-1"}},
		},
		{
			name: "MFA challenge", email: "a@example.com", pw: "pw",
			out:        &cip.InitiateAuthOutput{ChallengeName: types.ChallengeNameTypeSoftwareTokenMfa, Session: aws.String("s")},
			wantParams: map[string]string{"USERNAME": "a@example.com", "PASSWORD": "pw"},
			wantErr:    ErrChallenge,
			wantChall:  &ChallengeError{Name: "SOFTWARE_TOKEN_MFA", Session: "s"},
		},
		{
			name: "wrong password", email: "a@example.com", pw: "bad",
			err:        sdkError(400, &types.NotAuthorizedException{Message: aws.String("Incorrect username or password.")}),
			wantParams: map[string]string{"USERNAME": "a@example.com", "PASSWORD": "bad"},
			wantErr:    ErrInvalidCredentials,
		},
		{
			name: "neither tokens nor challenge", email: "a@example.com", pw: "pw",
			out:        &cip.InitiateAuthOutput{},
			wantParams: map[string]string{"USERNAME": "a@example.com", "PASSWORD": "pw"},
			wantErr:    ErrUnavailable,
		},
		{
			name: "tokens without an access token", email: "a@example.com", pw: "pw",
			out:        &cip.InitiateAuthOutput{AuthenticationResult: &types.AuthenticationResultType{IdToken: aws.String("id")}},
			wantParams: map[string]string{"USERNAME": "a@example.com", "PASSWORD": "pw"},
			wantErr:    ErrUnavailable,
		},
		{name: "empty email is not sent", email: "", pw: "pw", wantErr: ErrInvalidCredentials},
		{name: "empty password is not sent", email: "a@example.com", pw: "", wantErr: ErrInvalidCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			api := &fakeAPI{out: tt.out, err: tt.err}
			got, err := New(api, testClientID, tt.secret).Login(context.Background(), tt.email, tt.pw)

			checkCall(t, api, types.AuthFlowTypeUserPasswordAuth, tt.wantParams)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Login(%q) error = %v, want errors.Is %v", tt.email, err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Login(%q) = %+v, want %+v", tt.email, got, tt.want)
			}
			if tt.wantChall != nil {
				var ce *ChallengeError
				if !errors.As(err, &ce) {
					t.Fatalf("Login(%q) error %v (%T) is not a *ChallengeError", tt.email, err, err)
				}
				if !reflect.DeepEqual(ce, tt.wantChall) {
					t.Errorf("challenge = %+v, want %+v", ce, tt.wantChall)
				}
				if strings.Contains(err.Error(), ce.Session) {
					t.Errorf("error text %q contains the session", err)
				}
			}
			if err != nil && strings.Contains(err.Error(), tt.pw) && tt.pw != "" {
				t.Errorf("error text %q contains the password", err)
			}
		})
	}
}

func TestRefresh(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		secret     string
		token      string
		username   string
		out        *cip.InitiateAuthOutput
		err        error
		wantParams map[string]string // nil: InitiateAuth must not be called
		want       *Tokens
		wantErr    error // errNone: an error that is none of the sentinels
	}{
		{
			name: "no rotation: the old refresh token is returned", token: "refresh-1",
			out: &cip.InitiateAuthOutput{AuthenticationResult: &types.AuthenticationResultType{
				IdToken: aws.String("id-2"), AccessToken: aws.String("access-2"),
			}},
			wantParams: map[string]string{"REFRESH_TOKEN": "refresh-1"},
			want:       &Tokens{IDToken: "id-2", AccessToken: "access-2", RefreshToken: "refresh-1"},
		},
		{
			name: "rotation: the new refresh token is returned", token: "refresh-1",
			out:        authenticated("id-2", "access-2", "refresh-2"),
			wantParams: map[string]string{"REFRESH_TOKEN": "refresh-1"},
			want:       &Tokens{IDToken: "id-2", AccessToken: "access-2", RefreshToken: "refresh-2", ExpiresIn: 3600, TokenType: "Bearer"},
		},
		{
			name: "username is ignored without a secret", token: "refresh-1", username: testUsername,
			out:        authenticated("id-2", "access-2", ""),
			wantParams: map[string]string{"REFRESH_TOKEN": "refresh-1"},
			want:       &Tokens{IDToken: "id-2", AccessToken: "access-2", RefreshToken: "refresh-1", ExpiresIn: 3600, TokenType: "Bearer"},
		},
		{
			name: "client secret adds SECRET_HASH of username+client id", secret: testSecret,
			token: "refresh-1", username: testUsername,
			out:        authenticated("id-2", "access-2", ""),
			wantParams: map[string]string{"REFRESH_TOKEN": "refresh-1", "SECRET_HASH": hashForSubName},
			want:       &Tokens{IDToken: "id-2", AccessToken: "access-2", RefreshToken: "refresh-1", ExpiresIn: 3600, TokenType: "Bearer"},
		},
		{
			name: "client secret without username is not sent", secret: testSecret, token: "refresh-1",
			wantErr: errNone,
		},
		{
			name: "expired refresh token", token: "refresh-old",
			err:        sdkError(400, &types.NotAuthorizedException{Message: aws.String("Refresh Token has expired")}),
			wantParams: map[string]string{"REFRESH_TOKEN": "refresh-old"},
			wantErr:    ErrInvalidCredentials,
		},
		{name: "empty refresh token is not sent", token: "", wantErr: ErrInvalidCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			api := &fakeAPI{out: tt.out, err: tt.err}
			got, err := New(api, testClientID, tt.secret).Refresh(context.Background(), tt.token, tt.username)

			checkCall(t, api, types.AuthFlowTypeRefreshTokenAuth, tt.wantParams)
			switch {
			case tt.wantErr == errNone:
				if err == nil || sentinel(err) != nil {
					t.Fatalf("Refresh error = %v, want an error that is none of the sentinels", err)
				}
			case !errors.Is(err, tt.wantErr):
				t.Fatalf("Refresh error = %v, want errors.Is %v", err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Refresh = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// checkCall checks that the client made exactly one InitiateAuth call with the flow, its client
// id and params, or none if wantParams is nil.
func checkCall(t *testing.T, api *fakeAPI, flow types.AuthFlowType, wantParams map[string]string) {
	t.Helper()
	if wantParams == nil {
		if len(api.calls) != 0 {
			t.Fatalf("InitiateAuth called %d times, want no call", len(api.calls))
		}
		return
	}
	if len(api.calls) != 1 {
		t.Fatalf("InitiateAuth called %d times, want 1", len(api.calls))
	}
	in := api.calls[0]
	if in.AuthFlow != flow {
		t.Errorf("AuthFlow = %q, want %q", in.AuthFlow, flow)
	}
	if got := aws.ToString(in.ClientId); got != testClientID {
		t.Errorf("ClientId = %q, want %q", got, testClientID)
	}
	if !maps.Equal(in.AuthParameters, wantParams) {
		t.Errorf("AuthParameters = %v, want %v", in.AuthParameters, wantParams)
	}
}

// sdkError wraps apiErr the way the SDK does for an HTTP answer with status.
func sdkError(status int, apiErr error) error {
	return &smithy.OperationError{ServiceID: "Cognito Identity Provider", OperationName: "InitiateAuth",
		Err: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
			Err:      apiErr,
		}}
}

// errNone stands for "an error that matches none of the sentinels" in test tables.
var errNone = errors.New("none of the sentinels")

// sentinel returns the package error err matches, or nil.
func sentinel(err error) error {
	for _, s := range []error{ErrInvalidCredentials, ErrChallenge, ErrUserNotConfirmed,
		ErrPasswordResetRequired, ErrTooManyRequests, ErrUnavailable, context.Canceled} {
		if errors.Is(err, s) {
			return s
		}
	}
	return nil
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// TestTranslate checks the translation of errors as the SDK wraps them.
func TestTranslate(t *testing.T) {
	t.Parallel()
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	tests := []struct {
		name        string
		err         error
		want        error // nil: none of the sentinels
		wantTimeout bool
	}{
		{"NotAuthorizedException", sdkError(400, &types.NotAuthorizedException{}), ErrInvalidCredentials, false},
		{"UserNotFoundException", sdkError(400, &types.UserNotFoundException{}), ErrInvalidCredentials, false},
		{"InvalidPasswordException (cognito-local)", sdkError(400, &smithy.GenericAPIError{Code: "InvalidPasswordException"}), ErrInvalidCredentials, false},
		{"UserNotConfirmedException", sdkError(400, &types.UserNotConfirmedException{}), ErrUserNotConfirmed, false},
		{"PasswordResetRequiredException", sdkError(400, &types.PasswordResetRequiredException{}), ErrPasswordResetRequired, false},
		{"TooManyRequestsException", sdkError(400, &types.TooManyRequestsException{}), ErrTooManyRequests, false},
		{"LimitExceededException", sdkError(400, &smithy.GenericAPIError{Code: "LimitExceededException"}), ErrTooManyRequests, false},
		{"TooManyFailedAttemptsException", sdkError(400, &smithy.GenericAPIError{Code: "TooManyFailedAttemptsException"}), ErrTooManyRequests, false},
		{"HTTP 429", sdkError(429, &smithy.GenericAPIError{Code: "Throttling"}), ErrTooManyRequests, false},
		{"InternalErrorException", sdkError(500, &types.InternalErrorException{}), ErrUnavailable, false},
		{"HTTP 503", sdkError(503, &smithy.GenericAPIError{Code: "ServiceUnavailable"}), ErrUnavailable, false},
		{"connection refused", &smithy.OperationError{Err: &smithyhttp.RequestSendError{Err: refused}}, ErrUnavailable, false},
		{"network timeout", &smithy.OperationError{Err: &smithyhttp.RequestSendError{Err: timeoutError{}}}, ErrUnavailable, true},
		{"deadline exceeded", &smithy.OperationError{Err: &smithy.CanceledError{Err: context.DeadlineExceeded}}, ErrUnavailable, true},
		{"caller cancelled", &smithy.OperationError{Err: &smithy.CanceledError{Err: context.Canceled}}, context.Canceled, false},
		{"ResourceNotFoundException (unknown client id)", sdkError(400, &types.ResourceNotFoundException{}), nil, false},
		{"InvalidParameterException (flow not enabled)", sdkError(400, &types.InvalidParameterException{}), nil, false},
		{"UserLambdaValidationException", sdkError(400, &types.UserLambdaValidationException{}), nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := translate("login", tt.err)
			if s := sentinel(got); s != tt.want {
				t.Errorf("translate(%v) = %v, matches %v, want %v", tt.err, got, s, tt.want)
			}
			if timeout := errors.Is(got, context.DeadlineExceeded); timeout != tt.wantTimeout {
				t.Errorf("translate(%v) = %v: errors.Is DeadlineExceeded = %t, want %t", tt.err, got, timeout, tt.wantTimeout)
			}
			if got == tt.err || errors.Is(got, tt.err) {
				t.Errorf("translate(%v) wraps the SDK error; it must not expose it", tt.err)
			}
		})
	}
}

func TestInvalidCredentialsDoNotEnumerateUsers(t *testing.T) {
	t.Parallel()
	var texts []string
	for _, e := range []error{&types.NotAuthorizedException{Message: aws.String("Incorrect username or password.")},
		&types.UserNotFoundException{Message: aws.String("User does not exist.")}} {
		_, err := New(&fakeAPI{err: sdkError(400, e)}, testClientID, "").Login(context.Background(), "a@example.com", "pw")
		texts = append(texts, err.Error())
	}
	if texts[0] != texts[1] {
		t.Errorf("wrong password and unknown user give different errors: %q, %q", texts[0], texts[1])
	}
}

// TestRealSDK runs the translation on errors as the real SDK client builds them from an HTTP
// answer (JSON __type), through a local HTTP server.
func TestRealSDK(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		body   string
		want   error // nil: tokens; errNone: an error that is none of the sentinels
	}{
		{"tokens", 200, `{"AuthenticationResult":{"IdToken":"id","AccessToken":"access","RefreshToken":"refresh","ExpiresIn":3600,"TokenType":"Bearer"}}`, nil},
		{"challenge", 200, `{"ChallengeName":"NEW_PASSWORD_REQUIRED","Session":"s","ChallengeParameters":{}}`, ErrChallenge},
		{"NotAuthorizedException", 400, `{"__type":"NotAuthorizedException","message":"Incorrect username or password."}`, ErrInvalidCredentials},
		{"UserNotFoundException", 400, `{"__type":"UserNotFoundException","message":"User does not exist."}`, ErrInvalidCredentials},
		{"InvalidPasswordException", 400, `{"__type":"InvalidPasswordException","message":"Invalid password"}`, ErrInvalidCredentials},
		{"UserNotConfirmedException", 400, `{"__type":"UserNotConfirmedException","message":"User is not confirmed."}`, ErrUserNotConfirmed},
		{"PasswordResetRequiredException", 400, `{"__type":"PasswordResetRequiredException","message":"Password reset required"}`, ErrPasswordResetRequired},
		{"TooManyRequestsException", 400, `{"__type":"TooManyRequestsException","message":"Rate exceeded"}`, ErrTooManyRequests},
		{"LimitExceededException", 400, `{"__type":"LimitExceededException","message":"Limit exceeded"}`, ErrTooManyRequests},
		{"ResourceNotFoundException", 400, `{"__type":"ResourceNotFoundException","message":"App Client x not found"}`, errNone},
		{"InternalErrorException", 500, `{"__type":"InternalErrorException","message":"boom"}`, ErrUnavailable},
		{"cognito-local unsupported", 500, `{"__type":"CognitoLocal#Unsupported","message":"unsupported"}`, ErrUnavailable},
		{"HTML from a proxy", 502, `<html>bad gateway</html>`, ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if got := r.Header.Get("X-Amz-Target"); got != "AWSCognitoIdentityProviderService.InitiateAuth" {
					t.Errorf("X-Amz-Target = %q", got)
				}
				w.Header().Set("Content-Type", "application/x-amz-json-1.1")
				w.WriteHeader(tt.status)
				fmt.Fprint(w, tt.body)
			}))
			defer srv.Close()

			_, err := New(sdkClient(srv.URL), testClientID, "").Login(context.Background(), "a@example.com", "pw")
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Login error = %v, want tokens", err)
				}
				return
			}
			if tt.want == errNone {
				if err == nil || sentinel(err) != nil {
					t.Errorf("Login error = %v, want an error that is none of the sentinels", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("Login error = %v, want errors.Is %v", err, tt.want)
			}
		})
	}

	t.Run("unreachable", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		_, err = New(sdkClient("http://"+addr), testClientID, "").Login(context.Background(), "a@example.com", "pw")
		if !errors.Is(err, ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Login error = %v, want ErrUnavailable without DeadlineExceeded", err)
		}
	})

	t.Run("timeout", func(t *testing.T) {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		defer srv.Close()
		defer close(release)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := New(sdkClient(srv.URL), testClientID, "").Login(ctx, "a@example.com", "pw")
		if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Login error = %v, want ErrUnavailable and DeadlineExceeded", err)
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := New(sdkClient("http://127.0.0.1:1"), testClientID, "").Login(ctx, "a@example.com", "pw")
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnavailable) {
			t.Errorf("Login error = %v, want context.Canceled only", err)
		}
	})
}

// sdkClient is a real SDK client for endpoint that does not retry.
func sdkClient(endpoint string) *cip.Client {
	return cip.New(cip.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(endpoint),
		Credentials:      credentials.NewStaticCredentialsProvider("test", "test", ""),
		RetryMaxAttempts: 1,
	})
}

func TestRevoke(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		secret     string
		token      string
		apiErr     error
		want       error // a sentinel, or nil
		wantErr    bool
		wantCalls  int
		wantSecret string
	}{
		{name: "revoked", token: "refresh-1", wantCalls: 1},
		{name: "with the app client's secret", secret: testSecret, token: "refresh-1", wantCalls: 1, wantSecret: testSecret},
		{name: "unknown token", token: "refresh-1", apiErr: sdkError(400, &types.NotAuthorizedException{}), want: ErrInvalidCredentials, wantErr: true, wantCalls: 1},
		{name: "revocation not enabled for the app client", token: "refresh-1", apiErr: sdkError(400, &types.UnsupportedOperationException{}), wantErr: true, wantCalls: 1},
		{name: "no token", want: ErrInvalidCredentials, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			api := &fakeAPI{err: tt.apiErr}
			err := New(api, testClientID, tt.secret).Revoke(context.Background(), tt.token)
			if (err != nil) != tt.wantErr || sentinel(err) != tt.want {
				t.Fatalf("Revoke = %v, want error %v (sentinel %v)", err, tt.wantErr, tt.want)
			}
			if len(api.revokes) != tt.wantCalls {
				t.Fatalf("%d RevokeToken calls, want %d", len(api.revokes), tt.wantCalls)
			}
			if tt.wantCalls == 0 {
				return
			}
			in := api.revokes[0]
			if aws.ToString(in.ClientId) != testClientID || aws.ToString(in.Token) != tt.token || aws.ToString(in.ClientSecret) != tt.wantSecret {
				t.Errorf("RevokeToken input: client %q token %q secret %q", aws.ToString(in.ClientId), aws.ToString(in.Token), aws.ToString(in.ClientSecret))
			}
		})
	}
}
