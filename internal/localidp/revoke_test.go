package localidp

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// withRevocations gives f's issuer a revocation directory next to its keys,
// driven by f's clock, and returns it.
func withRevocations(t *testing.T, f *idpFixture) *Revocations {
	t.Helper()
	r, err := OpenRevocations(filepath.Join(f.keyDir, "revoked"))
	if err != nil {
		t.Fatalf("OpenRevocations: %v", err)
	}
	r.Now = f.clock.Now
	f.issuer.Revocations = r
	return r
}

func TestRefreshRotates(t *testing.T) {
	f := newIDPFixture(t)
	withRevocations(t, f)
	first := f.signIn(t, "demo@example.com", "correct horse")
	firstClaims := payload(t, first.RefreshToken)

	f.clock.Advance(10 * time.Minute)
	second, err := f.issuer.Refresh(first.RefreshToken, f.users)
	if err != nil {
		t.Fatalf("first refresh: %v", err)
	}
	if second.RefreshToken == first.RefreshToken {
		t.Fatal("Refresh returned the same refresh token, want a new one")
	}
	claims := f.verify(t, second.RefreshToken)
	for _, name := range []string{"sid", "exp", "auth_time", "sub"} {
		if mustJSON(t, claims[name]) != mustJSON(t, firstClaims[name]) {
			t.Errorf("rotated refresh token: %s = %v, want %v as before", name, claims[name], firstClaims[name])
		}
	}
	if claims["jti"] == firstClaims["jti"] {
		t.Errorf("rotated refresh token has the old jti")
	}

	// The new one works once more; the old one is used up.
	f.clock.Advance(10 * time.Minute)
	third, err := f.issuer.Refresh(second.RefreshToken, f.users)
	if err != nil {
		t.Fatalf("refresh with the rotated token: %v", err)
	}
	if _, err := f.issuer.Refresh(first.RefreshToken, f.users); !errors.Is(err, ErrInvalidRefreshToken) || !strings.Contains(err.Error(), "used before") {
		t.Fatalf("refresh with a used token = %v, want ErrInvalidRefreshToken (used before)", err)
	}
	// Replaying a used token ends the whole session, including the newest
	// token, which the thief may be holding.
	if _, err := f.issuer.Refresh(third.RefreshToken, f.users); !errors.Is(err, ErrInvalidRefreshToken) || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("refresh with the newest token after a replay = %v, want the session revoked", err)
	}
	// Other sessions of the same user are not affected.
	other := f.signIn(t, "demo@example.com", "correct horse")
	if _, err := f.issuer.Refresh(other.RefreshToken, f.users); err != nil {
		t.Errorf("another session after the replay: %v", err)
	}
}

// Two instances sharing the directory race to refresh with the same token:
// exactly one wins.
func TestRefreshRaceOneWinner(t *testing.T) {
	f := newIDPFixture(t)
	withRevocations(t, f)
	tokens := f.signIn(t, "demo@example.com", "correct horse")
	other, err := OpenRevocations(filepath.Join(f.keyDir, "revoked"))
	if err != nil {
		t.Fatal(err)
	}
	otherIssuer := *f.issuer
	otherIssuer.Revocations = other

	var wg sync.WaitGroup
	results := make(chan error, 8)
	for i := range 8 {
		iss := f.issuer
		if i%2 == 1 {
			iss = &otherIssuer
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := iss.Refresh(tokens.RefreshToken, f.users)
			results <- err
		}()
	}
	wg.Wait()
	close(results)
	ok := 0
	for err := range results {
		if err == nil {
			ok++
		} else if !errors.Is(err, ErrInvalidRefreshToken) {
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d of 8 concurrent refreshes with one token succeeded, want exactly 1", ok)
	}
}

func TestRevoke(t *testing.T) {
	f := newIDPFixture(t)
	withRevocations(t, f)
	tokens := f.signIn(t, "demo@example.com", "correct horse")
	rotated, err := f.issuer.Refresh(tokens.RefreshToken, f.users)
	if err != nil {
		t.Fatal(err)
	}
	// Signing out with the current refresh token ends the session.
	if err := f.issuer.Revoke(rotated.RefreshToken); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if _, err := f.issuer.Refresh(rotated.RefreshToken, f.users); !errors.Is(err, ErrInvalidRefreshToken) || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("refresh after Revoke = %v, want the session revoked", err)
	}
	// A forged token is not a session to revoke.
	if err := f.issuer.Revoke("not-a-token"); !errors.Is(err, ErrInvalidRefreshToken) {
		t.Errorf("Revoke(garbage) = %v, want ErrInvalidRefreshToken", err)
	}
	// An expired one needs nothing.
	f.clock.Advance(DefaultRefreshTTL + 2*refreshSkew)
	if err := f.issuer.Revoke(rotated.RefreshToken); err != nil {
		t.Errorf("Revoke of an expired token = %v, want nil", err)
	}
}

