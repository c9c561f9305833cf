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
// It then logs in as the uploader (USER_PASSWORD_AUTH), prints the header and claims of the ID
// and access token on stderr (never the tokens themselves), verifies their RS256 signature
// against the pool's JWKS, and checks iss, aud, token_use, client_id, cognito:groups, email,
// kid and alg. Further probes report what the emulator does for refresh, the other users, wrong
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
	"crypto"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math/big"
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
	keys, err := fetchJWKS(ctx, jwksURL)
	if err != nil {
		s.fail("JWKS %s: %v", jwksURL, err)
	} else {
		s.ok("JWKS %s: %d key(s), kid %s", jwksURL, len(keys), strings.Join(slices.Sorted(maps.Keys(keys)), ", "))
	}
	s.probeDiscovery(ctx, issuer, jwksURL)

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

	id := s.inspect("id token", aws.ToString(ar.IdToken), keys)
	if id != nil {
		s.checkCommon("id token", id, issuer)
		s.check(id.claims["aud"] == s.clientID, "id token: aud = %v (want the client id %s)", id.claims["aud"], s.clientID)
		s.check(id.claims["token_use"] == "id", "id token: token_use = %v", id.claims["token_use"])
		s.check(id.claims["email"] == up.email, "id token: email = %v", id.claims["email"])
		_, hasClientID := id.claims["client_id"]
		s.note("id token: client_id claim present: %t (real Cognito: no; the client id is in aud)", hasClientID)
		s.checkGroups("id token", id, []string{"uploader"})
	}
	acc := s.inspect("access token", aws.ToString(ar.AccessToken), keys)
	if acc != nil {
		s.checkCommon("access token", acc, issuer)
		s.check(acc.claims["token_use"] == "access", "access token: token_use = %v", acc.claims["token_use"])
		s.check(acc.claims["client_id"] == s.clientID, "access token: client_id = %v (want %s)", acc.claims["client_id"], s.clientID)
		aud, hasAud := acc.claims["aud"]
		s.note("access token: aud claim present: %t %v (real Cognito: no aud in access tokens; check client_id)", hasAud, aud)
		_, hasEmail := acc.claims["email"]
		s.note("access token: email claim present: %t (real Cognito: no)", hasEmail)
		s.note("access token: username = %v, scope = %v", acc.claims["username"], acc.claims["scope"])
		s.checkGroups("access token", acc, []string{"uploader"})
	}
	if id != nil {
		s.note("id token: cognito:username = %v (the pool's internal username: for email pools it is the sub, not the email)",
			id.claims["cognito:username"])
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
			if rid := s.inspect("refreshed id token", aws.ToString(r.IdToken), keys); rid != nil {
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
		if t := decodeQuiet(aws.ToString(out.AuthenticationResult.IdToken)); t != nil {
			s.checkGroups(u.email+" id token", t, tc.want)
		} else {
			s.fail("%s: id token does not decode", u.email)
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

type jwt struct {
	header map[string]any
	claims map[string]any
}

// inspect decodes a token, prints its header and claims on stderr and checks its signature.
func (s *setup) inspect(name, token string, keys map[string]*rsa.PublicKey) *jwt {
	t, err := decode(token)
	if err != nil {
		s.fail("%s: %v", name, err)
		return nil
	}
	h, _ := json.Marshal(t.header)
	c, _ := json.MarshalIndent(t.claims, "    ", "  ")
	logf("%s header: %s", name, h)
	logf("%s claims:\n    %s", name, c)
	s.check(t.header["alg"] == "RS256", "%s: alg = %v", name, t.header["alg"])
	kid, _ := t.header["kid"].(string)
	s.check(kid != "", "%s: kid = %q", name, kid)
	if key := keys[kid]; key == nil {
		s.fail("%s: kid %q is not in the JWKS", name, kid)
	} else if err := verifyRS256(token, key); err != nil {
		s.fail("%s: signature: %v", name, err)
	} else {
		s.ok("%s: RS256 signature verifies with the JWKS key %q", name, kid)
	}
	return t
}

func (s *setup) checkCommon(name string, t *jwt, issuer string) {
	s.check(t.claims["iss"] == issuer, "%s: iss = %v (want %s)", name, t.claims["iss"], issuer)
	exp, _ := t.claims["exp"].(float64)
	iat, _ := t.claims["iat"].(float64)
	now := float64(time.Now().Unix())
	s.check(exp > now, "%s: exp in the future (lifetime %s)", name, time.Duration(exp-iat)*time.Second)
	_, hasSub := t.claims["sub"].(string)
	s.check(hasSub, "%s: sub = %v", name, t.claims["sub"])
}

// checkGroups checks cognito:groups: a JSON array equal to want, or absent if want is empty.
func (s *setup) checkGroups(name string, t *jwt, want []string) {
	raw, present := t.claims["cognito:groups"]
	if len(want) == 0 {
		s.check(!present, "%s: cognito:groups absent for a user without groups (present: %t, %v)", name, present, raw)
		return
	}
	arr, isArray := raw.([]any)
	var got []string
	for _, g := range arr {
		if gs, ok := g.(string); ok {
			got = append(got, gs)
		}
	}
	s.check(present && isArray && slices.Equal(got, want),
		"%s: cognito:groups present: %t, JSON array: %t, value %v (want %v)", name, present, isArray, raw, want)
}

func decodeQuiet(token string) *jwt {
	t, err := decode(token)
	if err != nil {
		return nil
	}
	return t
}

// decode splits a compact JWS and decodes header and payload without verifying anything.
func decode(token string) (*jwt, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("not a compact JWT (%d parts)", len(parts))
	}
	t := &jwt{}
	for i, dst := range []*map[string]any{&t.header, &t.claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			return nil, fmt.Errorf("part %d: %v", i, err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			return nil, fmt.Errorf("part %d: %v", i, err)
		}
	}
	return t, nil
}

func verifyRS256(token string, key *rsa.PublicKey) error {
	i := strings.LastIndexByte(token, '.')
	sig, err := base64.RawURLEncoding.DecodeString(token[i+1:])
	if err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(token[:i]))
	return rsa.VerifyPKCS1v15(key, crypto.SHA256, sum[:], sig)
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

func fetchJWKS(ctx context.Context, url string) (map[string]*rsa.PublicKey, error) {
	var set struct {
		Keys []struct{ Kty, Kid, Alg, Use, N, E string }
	}
	if err := getJSON(ctx, url, &set); err != nil {
		return nil, err
	}
	keys := map[string]*rsa.PublicKey{}
	for _, k := range set.Keys {
		if k.Kty != "RSA" {
			continue
		}
		n, err1 := base64.RawURLEncoding.DecodeString(k.N)
		e, err2 := base64.RawURLEncoding.DecodeString(k.E)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("key %q: %v", k.Kid, err)
		}
		keys[k.Kid] = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	}
	if len(keys) == 0 {
		return nil, errors.New("no RSA keys")
	}
	return keys, nil
}
