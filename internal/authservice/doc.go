// Package authservice is the gateway's login API and bearer-token check,
// without Caddy. [Service] is a [net/http.Handler] for sign-in, refresh,
// revocation, sign-out and "who is signed in" against AWS Cognito or the
// built-in provider of package localidp, and for that provider's JWKS, at
// the paths of [Config]. Its responses use package envelope, and the user
// is read from the issued id token through the verifier requests go
// through. Attempts are limited per
// client, per account and client, per account, and per account across
// instances, each refusal costing nothing from the later limits; local
// password checks pass a [Gate] before the account is charged. classify is
// the one place errors become statuses, and each request ends in one
// [Outcome] for [Config.Report] ([Outcome.Metrics] is how it is recorded).
//
// [Checker] (the token from the Authorization header, a cookie or the
// query, with the CSRF origin check for cookies), [Refuse],
// [LogRejection] and [IsCORSPreflight] are the per-request check shared by
// the upload_auth handler and authentication provider; [Principal] is the
// user it finds, with the names of Caddy's `{http.auth.user.*}`.
//
// # Routes
//
//   - `POST <LoginPath>` `{"email":…,"password":…}` signs in (Cognito
//     InitiateAuth USER_PASSWORD_AUTH, or the local provider) and answers
//     `{"success":true,"data":{"token":…,"accessToken":…,"refreshToken":…,
//     "expiresIn":…,"user":{"id":…,"email":…,"groups":[…],"role":{"role":…}}}}`
//     (with `"roleArn"` in `role` when [Config].RoleARNs is set);
//   - `POST <RefreshPath>` `{"refreshToken":…,"email":…}` renews the tokens;
//     the local provider rotates the refresh token: the response holds a
//     new one and the one sent stops working;
//   - `POST <RevokePath>` `{"refreshToken":…}` (local provider only) ends
//     the session the refresh token belongs to: it and every refresh token
//     rotated from it stop working;
//   - `POST <LogoutPath>` signs out: it revokes the refresh token of the
//     body (`{"refreshToken":…}`) or of the refresh cookie (the local
//     provider's revocation, or Cognito RevokeToken, which the app client
//     must allow: the default since 2021), clears the session cookies, and
//     answers `{"success":true,"data":{"signedOut":true}}`;
//   - `GET <SessionPath>` answers who is signed in (by session cookie or
//     bearer token): `{"success":true,"data":{"id":…,"email":…,"role":…}}`,
//     or 401 JSON;
//   - `GET <JWKSPath>` serves the local provider's public keys.
//
// # Sessions for browsers
//
// With [Cookies], sign-in and refresh also set the session cookie (the
// token, Path=/) and the refresh cookie (Path=<RefreshPath> and
// <LogoutPath>), so that a page on the gateway's origin is authenticated
// without handling tokens. `POST <RefreshPath>` with an empty body renews
// both from the refresh cookie and answers without the tokens
// (`expiresIn`, `expiresAt`, `user`); `POST <LogoutPath>` clears both.
// Requests riding on the cookies must pass the origin check of package csrf.
package authservice
