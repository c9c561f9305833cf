//go:build integration

package integration_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"golang.org/x/crypto/bcrypt"

	"github.com/caddy-upload-gateway/upload-gateway/internal/localidp"
)

// cognitoEnv returns a variable of the cognito-local test environment.
func cognitoEnv(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv("UGW_COGNITO_" + name)
	if v == "" {
		t.Fatalf("UGW_COGNITO_%s is not set: start cognito-local with integration/testenv/cognito-up.sh (scripts/test does)", name)
	}
	return v
}

// cognitoSite is a gateway in front of cognito-local: login API, token
// checks, and uploads for admins and uploaders under the user's own prefix.
func cognitoSite(prefix string, extra ...string) string {
	return fmt.Sprintf(`upload_auth {
		issuer {env.UGW_COGNITO_ISSUER}
		jwks_url {env.UGW_COGNITO_JWKS_URL}
		client_id {env.UGW_COGNITO_CLIENT_ID}
		cognito_endpoint {env.UGW_COGNITO_ENDPOINT}
		role_arn uploader arn:aws:iam::role/UploadRole
		%s
	}
	%s`, strings.Join(extra, "\n\t\t"), gatewayOpts{prefix: prefix, auth: true, lines: []string{
		"allowed_roles admin uploader",
		"key users/{http.auth.user.id}/{upload.uuid}{upload.ext}",
	}}.block())
}

type loginResult struct {
	status int
	body   struct {
		Success bool `json:"success"`
		Data    struct {
			Token        string `json:"token"`
			AccessToken  string `json:"accessToken"`
			RefreshToken string `json:"refreshToken"`
			ExpiresIn    int    `json:"expiresIn"`
			User         struct {
				ID     string   `json:"id"`
				Email  string   `json:"email"`
				Groups []string `json:"groups"`
				Role   struct {
					Role    string `json:"role"`
					RoleARN string `json:"roleArn"`
				} `json:"role"`
			} `json:"user"`
		} `json:"data"`
		Error struct{ Code, Message string } `json:"error"`
	}
	header http.Header
}

func postJSON(t *testing.T, client *http.Client, url string, body any) loginResult {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := client.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var r loginResult
	r.status, r.header = resp.StatusCode, resp.Header
	if err := json.Unmarshal(raw, &r.body); err != nil {
		t.Fatalf("login response %d is not JSON: %q", resp.StatusCode, raw)
	}
	return r
}

func login(t *testing.T, client *http.Client, base, email, password string) loginResult {
	t.Helper()
	return postJSON(t, client, base+"/auth/login", map[string]string{"email": email, "password": password})
}

// putWithToken uploads a small raw body with a bearer token.
func putWithToken(t *testing.T, client *http.Client, url, token string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, url, strings.NewReader("hello from "+t.Name()))
	req.Header.Set("Content-Type", "text/plain")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// A user signs in with email and password and gets a token; an uploader's
