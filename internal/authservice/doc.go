// Package authservice is the login API clients use to get bearer tokens:
// sign-in, refresh and sign-out against AWS Cognito or the built-in local
// identity provider (package localidp), and the local provider's public
// keys. It knows nothing of Caddy: [Service] is a [net/http.Handler] for
// these routes, with the paths from [Config]:
//
//	POST <LoginPath>    {"email":…,"password":…}
//	POST <RefreshPath>  {"refreshToken":…,"email":…}
//	POST <RevokePath>   {"refreshToken":…}          (local provider only)
//	GET  <JWKSPath>     the local provider's JWKS   (local provider only)
//
// Sign-in and refresh answer, in the JSON envelope of package envelope,
// {"token":…,"accessToken":…,"refreshToken":…,"expiresIn":…,"expiresAt":…,
// "tokenType":"Bearer","user":{"id":…,"email":…,"groups":[…],"role":{"role":…}}},
// reading the user from the issued id token through the same verifier
// requests go through. The local provider rotates refresh tokens: the
// response holds a new one and the one sent stops working.
//
// # Login abuse
//
// Attempts are limited per client address, then per account from that
// client, then per account from all clients ([Config.PerClient],
// [Config.PerAccountClient], [Config.PerAccount]); an attempt refused by
// one limit takes nothing from the later ones, so an attacker hammering a
// known account from one address uses up only their own allowance. Emails
// longer than 254 bytes are refused before any limiter sees them. With the
// local provider, password checks pass through [Config.Gate] before the
// account limits are charged: a check refused as busy (503 LOGIN_BUSY,
// Retry-After: 1) costs only the client's allowance.
//
// # Errors
//
// Every failure is answered by one function, classify, which maps the
// errors of the providers, the limiters and the request to a status and a
// code, and every request ends in one [Outcome] given to [Config.Report]
// (audit, metrics, logs).
package authservice
