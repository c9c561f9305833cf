package localidp

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// Config configures a [Provider]. Zero durations mean the defaults of
// [Issuer].
type Config struct {
	UsersFile  string // the users file; required
	KeysDir    string // the key directory; required
	Issuer     string // the iss claim; required
	ClientID   string // the aud / client_id claim; required
	TokenTTL   time.Duration
	RefreshTTL time.Duration
}

// Provider is the local identity provider as a gateway runs it: the users
// file, the key directory and, in its "revoked" subdirectory, the records
// that make refresh tokens single-use. [Open] reads the files and checks
// their permissions but writes nothing; the directories and the first key
// are created on first use. It is safe for concurrent use.
type Provider struct {
	users  *Users
	keys   *KeyStore
	issuer *Issuer
}

// Open loads the users file and opens the key and revocation directories
// of cfg.
func Open(cfg Config) (*Provider, error) {
	if cfg.UsersFile == "" || cfg.KeysDir == "" {
		return nil, errors.New("localidp: the users file and the key directory are required")
	}
	users, err := LoadUsers(cfg.UsersFile)
	if err != nil {
		return nil, fmt.Errorf("loading users: %w", err)
	}
	keys, err := OpenKeyStore(cfg.KeysDir)
	if err != nil {
		return nil, fmt.Errorf("opening keys: %w", err)
	}
	revocations, err := OpenRevocations(filepath.Join(cfg.KeysDir, "revoked"))
	if err != nil {
		return nil, fmt.Errorf("opening the revocation directory: %w", err)
	}
	issuer := &Issuer{
		Issuer:      cfg.Issuer,
		ClientID:    cfg.ClientID,
		TokenTTL:    cfg.TokenTTL,
		RefreshTTL:  cfg.RefreshTTL,
		Keys:        keys,
		Revocations: revocations,
	}
	if err := issuer.check(); err != nil {
		return nil, err
	}
	return &Provider{users: users, keys: keys, issuer: issuer}, nil
}

// Keys implements the key source of package jwtauth; see [KeyStore.Keys].
func (p *Provider) Keys(ctx context.Context) (jwk.Set, error) { return p.keys.Keys(ctx) }

// JWKS returns the public keys as the document to serve at
// /.well-known/jwks.json, creating the first key if there is none.
func (p *Provider) JWKS(ctx context.Context) ([]byte, error) {
	if _, err := p.keys.Keys(ctx); err != nil {
		return nil, err
	}
	return p.keys.JWKS()
}

// Login checks the user's password and issues tokens signed with the
// current key. A wrong email or password gives [ErrInvalidCredentials].
func (p *Provider) Login(ctx context.Context, email, password string) (*Tokens, error) {
	u, err := p.users.Authenticate(email, password)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return p.issuer.Issue(u)
}

// Refresh renews the tokens of refreshToken's session; see
// [Issuer.Refresh].
func (p *Provider) Refresh(ctx context.Context, refreshToken string) (*Tokens, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return p.issuer.Refresh(refreshToken, p.users)
}

// Revoke ends refreshToken's session; see [Issuer.Revoke].
func (p *Provider) Revoke(ctx context.Context, refreshToken string) error {
	if _, err := p.keys.Keys(ctx); err != nil {
		return err
	}
	return p.issuer.Revoke(refreshToken)
}