// upload lands under their own prefix with their identity in the metadata,
// while a viewer and a user without a group are refused.
func TestCognitoLoginThenUploadByRole(t *testing.T) {
	prefix := testPrefix(t)
	gw := startGateway(t, cognitoSite(prefix, "login_per_account 4"))

	up := login(t, gw.Client, gw.URL, cognitoEnv(t, "UPLOADER_EMAIL"), cognitoEnv(t, "UPLOADER_PASSWORD"))
	if up.status != http.StatusOK || !up.body.Success || up.body.Data.Token == "" || up.body.Data.RefreshToken == "" {
		t.Fatalf("uploader login: %d %+v", up.status, up.body)
	}
	u := up.body.Data.User
	if u.Email != cognitoEnv(t, "UPLOADER_EMAIL") || u.Role.Role != "uploader" || u.Role.RoleARN != "" /* role_arn is set, expose_role_arn is not */ || u.ID == "" {
		t.Errorf("login user = %+v", u)
	}

	t.Run("uploader may upload under their own prefix", func(t *testing.T) {
		r := decodeResponse(t, putWithToken(t, gw.Client, gw.URL+"/notes.txt", up.body.Data.Token))
		if !r.Success || len(r.Data.Files) != 1 {
			t.Fatalf("upload: %+v", r)
		}
		key := r.Data.Files[0].S3Key
		if !strings.HasPrefix(key, prefix+"users/"+u.ID+"/") {
			t.Errorf("key %s is not under %susers/%s/", key, prefix, u.ID)
		}
		head, err := env.S3().HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &env.Bucket, Key: &key})
		if err != nil {
			t.Fatal(err)
		}
		if head.Metadata["uploaded-by"] != u.ID || head.Metadata["user-role"] != "uploader" {
			t.Errorf("metadata = %v", head.Metadata)
		}
	})

	for _, who := range []string{"VIEWER", "NOGROUP"} {
		t.Run(strings.ToLower(who)+" is refused", func(t *testing.T) {
			l := login(t, gw.Client, gw.URL, cognitoEnv(t, who+"_EMAIL"), cognitoEnv(t, who+"_PASSWORD"))
			if l.status != http.StatusOK {
				t.Fatalf("login: %d %+v", l.status, l.body)
			}
			expectError(t, putWithToken(t, gw.Client, gw.URL+"/x.txt", l.body.Data.Token), http.StatusForbidden, "FORBIDDEN")
		})
	}

	t.Run("no token", func(t *testing.T) {
		resp := putWithToken(t, gw.Client, gw.URL+"/x.txt", "")
		if h := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer") {
			t.Errorf("WWW-Authenticate = %q", h)
		}
		expectError(t, resp, http.StatusUnauthorized, "UNAUTHENTICATED")
	})

	t.Run("CORS preflight is not blocked", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodOptions, gw.URL+"/x.txt", nil)
		req.Header.Set("Origin", "https://app.example.com")
		req.Header.Set("Access-Control-Request-Method", "PUT")
		resp, err := gw.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusUnauthorized {
			t.Errorf("preflight got 401")
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		l := login(t, gw.Client, gw.URL, cognitoEnv(t, "ADMIN_EMAIL"), "not-the-password")
		if l.status != http.StatusUnauthorized || l.body.Error.Code != "INVALID_CREDENTIALS" {
			t.Errorf("got %d %+v", l.status, l.body.Error)
		}
	})

	t.Run("new password challenge", func(t *testing.T) {
		l := login(t, gw.Client, gw.URL, cognitoEnv(t, "NEWPW_EMAIL"), cognitoEnv(t, "NEWPW_PASSWORD"))
		if l.status != http.StatusForbidden || l.body.Error.Code != "NEW_PASSWORD_REQUIRED" {
			t.Errorf("got %d %+v", l.status, l.body.Error)
		}
	})

	t.Run("refresh", func(t *testing.T) {
		r := postJSON(t, gw.Client, gw.URL+"/auth/refresh", map[string]string{"refreshToken": up.body.Data.RefreshToken})
		if r.status != http.StatusOK || r.body.Data.Token == "" || r.body.Data.User.Role.Role != "uploader" {
			t.Fatalf("refresh: %d %+v", r.status, r.body)
		}
		resp := putWithToken(t, gw.Client, gw.URL+"/after-refresh.txt", r.body.Data.Token)
		if resp.StatusCode != http.StatusCreated {
			t.Errorf("upload with refreshed token: %d", resp.StatusCode)
		}
		resp.Body.Close()
	})

	t.Run("logins are rate limited per account", func(t *testing.T) {
		email := cognitoEnv(t, "VIEWER_EMAIL")
		var last loginResult
		for range 6 {
			last = login(t, gw.Client, gw.URL, email, "wrong")
			if last.status == http.StatusTooManyRequests {
				break
			}
		}
		if last.status != http.StatusTooManyRequests || last.header.Get("Retry-After") == "" {
			t.Errorf("after repeated failures: %d %+v", last.status, last.body.Error)
		}
	})
}

// signer mints tokens with cognito-local's own signing key, so that every
// claim check is exercised on the real key path.
type signer struct {
	key    jwk.Key
	public jwk.Key
	claims map[string]any
}

