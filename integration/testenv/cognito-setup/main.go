// Command cognito-setup prepares the cognito-local emulator (a local Amazon Cognito user pool API)
// that integration/testenv/cognito-up.sh started, and checks that the tokens it issues look the
// way the gateway expects:
//
//   - a user pool whose usernames are email addresses (UsernameAttributes: email);
//   - an app client without a secret, with ALLOW_USER_PASSWORD_AUTH and ALLOW_REFRESH_TOKEN_AUTH;
//   - the groups admin, uploader and viewer;
//   - the users admin@, uploader@, viewer@ (one group each) and nogroup@example.com (no group),
//     all with a permanent password, and newpw@example.com with a temporary password only
//     (FORCE_CHANGE_PASSWORD: logging in yields a NEW_PASSWORD_REQUIRED challenge).
//
// It then logs in as the uploader (USER_PASSWORD_AUTH), has the gateway's own verifier
// (internal/jwtauth: RS256 signature against the pool's JWKS, iss, exp, token_use, aud or
// client_id) accept the ID and access token, prints their claims on stderr (never the tokens
// themselves), and checks aud, client_id, cognito:groups and email. Further probes report what the emulator does for refresh, the other users, wrong
// passwords, unknown users, app clients with a secret and OIDC discovery. Each finding is one stderr line
// starting with "ok", "FAIL" or "note"; the program exits 1 if any check failed.
//
// It expects an empty emulator (cognito-up.sh always starts from fresh data). On success it
// prints NAME=value lines on stdout for the env file:
//
//	UGW_COGNITO_POOL_ID, UGW_COGNITO_CLIENT_ID,
//	UGW_COGNITO_{ADMIN,UPLOADER,VIEWER,NOGROUP,NEWPW}_{EMAIL,PASSWORD}
//
// Usage:
//
//	go run ./integration/testenv/cognito-setup -endpoint http://127.0.0.1:21229
package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	"github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider/types"
	"github.com/aws/smithy-go"

	"github.com/caddy-upload-gateway/upload-gateway/internal/jwtauth"
)

// testUser is one of the users the tests log in with. The passwords satisfy Cognito's default
// password policy (8+ characters, upper and lower case, digit, symbol).
type testUser struct {
	env       string // UGW_COGNITO_<env>_EMAIL / _PASSWORD
	email     string
	password  string
	group     string // "" = none
	temporary bool   // created with a temporary password only (FORCE_CHANGE_PASSWORD)
}

var users = []testUser{
	{env: "ADMIN", email: "admin@example.com", password: "Admin-Passw0rd!", group: "admin"},
	{env: "UPLOADER", email: "uploader@example.com", password: "Uploader-Passw0rd!", group: "uploader"},
	{env: "VIEWER", email: "viewer@example.com", password: "Viewer-Passw0rd!", group: "viewer"},
	{env: "NOGROUP", email: "nogroup@example.com", password: "Nogroup-Passw0rd!"},
	{env: "NEWPW", email: "newpw@example.com", password: "Temporary-Passw0rd!", temporary: true},
}

var groups = []string{"admin", "uploader", "viewer"}

