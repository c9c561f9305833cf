//go:build integration

package cognito_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"

	"github.com/caddy-upload-gateway/upload-gateway/internal/cognito"
)

// These tests log in against the cognito-local started by integration/testenv/cognito-up.sh
// (scripts/test starts it), with the variables it writes to the env file:
//
//	integration/testenv/up.sh .testenv && integration/testenv/cognito-up.sh .testenv
//	. .testenv/env && go test -tags integration ./internal/cognito/

type env struct {
	endpoint, clientID string
}

func testEnv(t *testing.T) env {
	t.Helper()
	e := env{endpoint: os.Getenv("UGW_COGNITO_ENDPOINT"), clientID: os.Getenv("UGW_COGNITO_CLIENT_ID")}
	if e.endpoint == "" {
		t.Skip("UGW_COGNITO_ENDPOINT is not set: start cognito-local with " +
			"integration/testenv/cognito-up.sh <dir> and source <dir>/env (scripts/test does both)")
	}
	if e.clientID == "" {
		t.Fatal("UGW_COGNITO_ENDPOINT is set but UGW_COGNITO_CLIENT_ID is not: source the env file written by cognito-up.sh")
	}
	return e
}

func mustEnv(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: source the env file written by integration/testenv/cognito-up.sh", name)
	}
	return v
}

func newClient(endpoint, clientID string) *cognito.Client {
	api := cip.New(cip.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("local", "local", ""),
	})
	return cognito.New(api, clientID, "")
}

func claims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts, want 3", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("token payload: %v", err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatalf("token payload: %v", err)
	}
	return c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestLoginAndRefresh(t *testing.T) {
	t.Parallel()
	e := testEnv(t)
	c := newClient(e.endpoint, e.clientID)
	email, pw := mustEnv(t, "UGW_COGNITO_UPLOADER_EMAIL"), mustEnv(t, "UGW_COGNITO_UPLOADER_PASSWORD")

	tok, err := c.Login(ctx(t), email, pw)
	if err != nil {
		t.Fatalf("Login(%s) error = %v", email, err)
	}
	if tok.IDToken == "" || tok.AccessToken == "" || tok.RefreshToken == "" {
		t.Fatalf("Login(%s) = %+v, want all three tokens", email, tok)
	}
	id := claims(t, tok.IDToken)
	if iss := os.Getenv("UGW_COGNITO_ISSUER"); id["iss"] != iss {
		t.Errorf("id token iss = %v, want %s", id["iss"], iss)
	}
	if id["aud"] != e.clientID || id["token_use"] != "id" || id["email"] != email {
		t.Errorf("id token aud, token_use, email = %v, %v, %v; want %s, id, %s", id["aud"], id["token_use"], id["email"], e.clientID, email)
	}
	if g, _ := id["cognito:groups"].([]any); len(g) != 1 || g[0] != "uploader" {
		t.Errorf("id token cognito:groups = %v, want [uploader]", id["cognito:groups"])
	}

	// The username for SECRET_HASH would be the access token's username claim; this client
	// has no secret, so it is only passed along.
	username, _ := claims(t, tok.AccessToken)["username"].(string)
	re, err := c.Refresh(ctx(t), tok.RefreshToken, username)
	if err != nil {
		t.Fatalf("Refresh error = %v", err)
	}
	if re.IDToken == "" || re.AccessToken == "" {
		t.Errorf("Refresh = %+v, want new ID and access tokens", re)
	}
	if re.RefreshToken != tok.RefreshToken {
		t.Errorf("Refresh returned refresh token %q, want the one passed in (no rotation)", re.RefreshToken)
	}
}

func TestLoginFailures(t *testing.T) {
	t.Parallel()
	e := testEnv(t)
	c := newClient(e.endpoint, e.clientID)
	uploader := mustEnv(t, "UGW_COGNITO_UPLOADER_EMAIL")

	tests := []struct {
		name, email, password string
		want                  error
	}{
		{"wrong password", uploader, "Wrong-Passw0rd!", cognito.ErrInvalidCredentials},
		{"unknown user", "nobody@example.com", "Whatever-Passw0rd!", cognito.ErrInvalidCredentials},
		{"temporary password", mustEnv(t, "UGW_COGNITO_NEWPW_EMAIL"), mustEnv(t, "UGW_COGNITO_NEWPW_PASSWORD"), cognito.ErrChallenge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := c.Login(ctx(t), tt.email, tt.password)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Login(%s) error = %v, want errors.Is %v", tt.email, err, tt.want)
			}
		})
	}

	t.Run("challenge details", func(t *testing.T) {
		t.Parallel()
		_, err := c.Login(ctx(t), mustEnv(t, "UGW_COGNITO_NEWPW_EMAIL"), mustEnv(t, "UGW_COGNITO_NEWPW_PASSWORD"))
		var ce *cognito.ChallengeError
		if !errors.As(err, &ce) {
			t.Fatalf("Login error = %v, want a *ChallengeError", err)
		}
		if ce.Name != "NEW_PASSWORD_REQUIRED" || ce.Session == "" {
			t.Errorf("challenge %q with session %t, want NEW_PASSWORD_REQUIRED with a session", ce.Name, ce.Session != "")
		}
	})

	t.Run("invalid refresh token", func(t *testing.T) {
		t.Parallel()
		_, err := c.Refresh(ctx(t), "not-a-refresh-token", "")
		if !errors.Is(err, cognito.ErrInvalidCredentials) {
			t.Fatalf("Refresh error = %v, want ErrInvalidCredentials", err)
		}
	})

	t.Run("unknown client id", func(t *testing.T) {
		t.Parallel()
		_, err := newClient(e.endpoint, "no-such-client").Login(ctx(t), uploader, mustEnv(t, "UGW_COGNITO_UPLOADER_PASSWORD"))
		if err == nil {
			t.Fatal("Login with an unknown client id succeeded")
		}
		for _, s := range []error{cognito.ErrInvalidCredentials, cognito.ErrUnavailable, cognito.ErrChallenge} {
			if errors.Is(err, s) {
				t.Errorf("Login with an unknown client id: %v; want a configuration error, not %v", err, s)
			}
		}
	})

	t.Run("unreachable", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		_, err = newClient("http://"+addr, e.clientID).Login(ctx(t), uploader, "x")
		if !errors.Is(err, cognito.ErrUnavailable) {
			t.Fatalf("Login against a closed port: %v, want ErrUnavailable", err)
		}
	})
}
