package localidp

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// Provider is the local identity provider as a gateway runs it: the users
// file, the key directory and, in its "revoked" subdirectory, the records
// that make refresh tokens single-use. [Open] only reads; the directories
// and the first key are made on first use. It is safe for concurrent use.
type Provider struct {
	users  *Users
	issuer *Issuer
}

// Open loads usersFile and opens keysDir for iss, which has every field
// set but Keys and Revocations.
func Open(usersFile, keysDir string, iss Issuer) (*Provider, error) {
	if usersFile == "" || keysDir == "" {
		return nil, errors.New("localidp: a users file and a key directory are required")
	}
	users, err := LoadUsers(usersFile)
	if err != nil {
		return nil, fmt.Errorf("loading users: %w", err)
	}
	if iss.Keys, err = OpenKeyStore(keysDir); err != nil {
		return nil, fmt.Errorf("opening keys: %w", err)
	}
	if iss.Revocations, err = OpenRevocations(filepath.Join(keysDir, "revoked")); err != nil {
		return nil, fmt.Errorf("opening the revocation directory: %w", err)
	}
	iss.ReuseGrace = cmp.Or(iss.ReuseGrace, DefaultReuseGrace)
	if err := iss.check(); err != nil {
		return nil, err
	}
	return &Provider{users: users, issuer: &iss}, nil
}

// Keys is the key source for package jwtauth; see [KeyStore.Keys].
func (p *Provider) Keys(ctx context.Context) (jwk.Set, error) { return p.issuer.Keys.Keys(ctx) }

// JWKS returns the document to serve at /.well-known/jwks.json.
func (p *Provider) JWKS(ctx context.Context) ([]byte, error) {
	if _, err := p.Keys(ctx); err != nil {
		return nil, err
	}
	return p.issuer.Keys.JWKS()
}

// Login checks the password ([ErrInvalidCredentials]) and issues tokens.
func (p *Provider) Login(_ context.Context, email, password string) (*Tokens, error) {
	u, err := p.users.Authenticate(email, password)
	if err != nil {
		return nil, err
	}
	return p.issuer.Issue(u)
}

// Refresh renews a session's tokens; see [Issuer.Refresh].
func (p *Provider) Refresh(_ context.Context, refreshToken string) (*Tokens, error) {
	return p.issuer.Refresh(refreshToken, p.users)
}

// Revoke ends a session; see [Issuer.Revoke].
func (p *Provider) Revoke(ctx context.Context, refreshToken string) error {
	if _, err := p.Keys(ctx); err != nil {
		return err
	}
	return p.issuer.Revoke(refreshToken)
}