func main() {
	endpoint := flag.String("endpoint", os.Getenv("UGW_COGNITO_ENDPOINT"), "cognito-local base URL (default $UGW_COGNITO_ENDPOINT)")
	region := flag.String("region", "us-east-1", "region for the SDK client (the emulator ignores it)")
	timeout := flag.Duration("timeout", time.Minute, "overall time limit")
	flag.Parse()
	if *endpoint == "" {
		fatalf("-endpoint (or UGW_COGNITO_ENDPOINT) is required")
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	s := &setup{
		endpoint: strings.TrimRight(*endpoint, "/"),
		api: cip.New(cip.Options{
			Region:       *region,
			BaseEndpoint: endpoint,
			// The emulator accepts any credentials; these never leave 127.0.0.1.
			Credentials: credentials.NewStaticCredentialsProvider("local", "local", ""),
		}),
	}
	if err := s.create(ctx); err != nil {
		fatalf("%v", err)
	}
	s.verify(ctx)
	if s.failed > 0 {
		fatalf("%d check(s) failed (see FAIL above)", s.failed)
	}
	fmt.Printf("UGW_COGNITO_POOL_ID=%s\n", s.poolID)
	fmt.Printf("UGW_COGNITO_CLIENT_ID=%s\n", s.clientID)
	for _, u := range users {
		fmt.Printf("UGW_COGNITO_%s_EMAIL=%s\n", u.env, u.email)
		fmt.Printf("UGW_COGNITO_%s_PASSWORD=%s\n", u.env, u.password)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "cognito-setup: "+format+"\n", args...)
}

func fatalf(format string, args ...any) {
	logf("ERROR: "+format, args...)
	os.Exit(1)
}

type setup struct {
	endpoint string
	api      *cip.Client
	poolID   string
	clientID string
	failed   int
}

func (s *setup) ok(format string, args ...any)   { logf("ok    "+format, args...) }
func (s *setup) note(format string, args ...any) { logf("note  "+format, args...) }
func (s *setup) fail(format string, args ...any) {
	s.failed++
	logf("FAIL  "+format, args...)
}

// check records a check's outcome.
func (s *setup) check(cond bool, format string, args ...any) {
	if cond {
		s.ok(format, args...)
	} else {
		s.fail(format, args...)
	}
}

// create makes the pool, client, groups and users. Any error is fatal.
func (s *setup) create(ctx context.Context) error {
	pool, err := s.api.CreateUserPool(ctx, &cip.CreateUserPoolInput{
		PoolName:               aws.String("upload-gateway-test"),
		UsernameAttributes:     []types.UsernameAttributeType{types.UsernameAttributeTypeEmail},
		AutoVerifiedAttributes: []types.VerifiedAttributeType{types.VerifiedAttributeTypeEmail},
	})
	if err != nil {
		return fmt.Errorf("CreateUserPool: %w", err)
	}
	s.poolID = aws.ToString(pool.UserPool.Id)
	logf("created user pool %s", s.poolID)

	client, err := s.api.CreateUserPoolClient(ctx, &cip.CreateUserPoolClientInput{
		UserPoolId: &s.poolID,
		ClientName: aws.String("upload-gateway"),
		ExplicitAuthFlows: []types.ExplicitAuthFlowsType{
			types.ExplicitAuthFlowsTypeAllowUserPasswordAuth,
			types.ExplicitAuthFlowsTypeAllowRefreshTokenAuth,
		},
	})
	if err != nil {
		return fmt.Errorf("CreateUserPoolClient: %w", err)
	}
	s.clientID = aws.ToString(client.UserPoolClient.ClientId)
	logf("created app client %s (no secret; USER_PASSWORD_AUTH, REFRESH_TOKEN_AUTH)", s.clientID)

	for _, g := range groups {
		if _, err := s.api.CreateGroup(ctx, &cip.CreateGroupInput{UserPoolId: &s.poolID, GroupName: aws.String(g)}); err != nil {
			return fmt.Errorf("CreateGroup %s: %w", g, err)
		}
	}
	logf("created groups %s", strings.Join(groups, ", "))

	for _, u := range users {
		in := &cip.AdminCreateUserInput{
			UserPoolId:    &s.poolID,
			Username:      aws.String(u.email),
			MessageAction: types.MessageActionTypeSuppress,
			UserAttributes: []types.AttributeType{
				{Name: aws.String("email"), Value: aws.String(u.email)},
				{Name: aws.String("email_verified"), Value: aws.String("true")},
			},
		}
		if u.temporary {
			in.TemporaryPassword = aws.String(u.password)
		}
		if _, err := s.api.AdminCreateUser(ctx, in); err != nil {
			return fmt.Errorf("AdminCreateUser %s: %w", u.email, err)
		}
		if !u.temporary {
			if _, err := s.api.AdminSetUserPassword(ctx, &cip.AdminSetUserPasswordInput{
				UserPoolId: &s.poolID, Username: aws.String(u.email),
				Password: aws.String(u.password), Permanent: true,
			}); err != nil {
				return fmt.Errorf("AdminSetUserPassword %s: %w", u.email, err)
			}
		}
		if u.group != "" {
			if _, err := s.api.AdminAddUserToGroup(ctx, &cip.AdminAddUserToGroupInput{
				UserPoolId: &s.poolID, Username: aws.String(u.email), GroupName: aws.String(u.group),
			}); err != nil {
				return fmt.Errorf("AdminAddUserToGroup %s %s: %w", u.email, u.group, err)
			}
		}
		state := "permanent password, group " + u.group
		switch {
		case u.temporary:
			state = "temporary password only (FORCE_CHANGE_PASSWORD)"
		case u.group == "":
			state = "permanent password, no group"
		}
		logf("created user %s: %s", u.email, state)
	}
	return nil
}

func (s *setup) user(env string) testUser {
	for _, u := range users {
		if u.env == env {
			return u
		}
	}
	panic("no test user " + env)
}

func (s *setup) login(ctx context.Context, clientID, email, password string, extra map[string]string) (*cip.InitiateAuthOutput, error) {
	params := map[string]string{"USERNAME": email, "PASSWORD": password}
	for k, v := range extra {
		params[k] = v
	}
	return s.api.InitiateAuth(ctx, &cip.InitiateAuthInput{
		AuthFlow:       types.AuthFlowTypeUserPasswordAuth,
		ClientId:       aws.String(clientID),
		AuthParameters: params,
	})
}

// verify runs the checks and probes; failures are counted in s.failed.
func (s *setup) verify(ctx context.Context) {
	issuer := s.endpoint + "/" + s.poolID
	jwksURL := issuer + "/.well-known/jwks.json"
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := getJSON(ctx, jwksURL, &set); err != nil {
		s.fail("JWKS %s: %v", jwksURL, err)
	} else {
		kids := make([]string, 0, len(set.Keys))
		for _, k := range set.Keys {
			kids = append(kids, k.Kid)
		}
		s.ok("JWKS %s: %d key(s), kid %s", jwksURL, len(kids), strings.Join(kids, ", "))
	}
	s.probeDiscovery(ctx, issuer, jwksURL)
	v, err := jwtauth.New(jwtauth.Config{Issuer: issuer, JWKSURL: jwksURL, Audiences: []string{s.clientID}})
	if err != nil {
		s.fail("the gateway's verifier: %v", err)
		return
	}

	// ---- the uploader: the claims the gateway relies on -------------------------------------
	up := s.user("UPLOADER")
	out, err := s.login(ctx, s.clientID, up.email, up.password, nil)
	if err != nil || out.AuthenticationResult == nil {
		s.fail("USER_PASSWORD_AUTH as %s: %v (challenge %q)", up.email, err, challengeName(out))
		return
	}
	ar := out.AuthenticationResult
	s.ok("USER_PASSWORD_AUTH as %s: IdToken, AccessToken, RefreshToken present: %t, %t, %t",
		up.email, ar.IdToken != nil, ar.AccessToken != nil, ar.RefreshToken != nil)
	if ar.ExpiresIn == 0 || ar.TokenType == nil {
		s.note("AuthenticationResult.ExpiresIn = %d, TokenType = %q (real Cognito: 3600, \"Bearer\"; read exp from the token instead)",
			ar.ExpiresIn, aws.ToString(ar.TokenType))
	}

	id := s.inspect(ctx, v, "id token", aws.ToString(ar.IdToken), "id")
	if id != nil {
		s.check(id.Subject != "", "id token: sub = %q", id.Subject)
		s.check(id.All["aud"] == s.clientID, "id token: aud = %v (want the client id %s)", id.All["aud"], s.clientID)
		s.check(id.All["token_use"] == "id", "id token: token_use = %v", id.All["token_use"])
		s.check(id.All["email"] == up.email, "id token: email = %v", id.All["email"])
		_, hasClientID := id.All["client_id"]
		s.note("id token: client_id claim present: %t (real Cognito: no; the client id is in aud)", hasClientID)
		s.checkGroups("id token", id, []string{"uploader"})
	}
	acc := s.inspect(ctx, v, "access token", aws.ToString(ar.AccessToken), "access")
	if acc != nil {
		s.check(acc.Subject != "", "access token: sub = %q", acc.Subject)
		s.check(acc.All["token_use"] == "access", "access token: token_use = %v", acc.All["token_use"])
		s.check(acc.All["client_id"] == s.clientID, "access token: client_id = %v (want %s)", acc.All["client_id"], s.clientID)
		aud, hasAud := acc.All["aud"]
		s.note("access token: aud claim present: %t %v (real Cognito: no aud in access tokens; check client_id)", hasAud, aud)
		_, hasEmail := acc.All["email"]
		s.note("access token: email claim present: %t (real Cognito: no)", hasEmail)
		s.note("access token: username = %v, scope = %v", acc.All["username"], acc.All["scope"])
		s.checkGroups("access token", acc, []string{"uploader"})
	}
	if id != nil {
		s.note("id token: cognito:username = %v (the pool's internal username: for email pools it is the sub, not the email)",
			id.All["cognito:username"])
	}

	// ---- refresh -----------------------------------------------------------------------------
	if ar.RefreshToken != nil {
		rout, err := s.api.InitiateAuth(ctx, &cip.InitiateAuthInput{
			AuthFlow:       types.AuthFlowTypeRefreshTokenAuth,
			ClientId:       &s.clientID,
			AuthParameters: map[string]string{"REFRESH_TOKEN": *ar.RefreshToken},
		})
		switch {
		case err != nil:
			s.fail("REFRESH_TOKEN_AUTH: %v", err)
		case rout.AuthenticationResult == nil || rout.AuthenticationResult.IdToken == nil:
			s.fail("REFRESH_TOKEN_AUTH: no tokens in the answer (challenge %q)", challengeName(rout))
		default:
			r := rout.AuthenticationResult
			s.ok("REFRESH_TOKEN_AUTH: new IdToken, AccessToken: %t, %t; new RefreshToken: %t (real Cognito: none unless rotation is on)",
				r.IdToken != nil, r.AccessToken != nil, r.RefreshToken != nil)
			if rid := s.inspect(ctx, v, "refreshed id token", aws.ToString(r.IdToken), "id"); rid != nil {
				s.checkGroups("refreshed id token", rid, []string{"uploader"})
			}
		}
		_, err = s.api.InitiateAuth(ctx, &cip.InitiateAuthInput{
			AuthFlow:       types.AuthFlowTypeRefreshTokenAuth,
			ClientId:       &s.clientID,
			AuthParameters: map[string]string{"REFRESH_TOKEN": "not-a-refresh-token"},
		})
		s.check(err != nil, "REFRESH_TOKEN_AUTH with an unknown refresh token is refused: %s", errorCode(err))
	}

	// ---- the other users ---------------------------------------------------------------------
	for _, tc := range []struct {
		env  string
		want []string
	}{{"ADMIN", []string{"admin"}}, {"VIEWER", []string{"viewer"}}, {"NOGROUP", nil}} {
		u := s.user(tc.env)
		out, err := s.login(ctx, s.clientID, u.email, u.password, nil)
		if err != nil || out.AuthenticationResult == nil {
			s.fail("USER_PASSWORD_AUTH as %s: %v (challenge %q)", u.email, err, challengeName(out))
			continue
		}
		if t := s.inspect(ctx, v, u.email+" id token", aws.ToString(out.AuthenticationResult.IdToken), "id"); t != nil {
			s.checkGroups(u.email+" id token", t, tc.want)
		}
	}

	// ---- NEW_PASSWORD_REQUIRED ---------------------------------------------------------------
	np := s.user("NEWPW")
	out, err = s.login(ctx, s.clientID, np.email, np.password, nil)
	s.check(err == nil && out.ChallengeName == types.ChallengeNameTypeNewPasswordRequired && aws.ToString(out.Session) != "",
		"USER_PASSWORD_AUTH as %s: challenge %q with a session: %t (err %v)", np.email, challengeName(out),
		out != nil && out.Session != nil, err)
	out, err = s.login(ctx, s.clientID, np.email, "Wrong-Passw0rd!", nil)
	if err == nil && out.ChallengeName != "" {
		s.note("%s with a WRONG password also gets %q (cognito-local does not check a temporary password before the challenge; real Cognito answers NotAuthorizedException)",
			np.email, challengeName(out))
	} else {
		s.note("%s with a wrong password: %s", np.email, errorCode(err))
	}

	// ---- failures ----------------------------------------------------------------------------
	_, err = s.login(ctx, s.clientID, up.email, "Wrong-Passw0rd!", nil)
	s.check(err != nil, "wrong password is refused: %s (real Cognito: NotAuthorizedException)", errorCode(err))
	_, err = s.login(ctx, s.clientID, "nobody@example.com", "Whatever-Passw0rd!", nil)
	s.check(err != nil, "unknown user is refused: %s (real Cognito: UserNotFoundException, or NotAuthorizedException with PreventUserExistenceErrors)", errorCode(err))
	_, err = s.login(ctx, "no-such-client", up.email, up.password, nil)
	s.check(err != nil, "unknown client id is refused: %s", errorCode(err))

	// ---- SECRET_HASH -------------------------------------------------------------------------
	s.probeSecretHash(ctx, up)
}

// probeSecretHash creates a second app client with a secret, tries logins with a right, a wrong
// and no SECRET_HASH, and deletes the client again.
func (s *setup) probeSecretHash(ctx context.Context, u testUser) {
	c, err := s.api.CreateUserPoolClient(ctx, &cip.CreateUserPoolClientInput{
		UserPoolId:     &s.poolID,
		ClientName:     aws.String("secret-hash-probe"),
		GenerateSecret: true,
		ExplicitAuthFlows: []types.ExplicitAuthFlowsType{
			types.ExplicitAuthFlowsTypeAllowUserPasswordAuth,
			types.ExplicitAuthFlowsTypeAllowRefreshTokenAuth,
		},
	})
	if err != nil {
		s.note("secret hash: CreateUserPoolClient with GenerateSecret: %v", err)
		return
	}
	cid, secret := aws.ToString(c.UserPoolClient.ClientId), aws.ToString(c.UserPoolClient.ClientSecret)
	defer func() {
		_, _ = s.api.DeleteUserPoolClient(ctx, &cip.DeleteUserPoolClientInput{UserPoolId: &s.poolID, ClientId: &cid})
	}()
	s.note("secret hash: GenerateSecret returns a client secret: %t", secret != "")
	result := func(extra map[string]string) string {
		out, err := s.login(ctx, cid, u.email, u.password, extra)
		if err != nil {
			return "refused (" + errorCode(err) + ")"
		}
		if out.AuthenticationResult != nil {
			return "accepted"
		}
		return "challenge " + challengeName(out)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(u.email + cid))
	right := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	s.note("secret hash: login with the right SECRET_HASH: %s; with a wrong one: %s; without: %s (real Cognito refuses the last two)",
		result(map[string]string{"SECRET_HASH": right}),
		result(map[string]string{"SECRET_HASH": "d3Jvbmc="}),
		result(nil))
}

func challengeName(out *cip.InitiateAuthOutput) string {
	if out == nil {
		return ""
	}
	return string(out.ChallengeName)
}

func errorCode(err error) string {
	if err == nil {
		return "no error"
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode() + ": " + ae.ErrorMessage()
	}
	return err.Error()
}

// ---- tokens ----------------------------------------------------------------------------------

// inspect has the gateway's own verifier check token as a token of the given use, prints its
// claims on stderr and returns them (nil, and a failure, if the verifier refuses it).
func (s *setup) inspect(ctx context.Context, v *jwtauth.Verifier, name, token, use string) *jwtauth.Claims {
	c, err := v.VerifyTokenUse(ctx, token, use)
	if err != nil {
		s.fail("%s: refused by the gateway's verifier: %v", name, err)
		return nil
	}
	out, _ := json.MarshalIndent(c.All, "    ", "  ")
	logf("%s claims:\n    %s", name, out)
	s.ok("%s: accepted by the gateway's verifier (RS256 signature, iss, exp, token_use %s, audience)", name, use)
	return c
}

// checkGroups checks cognito:groups: a JSON array equal to want, or absent if want is empty.
func (s *setup) checkGroups(name string, c *jwtauth.Claims, want []string) {
	raw, present := c.All["cognito:groups"]
	if len(want) == 0 {
		s.check(!present, "%s: cognito:groups absent for a user without groups (present: %t, %v)", name, present, raw)
		return
	}
	_, isArray := raw.([]any)
	s.check(present && isArray && slices.Equal(c.Groups, want),
		"%s: cognito:groups present: %t, JSON array: %t, value %v (want %v)", name, present, isArray, raw, want)
}

// probeDiscovery reports whether the OIDC discovery document names the same issuer and JWKS
// URL as the tokens (a verifier configured by discovery would otherwise look elsewhere).
func (s *setup) probeDiscovery(ctx context.Context, issuer, jwksURL string) {
	url := issuer + "/.well-known/openid-configuration"
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := getJSON(ctx, url, &doc); err != nil {
		s.note("OIDC discovery %s: %v", url, err)
		return
	}
	if doc.Issuer == issuer && doc.JWKSURI == jwksURL {
		s.ok("OIDC discovery %s: issuer and jwks_uri match", url)
		return
	}
	s.note("OIDC discovery %s names issuer %s and jwks_uri %s, not the tokens' iss %s: configure issuer and JWKS URL explicitly, do not discover them",
		url, doc.Issuer, doc.JWKSURI, issuer)
}

func getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	return json.Unmarshal(body, v)
}