func TestTokenGenerationEndsSessions(t *testing.T) {
	f := newIDPFixture(t)
	withRevocations(t, f)
	tokens := f.signIn(t, "demo@example.com", "correct horse")

	replaceFile(t, f.usersPath, `{"users":[{"email":"demo@example.com","token_generation":1,
		"password_hash":"$2a$10$BiqbFUZ6klYRzlrxGGdrjeVLbADUaXhdlaDtPDSKyHI8Qr2BX1Eky"}]}`, time.Now().Add(time.Hour))
	f.clock.Advance(2 * time.Second)

	if _, err := f.issuer.Refresh(tokens.RefreshToken, f.users); !errors.Is(err, ErrInvalidRefreshToken) || !strings.Contains(err.Error(), "token_generation") {
		t.Fatalf("refresh after token_generation was raised = %v, want refused", err)
	}
	// A new sign-in carries the new generation and works.
	fresh := f.signIn(t, "demo@example.com", "correct horse")
	if g := payload(t, fresh.RefreshToken)["token_generation"]; mustJSON(t, g) != "1" {
		t.Errorf("new refresh token has token_generation %v, want 1", g)
	}
	if _, err := f.issuer.Refresh(fresh.RefreshToken, f.users); err != nil {
		t.Errorf("refresh of a new sign-in: %v", err)
	}
}

func TestRevocationsPrune(t *testing.T) {
	f := newIDPFixture(t)
	r := withRevocations(t, f)
	tokens := f.signIn(t, "demo@example.com", "correct horse")
	if _, err := f.issuer.Refresh(tokens.RefreshToken, f.users); err != nil {
		t.Fatal(err)
	}
	if n, err := r.Prune(); err != nil || n != 0 {
		t.Fatalf("Prune before expiry = %d, %v; want 0", n, err)
	}
	f.clock.Advance(DefaultRefreshTTL + 2*refreshSkew)
	if n, err := r.Prune(); err != nil || n != 1 {
		t.Fatalf("Prune after expiry = %d, %v; want 1", n, err)
	}
	entries, _ := os.ReadDir(r.dir)
	if len(entries) != 0 {
		t.Errorf("%d records left after Prune", len(entries))
	}
}

func TestOpenRevocationsRefusesWritableDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "revoked")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenRevocations(dir); !errors.Is(err, ErrInsecurePermissions) {
		t.Errorf("OpenRevocations of a 0777 directory = %v, want ErrInsecurePermissions", err)
	}
}

// The revocation directory is made by the first refresh, not by opening
// it, and records are pruned as refresh tokens are used, once per
// PruneInterval.
func TestRevocationsCreatedOnFirstUseAndPrunedAsUsed(t *testing.T) {
	f := newIDPFixture(t)
	r := withRevocations(t, f)
	if _, err := os.Stat(r.dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("OpenRevocations made the directory: %v", err)
	}
	old := f.signIn(t, "demo@example.com", "correct horse")
	if _, err := f.issuer.Refresh(old.RefreshToken, f.users); err != nil {
		t.Fatal(err)
	}
	if entries, err := os.ReadDir(r.dir); err != nil || len(entries) != 1 {
		t.Fatalf("after the first refresh: %d records, %v", len(entries), err)
	}
	// The first record expires; the next use of a refresh token prunes it.
	f.clock.Advance(DefaultRefreshTTL + 2*refreshSkew)
	fresh := f.signIn(t, "demo@example.com", "correct horse")
	if _, err := f.issuer.Refresh(fresh.RefreshToken, f.users); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(r.dir)
	if len(entries) != 1 || !strings.Contains(entries[0].Name(), payload(t, fresh.RefreshToken)["jti"].(string)) {
		t.Errorf("records after pruning: %v, want only the new token's", entries)
	}
}

// With ReuseGrace, a refresh token used again soon after its first use
// (two tabs renewing at once) gets tokens of the same session, and both
// successors work; a use after the grace is a replay and ends the session.
func TestRefreshReuseGrace(t *testing.T) {
	f := newIDPFixture(t)
	withRevocations(t, f)
	f.issuer.ReuseGrace = 30 * time.Second
	tokens := f.signIn(t, "demo@example.com", "correct horse")

	f.clock.Advance(time.Minute)
	tab1, err := f.issuer.Refresh(tokens.RefreshToken, f.users)
	if err != nil {
		t.Fatalf("first tab: %v", err)
	}
	f.clock.Advance(2 * time.Second)
	tab2, err := f.issuer.Refresh(tokens.RefreshToken, f.users)
	if err != nil {
		t.Fatalf("second tab, 2 s later: %v", err)
	}
	if tab1.RefreshToken == tab2.RefreshToken || mustJSON(t, payload(t, tab1.RefreshToken)["sid"]) != mustJSON(t, payload(t, tab2.RefreshToken)["sid"]) {
		t.Error("the two tabs' refresh tokens should differ and share the session")
	}
	for name, tok := range map[string]string{"first tab": tab1.RefreshToken, "second tab": tab2.RefreshToken} {
		if _, err := f.issuer.Refresh(tok, f.users); err != nil {
			t.Errorf("%s's next refresh: %v", name, err)
		}
	}

	f.clock.Advance(31 * time.Second)
	if _, err := f.issuer.Refresh(tokens.RefreshToken, f.users); !errors.Is(err, ErrInvalidRefreshToken) || !strings.Contains(err.Error(), "used before") {
		t.Fatalf("replay after the grace = %v, want used before", err)
	}
	if _, err := f.issuer.Refresh(tab2.RefreshToken, f.users); err == nil {
		t.Error("the session survived a replay after the grace")
	}
}