func cognitoSigner(t *testing.T, idToken string) *signer {
	t.Helper()
	raw, err := os.ReadFile(cognitoEnv(t, "SIGNING_KEY"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		JWK json.RawMessage `json:"jwk"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	key, err := jwk.ParseKey(file.JWK)
	if err != nil {
		t.Fatal(err)
	}
	_ = key.Set(jwk.KeyIDKey, "CognitoLocal")
	pub, _ := key.PublicKey()
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(idToken, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]any{}
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return &signer{key: key, public: pub, claims: claims}
}

// mint signs the base claims changed by edit with key (the emulator's key
// when nil).
func (s *signer) mint(t *testing.T, edit func(map[string]any), key jwk.Key) string {
	t.Helper()
	claims := map[string]any{}
	for k, v := range s.claims {
		claims[k] = v
	}
	now := time.Now()
	claims["iat"], claims["exp"] = now.Unix(), now.Add(time.Hour).Unix()
	if edit != nil {
		edit(claims)
	}
	tok := jwt.New()
	for k, v := range claims {
		if err := tok.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if key == nil {
		key = s.key
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.RS256, key))
	if err != nil {
		t.Fatal(err)
	}
	return string(signed)
}

func rawToken(header, claims map[string]any, sig []byte) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// Forged and broken tokens are all refused, and nothing is stored for them.
func TestJWTAttackCorpusIsRejected(t *testing.T) {
	prefix := testPrefix(t)
	gw := startGateway(t, cognitoSite(prefix))
	real := login(t, gw.Client, gw.URL, cognitoEnv(t, "UPLOADER_EMAIL"), cognitoEnv(t, "UPLOADER_PASSWORD"))
	if real.status != http.StatusOK {
		t.Fatalf("login: %d %+v", real.status, real.body)
	}
	s := cognitoSigner(t, real.body.Data.Token)

	// Control: a token minted with the emulator's key and unchanged claims
	// is accepted, so each refusal below is the gateway's doing.
	if resp := putWithToken(t, gw.Client, gw.URL+"/control.txt", s.mint(t, nil, nil)); resp.StatusCode != http.StatusCreated {
		t.Fatalf("control token refused: %d", resp.StatusCode)
	} else {
		resp.Body.Close()
		env.DeletePrefix(context.Background(), prefix)
	}

	otherRSA, _ := rsa.GenerateKey(rand.Reader, 2048)
	sameKid, _ := jwk.FromRaw(otherRSA)
	_ = sameKid.Set(jwk.KeyIDKey, "CognitoLocal")
	unknownKid, _ := jwk.FromRaw(otherRSA)
	_ = unknownKid.Set(jwk.KeyIDKey, "rotated-away")

	var pubRSA rsa.PublicKey
	if err := s.public.Raw(&pubRSA); err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(&pubRSA))})
	hsKey, _ := jwk.FromRaw(pubPEM)

	valid := s.mint(t, nil, nil)
	parts := strings.Split(valid, ".")

	cases := []struct {
		name   string
		token  string
		status int
	}{
		{"alg none", rawToken(map[string]any{"alg": "none", "kid": "CognitoLocal"}, s.claims, nil), 401},
		{"alg none with the real signature", rawToken(map[string]any{"alg": "none", "kid": "CognitoLocal"}, s.claims, nil) + parts[2], 401},
		{"HS256 keyed with the public key", func() string {
			hdr := jws.NewHeaders()
			_ = hdr.Set(jws.KeyIDKey, "CognitoLocal")
			tok := jwt.New()
			for k, v := range s.claims {
				_ = tok.Set(k, v)
			}
			_ = tok.Set("exp", time.Now().Add(time.Hour).Unix())
			b, err := jwt.Sign(tok, jwt.WithKey(jwa.HS256, hsKey, jws.WithProtectedHeaders(hdr)))
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}(), 401},
		{"expired", s.mint(t, func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() }, nil), 401},
		{"not yet valid", s.mint(t, func(c map[string]any) { c["nbf"] = time.Now().Add(time.Hour).Unix() }, nil), 401},
		{"issued in the future", s.mint(t, func(c map[string]any) { c["iat"] = time.Now().Add(time.Hour).Unix() }, nil), 401},
		{"wrong issuer", s.mint(t, func(c map[string]any) { c["iss"] = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_evil" }, nil), 401},
		{"wrong audience", s.mint(t, func(c map[string]any) { c["aud"] = "someone-elses-client" }, nil), 401},
		{"access token where id is required", s.mint(t, func(c map[string]any) {
			c["token_use"] = "access"
			c["client_id"] = c["aud"]
			delete(c, "aud")
		}, nil), 401},
		{"missing token_use", s.mint(t, func(c map[string]any) { delete(c, "token_use") }, nil), 401},
		{"missing exp", s.mint(t, func(c map[string]any) { delete(c, "exp") }, nil), 401},
		{"unknown kid", s.mint(t, nil, unknownKid), 401},
		{"same kid, another key", s.mint(t, nil, sameKid), 401},
		{"tampered payload", func() string {
			c := map[string]any{}
			for k, v := range s.claims {
				c[k] = v
			}
			c["cognito:groups"] = []string{"admin"}
			b, _ := json.Marshal(c)
			return parts[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + parts[2]
		}(), 401},
		// Over the verifier's 8 KiB limit but within the server's header limit.
		{"oversized", s.mint(t, func(c map[string]any) { c["padding"] = strings.Repeat("A", 7000) }, nil), 401},
		{"garbage", "not.a.token", 401},
		{"two segments", parts[0] + "." + parts[1], 401},
		{"missing groups (valid, but no role)", s.mint(t, func(c map[string]any) { delete(c, "cognito:groups") }, nil), 403},
	}
	rejected := 0
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := putWithToken(t, gw.Client, gw.URL+"/attack.txt", tc.token)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("status %d %s, want %d", resp.StatusCode, body, tc.status)
				return
			}
			if tc.status == 401 && !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
				t.Errorf("WWW-Authenticate = %q", resp.Header.Get("WWW-Authenticate"))
			}
			rejected++
		})
	}
	t.Logf("attack corpus: %d of %d rejected", rejected, len(cases))
	fmt.Printf("MEASURED jwt-attack-corpus rejected=%d total=%d\n", rejected, len(cases))
	assertNothingLeft(t, prefix)
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// An edge deployment without AWS uses the built-in identity provider. When
// an operator rotates its signing key, new tokens carry the new key and are
// accepted at once, and tokens signed before stay valid; no restart.
func TestLocalIdentityProviderKeyRotation(t *testing.T) {
	prefix := testPrefix(t)
	dir := t.TempDir()
	hash, _ := bcrypt.GenerateFromPassword([]byte("edge-password"), localidp.MinHashCost)
	users := fmt.Sprintf(`{"users":[{"email":"edge@example.com","password_hash":%q,"groups":["uploader"]}]}`, hash)
	usersFile := filepath.Join(dir, "users.json")
	if err := os.WriteFile(usersFile, []byte(users), 0o600); err != nil {
		t.Fatal(err)
	}
	keysDir := filepath.Join(dir, "keys")
	gw := startGateway(t, fmt.Sprintf(`upload_auth {
		local {
			users_file %s
			keys_dir %s
			issuer https://edge.example.com
		}
	}
	%s`, usersFile, keysDir, gatewayOpts{prefix: prefix, auth: true, lines: []string{"allowed_roles uploader"}}.block()))

	first := login(t, gw.Client, gw.URL, "edge@example.com", "edge-password")
	if first.status != http.StatusOK || first.body.Data.User.Role.Role != "uploader" {
		t.Fatalf("login: %d %+v", first.status, first.body)
	}
	kid := func(token string) string {
		head, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[0])
		var h struct {
			Kid string `json:"kid"`
		}
		if err != nil || json.Unmarshal(head, &h) != nil {
			t.Fatalf("token header %q: %v", head, err)
		}
		return h.Kid
	}
	oldKid := kid(first.body.Data.Token)

	newKid, err := localidp.RotateDir(keysDir)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // the provider re-reads its keys at most once a second
	second := login(t, gw.Client, gw.URL, "edge@example.com", "edge-password")
	if second.status != http.StatusOK {
		t.Fatalf("login after rotation: %d %+v", second.status, second.body)
	}
	if got := kid(second.body.Data.Token); got != newKid || got == oldKid {
		t.Fatalf("token after rotation signed with %q, want the new key %q (old %q)", got, newKid, oldKid)
	}
	for name, token := range map[string]string{"new key": second.body.Data.Token, "old key": first.body.Data.Token} {
		resp := putWithToken(t, gw.Client, gw.URL+"/rotated.txt", token)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Errorf("upload with a token signed by the %s: %d", name, resp.StatusCode)
		}
	}

	resp, err := gw.Client.Get(gw.URL + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	set, err := jwk.ParseReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{oldKid, newKid} {
		if _, ok := set.LookupKeyID(k); !ok {
			t.Errorf("JWKS does not publish %s", k)
		}
	}
	if key, _ := set.Key(0); key != nil {
		if _, isPrivate := key.(interface{ D() []byte }); isPrivate {
			t.Errorf("JWKS publishes private keys")
		}
	}
}
