package gateway

import (
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-upload-gateway/upload-gateway/internal/formstream"
	"github.com/caddy-upload-gateway/upload-gateway/internal/objectkey"
	"github.com/caddy-upload-gateway/upload-gateway/internal/uploadreq"
)

// flowConfig is the configuration of internal/uploadreq, which runs each
// request, from the handler's.
func (g *Gateway) flowConfig() *uploadreq.Config {
	c := &uploadreq.Config{
		Route:               g.Route,
		Bucket:              g.Bucket,
		Prefix:              g.Prefix,
		Key:                 g.Key,
		FilenameHeader:      g.FilenameHeader,
		MaxFileSize:         g.MaxFileSize,
		Form:                formstream.Limits{MaxFiles: g.MaxFiles, MaxFields: g.MaxFields, MaxFieldBytes: g.MaxFieldSize, MaxFormBytes: g.MaxFormSize},
		Metadata:            g.Metadata,
		ClientMetadata:      g.ClientMetadata,
		Pass:                g.Output == OutputPass,
		PassStyle:           g.PassFieldStyle,
		RollbackOn:          g.RollbackOn,
		AllowedTypes:        g.AllowedTypes,
		MaxUploadsPerClient: g.MaxUploadsPerClient,
		ReadTimeout:         time.Duration(g.ReadTimeout),
		MinRate:             g.MinRate,
		MemoryWait:          time.Duration(g.MemoryWait),
		Logger:              g.logger,
	}
	for _, f := range g.PassFields {
		c.PassFields = append(c.PassFields, formstream.Field{Name: f.Name, Value: f.Value})
	}
	if g.PassSignature != nil {
		c.SignatureField = g.PassSignature.Field
	}
	return c
}

// replacer is Caddy's replacer as the request's placeholders.
type replacer struct{ *caddy.Replacer }

// ReplaceKey expands a key template. Every {http.auth.user.*} value becomes
// one key segment: a user id or name with "/" or ".." in it must not reach
// another user's folder.
func (r replacer) ReplaceKey(template string) (string, error) {
	return r.ReplaceFunc(template, func(variable string, val any) (any, error) {
		if !strings.HasPrefix(variable, "http.auth.user.") {
			return val, nil
		}
		return objectkey.EscapeSegment(caddy.ToString(val)), nil
	})
}

// fail answers a failed upload: as on_error says, with the JSON error, or
// through Caddy's error handling when handle_errors is set.
func (g *Gateway) fail(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, repl *caddy.Replacer, q *uploadreq.Request, err error) error {
	a := q.Fail(w, err)
	repl.Set("http.upload_gateway.error", a.Message)
	repl.Set("http.upload_gateway.error_code", a.Code)
	if g.OnError != nil && g.OnError.handles(a.Status) {
		return g.refuse(w, r, next, repl, a)
	}
	if g.HandleErrors {
		return caddyhttp.Error(a.Status, err)
	}
	level := zapcore.DebugLevel
	if a.Status >= 500 {
		level = zapcore.ErrorLevel
	}
	if c := g.logger.Check(level, "upload failed"); c != nil {
		c.Write(zap.Int("status", a.Status), zap.String("code", a.Code), zap.Error(err))
	}
	return a.Write(w)
}
