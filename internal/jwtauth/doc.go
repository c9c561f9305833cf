// Package jwtauth verifies bearer tokens (JWTs) issued by AWS Cognito user
// pools, by cognito-local and by other OIDC issuers that publish a JWKS,
// and turns them into [Claims].
//
// # Configuration
//
// Build one [Verifier] per issuer with [New]; it does no network I/O.
// A typical Cognito setup needs three values:
//
//	v, err := jwtauth.New(jwtauth.Config{
//		Issuer:    "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf",
//		Audiences: []string{"<app client id>"},
//		TokenUse:  "id", // or "access", or "any"
//	})
//	v.Start(ctx) // optional background key refresh, until ctx is done
//	claims, err := v.Verify(r.Context(), token)
//
// The key set is fetched from Issuer + "/.well-known/jwks.json" unless
// JWKSURL says otherwise. For cognito-local the issuer is
// http://127.0.0.1:<port>/<userPoolId>, its keys are RS256 with kid
// "CognitoLocal", and the default JWKS URL is right. A built-in identity
// provider passes its keys through Config.Keys instead of a URL; tokens
// are then verified by the same code.
//
// # What is checked
//
// Verify rejects, in this order:
//
//   - tokens longer than MaxTokenBytes (8192), before any parsing;
//   - anything that is not a compact JWS made of three strict, unpadded
//     base64url parts: JWS JSON serialization, JWE, whitespace, padding;
//   - a header alg outside Config.Algorithms (default RS256). "none" and
//     HS* can never be configured, which rules out unsigned tokens and
//     HMAC key confusion. The algorithm is never taken from the token
//     alone: it must be allowed, and must fit the key;
//   - a crit header (no extension is supported);
//   - a kid that is not in the key set, after at most one rate-limited
//     refresh. Tokens without kid are rejected too;
//   - a key whose own "alg" differs from the header alg, or whose type
//     does not fit it (a key without "alg" may verify any allowed algorithm
//     of its type);
//   - a bad signature;
//   - then the claims: exp is required and must be in the future; nbf and
//     iat, when present, must not be in the future; Leeway (30s) applies
//     to all three. iss must equal Issuer exactly; sub is required;
//     token_use must be present, "id" or "access", and match TokenUse;
//     for id tokens "aud", for access tokens "client_id", must be one of
//     Audiences unless AllowAnyAudience is set.
//
// Header members jku, x5u, jwk and x5c are ignored: keys only ever come
// from the configured source, selected by kid. No other claim is required,
// since cognito-local omits several that Cognito sends. Claims.Username is
// "cognito:username" in id tokens and "username" in access tokens.
//
// # Keys, caching and refresh
//
// Keys are cached in memory and refreshed as [Verifier.Start] describes,
// every RefreshInterval (15m). An unknown kid triggers a refresh at most once
// per MinRefreshInterval (10s), however many tokens carry it, and
// concurrent callers share one fetch; so a new signing key is accepted as
// soon as the issuer publishes it, and a flood of forged kids cannot
// hammer the issuer. The fetch is a GET with a 10s timeout that must
// answer 200 with at most 1 MiB of JWKS. Only public signature keys with a
// kid are kept: symmetric keys, keys marked for encryption and RSA keys
// under 2048 bits are dropped, and private keys are reduced to their
// public part. A key set with no usable key counts as a failed fetch.
//
// # Errors
//
// Every error from Verify matches either [ErrTokenInvalid] (answer 401;
// [ErrTokenExpired] is a case of it) or [ErrKeysUnavailable] (no key set,
// so the token was not judged), and [Reason] gives a stable code for
// metrics and logs. Error messages never contain the token or values read
// from it, so they are safe to log.
//
// # Considerations
//
// Issuer comparison is exact: a trailing slash matters. Zero Config values
// mean "default", so Leeway cannot be set to exactly zero (use 1ns). Plain
// http JWKS URLs are accepted for emulators; use https in production.
package jwtauth
