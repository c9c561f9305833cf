package shared

import (
	"net"
	"net/http"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-upload-gateway/upload-gateway/internal/metrics"
)

// AuditEvent is one auditable action (an upload, a download URL, a delete,
// a login or a denial): the request's outcome, of which the audit line
// writes Action, Result, Key, UploadID, Account, Bytes (as "size"), Files,
// Parts, Method, Status, Duration and Reason.
type AuditEvent = metrics.Outcome

// Audit writes one JSON line for e to the handler's "audit" logger
// (`<handler logger>.audit`), which operators can route to its own file
// with Caddy's log configuration (`log audit { include http.handlers.upload_gateway.audit … }`).
func Audit(logger *zap.Logger, r *http.Request, e AuditEvent) {
	if logger == nil {
		return
	}
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	get := func(key string) string {
		if repl == nil {
			return ""
		}
		v, _ := repl.GetString(key)
		return v
	}
	fields := []zap.Field{
		zap.String("request_id", get("http.request.uuid")),
		zap.String("user", get("http.auth.user.id")),
		zap.String("role", get("http.auth.user.role")),
		zap.String("client_ip", ClientIP(r)),
		zap.String("action", e.Action),
		zap.String("result", e.Result),
	}
	// Anyone can sign up with someone else's address: an email the
	// identity provider has not verified is logged as such, never as
	// "email".
	if email := get("http.auth.user.email"); email != "" {
		if get("http.auth.user.email_verified") == "true" {
			fields = append(fields, zap.String("email", email))
		} else {
			fields = append(fields, zap.String("unverified_email", email))
		}
	}
	for _, f := range [...][2]string{{"key", e.Key}, {"upload_id", e.UploadID}, {"account", e.Account}, {"reason", e.Reason}, {"method", e.Method}} {
		if f[1] != "" {
			fields = append(fields, zap.String(f[0], f[1]))
		}
	}
	if e.Files > 0 {
		fields = append(fields, zap.Int("files", e.Files))
	}
	if e.Parts > 0 {
		fields = append(fields, zap.Int("parts", e.Parts))
	}
	if e.Bytes > 0 || e.Action == "upload" {
		fields = append(fields, zap.Int64("size", e.Bytes))
	}
	if e.Status > 0 {
		fields = append(fields, zap.Int("status", e.Status))
	}
	if e.Duration > 0 {
		fields = append(fields, zap.Float64("duration", e.Duration.Seconds()))
		if e.Bytes > 0 {
			fields = append(fields, zap.Float64("speed_bytes_per_second", float64(e.Bytes)/e.Duration.Seconds()))
		}
	}
	logger.Info("audit", fields...)
}

// ClientIP is the client address Caddy determined (trusted proxies
// considered), else the connection's remote address.
func ClientIP(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		return ip
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
