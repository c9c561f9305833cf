// Package authservice is the gateway's login API and bearer-token check,
// without Caddy. [Service] is a [net/http.Handler] for sign-in, refresh,
// revocation, sign-out and "who is signed in" against AWS Cognito or the
// built-in provider of package localidp, and for that provider's JWKS, at
// the paths of [Config]. With [Cookies] it keeps a browser's session in
// HttpOnly cookies: sign-in and refresh set them, a refresh with an empty
// body reads the refresh cookie, sign-out clears them, and cookie requests
// must pass the origin check of package csrf. Its
// responses use package envelope, and the user is read from the issued id
// token through the verifier requests go through. Attempts are limited per
// client, per account and client, and per account, each refusal costing
// nothing from the later limits; local password checks pass a [Gate]
// before the account is charged. classify is the one place errors become
// statuses, and each request ends in one [Outcome] for [Config.Report].
//
// [Authenticate], [Refuse] and [IsCORSPreflight] are the per-request check
// shared by the upload_auth handler and authentication provider.
package authservice
