package fileapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/caddy-upload-gateway/upload-gateway/internal/policy"
	"github.com/caddy-upload-gateway/upload-gateway/internal/s3limits"
)

// The routes of Uppy's @uppy/aws-s3 (6.x), relative to the base path
// (Uppy's companionEndpoint option is the base path: it appends "/s3/...").
// They map onto the same model as the REST routes: the server chooses the
// key under the user's prefix and Uppy carries it back (?key=), the upload
// id Uppy carries is the sealed upload token (its payload holds S3's upload
// id), and complete is completeUpload, which lists the parts itself.
// Answers are plain JSON as Companion's are, not the envelope; failures
// are the envelope with the status classify gives.
//
//	GET    /s3/params?filename&type&metadata[k]       POST policy, size-bounded
//	POST   /s3/multipart {filename,type,metadata}      {key, uploadId, bucket, fileId}
//	GET    /s3/multipart/{uploadId}/{partNumber}?key   {url, expires}
//	GET    /s3/multipart/{uploadId}?key                [{PartNumber, ETag, Size}]
//	POST   /s3/multipart/{uploadId}/complete?key       {location, key, bucket, fileId, size}
//	DELETE /s3/multipart/{uploadId}?key                {}
//
// signRequest mode: Uppy calls an app callback per S3 request; the
// documented callback posts what it gets to /s3/sign. Part uploads and
// single uploads (a POST policy) go to S3; creating, listing, completing
// and aborting a multipart upload go to the gateway's own routes below,
// which answer S3's XML, so that the gateway creates the upload (with the
// checked type, SSE and metadata) and completes it from its own listing.
//
//	POST   /s3/sign {method,key,uploadId?,partNumber?,contentType?}  {url, headers?, key?, fields?}
//	POST   /s3/sign/uploads?ticket                     InitiateMultipartUploadResult
//	GET    /s3/sign/parts?uploadId&key                 ListPartsResult
//	POST   /s3/sign/complete?uploadId&key              CompleteMultipartUploadResult
//	DELETE /s3/sign/abort?uploadId&key                 204
func (s *Service) companionRoutes() {
	s.handleWith("GET /s3/params", "upload_post", s.companionParams, writeJSON)
	s.handleWith("POST /s3/multipart", "multipart_initiate", s.companionCreate, writeJSON)
	s.handleWith("GET /s3/multipart/{uploadId}/{partNumber}", "", s.companionSignPart, writeJSON)
	s.handleWith("GET /s3/multipart/{uploadId}", "", s.companionListParts, writeJSON)
	s.handleWith("POST /s3/multipart/{uploadId}/complete", "multipart_complete", s.companionComplete, writeJSON)
	s.handleWith("DELETE /s3/multipart/{uploadId}", "multipart_abort", s.companionAbort, writeJSON)

	s.handleWith("POST /s3/sign", "", s.signRequest, writeJSON)
	s.handleWith("POST /s3/sign/uploads", "multipart_initiate", s.xmlCreate, writeXML)
	s.handleWith("GET /s3/sign/parts", "", s.xmlListParts, writeXML)
	s.handleWith("POST /s3/sign/complete", "multipart_complete", s.xmlComplete, writeXML)
	s.handleWith("DELETE /s3/sign/abort", "multipart_abort", s.xmlAbort, writeXML)
}

// writeJSON answers 200 with data as plain JSON (Companion's shape).
func writeJSON(w http.ResponseWriter, data any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(data)
}

// xmlDoc is an S3 XML answer, already serialised; nil answers 204.
type xmlDoc []byte

// writeXML answers with an S3 XML document.
func writeXML(w http.ResponseWriter, data any) {
	doc, _ := data.(xmlDoc)
	w.Header().Set("Cache-Control", "no-store")
	if doc == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	_, _ = w.Write(doc)
}

type companionParamsResponse struct {
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Fields  map[string]string `json:"fields"`
	Expires int64             `json:"expires"`
	Key     string            `json:"key"`
	FileID  string            `json:"fileId"`
}

// companionParams serves GET /s3/params: a POST policy for one file (0 to
// MaxSingleSize bytes: Uppy does not say the size), bound to the key, the
// checked type, the metadata and the encryption.
func (s *Service) companionParams(_ http.ResponseWriter, r *http.Request, user policy.Subject) (any, error) {
	q := r.URL.Query()
	client := map[string]string{}
	for name, v := range q {
		if k, ok := strings.CutPrefix(name, "metadata["); ok && strings.HasSuffix(k, "]") && len(v) > 0 {
			client[strings.TrimSuffix(k, "]")] = v[0]
		}
	}
	return s.postPolicy(r.Context(), user, q.Get("filename"), q.Get("type"), client)
}

// postPolicy checks a single upload of fileName and signs its POST form.
func (s *Service) postPolicy(ctx context.Context, user policy.Subject, fileName, contentType string, client map[string]string) (companionParamsResponse, error) {
	key, err := s.uploadKey(ctx, user, fileName)
	if err != nil {
		return companionParamsResponse{}, err
	}
	// Uppy sends an empty file as a single upload.
	p, err := s.signPost(ctx, user, key, fileName, contentType, client, 0, s.cfg.MaxSingleSize)
	if err != nil {
		return companionParamsResponse{}, err
	}
	return companionParamsResponse{
		Method:  http.MethodPost,
		URL:     p.URL,
		Fields:  p.Fields,
		Expires: s.expiresIn(p.Expires, s.cfg.URLExpiry),
		Key:     key,
		FileID:  fileID(key),
	}, nil
}

type companionCreateRequest struct {
	Filename string         `json:"filename"`
	Type     string         `json:"type"`
	Metadata map[string]any `json:"metadata"`
}

type companionCreateResponse struct {
	Key      string `json:"key"`
	UploadID string `json:"uploadId"`
	Bucket   string `json:"bucket"`
	FileID   string `json:"fileId"`
}

// companionCreate serves POST /s3/multipart: it creates the multipart
// upload and answers the key and, as uploadId, the upload token. Uppy does
// not say the file's size, so part lengths are checked on complete.
func (s *Service) companionCreate(w http.ResponseWriter, r *http.Request, user policy.Subject) (any, error) {
	var req companionCreateRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return nil, err
	}
	key, err := s.uploadKey(r.Context(), user, req.Filename)
	if err != nil {
		return nil, err
	}
	c, err := s.createUpload(r.Context(), user, key, req.Filename, req.Type, stringValues(req.Metadata), 0, 0)
	if err != nil {
		return nil, err
	}
	return companionCreateResponse{Key: key, UploadID: s.signToken(c), Bucket: s.cfg.Bucket, FileID: fileID(key)}, nil
}

// stringValues keeps the metadata Uppy sends (its file.meta) as strings:
// null members are dropped, numbers and booleans written as JSON.
func stringValues(m map[string]any) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		switch v := v.(type) {
		case nil:
		case string:
			out[k] = v
		case float64, bool:
			out[k] = fmt.Sprint(v)
		}
	}
	return out
}

// companionUpload resolves the upload token Uppy carries as its upload id
// and the key it carries with it, and checks that user may upload there.
func (s *Service) companionUpload(ctx context.Context, user policy.Subject, token, key string) (uploadClaims, error) {
	c, err := s.companionToken(token, key, false)
	if err != nil {
		return uploadClaims{}, err
	}
	resolved(ctx, c.Key, "")
	if err := s.authorize(user, policy.Upload, c.Key); err != nil {
		return uploadClaims{}, err
	}
	resolved(ctx, "", c.UploadID)
	return c, nil
}

// companionParts lists the parts S3 has of the upload Uppy names (see
// companionUpload), for Uppy to resume, in either protocol.
func (s *Service) companionParts(ctx context.Context, user policy.Subject, token, key string) (uploadClaims, []types.Part, error) {
	c, err := s.companionUpload(ctx, user, token, key)
	if err != nil {
		return c, nil, err
	}
	parts, err := s.listAllParts(ctx, c.Key, c.UploadID)
	return c, parts, err
}

// companionFinish completes the upload Uppy names (see companionUpload and
// completeUpload), in either protocol. The client's part list is not read.
func (s *Service) companionFinish(ctx context.Context, user policy.Subject, token, key string) (uploadClaims, completedUpload, error) {
	c, err := s.companionUpload(ctx, user, token, key)
	if err != nil {
		return c, completedUpload{}, err
	}
	done, err := s.completeUpload(ctx, c)
	return c, done, err
}

type companionPartResponse struct {
	URL     string            `json:"url"`
	Expires int64             `json:"expires"`
	Headers map[string]string `json:"headers,omitempty"`
}

// companionSignPart serves GET /s3/multipart/{uploadId}/{partNumber}?key.
func (s *Service) companionSignPart(_ http.ResponseWriter, r *http.Request, user policy.Subject) (any, error) {
	c, err := s.companionUpload(r.Context(), user, r.PathValue("uploadId"), r.URL.Query().Get("key"))
	if err != nil {
		return nil, err
	}
	p, expires, err := s.signOnePart(r.Context(), user, c, r.PathValue("partNumber"))
	if err != nil {
		return nil, err
	}
	return companionPartResponse{URL: p.URL, Expires: expires, Headers: p.Headers}, nil
}

// signOnePart signs part number n (a decimal string) of the upload c: for
// its exact length when the size was declared, else for any length, which
// complete checks. Part numbers whose parts could only exceed MaxFileSize
// are refused. It returns the URL and the seconds it is valid for.
func (s *Service) signOnePart(ctx context.Context, user policy.Subject, c uploadClaims, num string) (partURL, int64, error) {
	n, err := strconv.Atoi(num)
	if err != nil || n < 1 || n > c.totalParts() {
		return partURL{}, 0, badRequest("the part number must be within 1 and %d", c.totalParts())
	}
	if !c.sized() && int64(n-1)*s3limits.MinPartSize >= s.cfg.MaxFileSize {
		return partURL{}, 0, fmt.Errorf("%w: %d parts of at least %d bytes exceed the limit of %d bytes",
			errTooLarge, n, s3limits.MinPartSize, s.cfg.MaxFileSize)
	}
	urls, expiresIn, err := s.signPartURLs(ctx, user, c, []int{n})
	if err != nil {
		return partURL{}, 0, err
	}
	// A browser sets Content-Length itself and may not send it.
	delete(urls[0].Headers, "Content-Length")
	return urls[0], expiresIn, nil
}

type companionPart struct {
	PartNumber int32  `json:"PartNumber"`
	ETag       string `json:"ETag"`
	Size       int64  `json:"Size"`
}

// companionListParts serves GET /s3/multipart/{uploadId}?key: the parts
// S3 has, for Uppy to resume.
func (s *Service) companionListParts(_ http.ResponseWriter, r *http.Request, user policy.Subject) (any, error) {
	_, parts, err := s.companionParts(r.Context(), user, r.PathValue("uploadId"), r.URL.Query().Get("key"))
	if err != nil {
		return nil, err
	}
	out := make([]companionPart, 0, len(parts))
	for _, p := range parts {
		out = append(out, companionPart{PartNumber: aws.ToInt32(p.PartNumber), ETag: trimETag(aws.ToString(p.ETag)), Size: aws.ToInt64(p.Size)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PartNumber < out[j].PartNumber })
	return out, nil
}

type companionCompleteResponse struct {
	Location string `json:"location"`
	Key      string `json:"key"`
	Bucket   string `json:"bucket"`
	FileID   string `json:"fileId"`
	Size     int64  `json:"size"`
}

// companionComplete serves POST /s3/multipart/{uploadId}/complete?key.
func (s *Service) companionComplete(_ http.ResponseWriter, r *http.Request, user policy.Subject) (any, error) {
	c, done, err := s.companionFinish(r.Context(), user, r.PathValue("uploadId"), r.URL.Query().Get("key"))
	if err != nil {
		return nil, err
	}
	return companionCompleteResponse{Location: s.location(done, c.Key), Key: c.Key, Bucket: s.cfg.Bucket, FileID: fileID(c.Key), Size: done.Size}, nil
}

// location is the object's URL as S3 reported it, or bucket/key.
func (s *Service) location(done completedUpload, key string) string {
	if done.Location != "" {
		return done.Location
	}
	return s.cfg.Bucket + "/" + key
}

// companionAbort serves DELETE /s3/multipart/{uploadId}?key: whoever may
// upload to the key, or delete it, may abort, also after the token
// expired (its signature still counts).
func (s *Service) companionAbort(_ http.ResponseWriter, r *http.Request, user policy.Subject) (any, error) {
	if err := s.abortToken(r.Context(), user, r.PathValue("uploadId"), r.URL.Query().Get("key")); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// abortToken aborts the upload of a token carried as an upload id.
func (s *Service) abortToken(ctx context.Context, user policy.Subject, token, key string) error {
	c, err := s.companionToken(token, key, true)
	if err != nil {
		return err
	}
	return s.abortUpload(ctx, user, c.Key, c.UploadID)
}

// companionToken parses the upload token Uppy carries as its upload id,
// which must be issued for key; an expired one is accepted if expiredOK.
func (s *Service) companionToken(token, key string, expiredOK bool) (uploadClaims, error) {
	if token == "" {
		return uploadClaims{}, badRequest("uploadId is required")
	}
	c, err := s.parseToken(token)
	if err != nil && !(expiredOK && errors.Is(err, errTokenExpired)) {
		return uploadClaims{}, err
	}
	if c.Key != key {
		return uploadClaims{}, fmt.Errorf("%w: issued for another file", errInvalidToken)
	}
	return c, nil
}

// --- signRequest ---

// signRequestBody is what Uppy passes to its signRequest callback.
type signRequestBody struct {
	Method      string `json:"method"`
	Key         string `json:"key"`
	UploadID    string `json:"uploadId"`
	PartNumber  *int   `json:"partNumber"`
	ContentType string `json:"contentType"`
}

type signResponse struct {
	URL     string            `json:"url"`
	Key     string            `json:"key,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	Fields  map[string]string `json:"fields,omitempty"`
	FileID  string            `json:"fileId,omitempty"`
}

// createTicket lets its holder create one multipart upload at Key for
// the user, through POST /s3/sign/uploads, until Expires.
type createTicket struct {
	Key     string `json:"k"`
	Name    string `json:"n"`
	User    string `json:"s"`
	Expires int64  `json:"e"`
}

const ticketContext = "upload-gateway fileapi create ticket\n"

// uppyKey is the key Uppy proposes by default: "<uuid>-<file name>".
var uppyKey = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}-`)

// signRequest serves POST /s3/sign: it answers Uppy's signRequest callback
// for one S3 request. The key Uppy proposes only gives the file name (less
// Uppy's random prefix); the gateway chooses the key and returns it.
func (s *Service) signRequest(w http.ResponseWriter, r *http.Request, user policy.Subject) (any, error) {
	var req signRequestBody
	if err := decodeJSON(w, r, &req); err != nil {
		return nil, err
	}
	ctx := r.Context()
	name := uppyKey.ReplaceAllString(req.Key, "") // for a new file
	switch {
	case req.UploadID == "" && req.Method == http.MethodPut: // PutObject: a POST policy
		if res, _ := ctx.Value(resolvedKey{}).(*Resolved); res != nil {
			res.Action = "upload_post" // the route's action depends on the request
		}
		p, err := s.postPolicy(ctx, user, name, req.ContentType, nil)
		if err != nil {
			return nil, err
		}
		return signResponse{URL: p.URL, Key: p.Key, Fields: p.Fields, FileID: p.FileID}, nil
	case req.UploadID == "" && req.Method == http.MethodPost: // CreateMultipartUpload
		key, err := s.uploadKey(ctx, user, name)
		if err != nil {
			return nil, err
		}
		t := createTicket{Key: key, Name: name, User: user.ID, Expires: s.now().Add(s.cfg.URLExpiry).Unix()}
		return signResponse{
			URL:     s.selfURL(r, "/s3/sign/uploads", url.Values{"ticket": {s.seal(ticketContext, t)}}),
			Key:     key,
			Headers: authHeaders(r),
			FileID:  fileID(key),
		}, nil
	case req.UploadID == "":
		return nil, badRequest("method %q without uploadId is not an upload request", req.Method)
	}
	if req.Method == http.MethodDelete { // AbortMultipartUpload, also with an expired token
		return signResponse{URL: s.selfURL(r, "/s3/sign/abort", url.Values{"uploadId": {req.UploadID}, "key": {req.Key}}), Headers: authHeaders(r)}, nil
	}
	c, err := s.companionUpload(ctx, user, req.UploadID, req.Key)
	if err != nil {
		return nil, err
	}
	q := url.Values{"uploadId": {req.UploadID}, "key": {c.Key}}
	switch req.Method {
	case http.MethodPut: // UploadPart: to S3
		if req.PartNumber == nil {
			return nil, badRequest("partNumber is required")
		}
		p, _, err := s.signOnePart(ctx, user, c, strconv.Itoa(*req.PartNumber))
		if err != nil {
			return nil, err
		}
		return signResponse{URL: p.URL, Headers: p.Headers}, nil
	case http.MethodGet: // ListParts
		return signResponse{URL: s.selfURL(r, "/s3/sign/parts", q), Headers: authHeaders(r)}, nil
	case http.MethodPost: // CompleteMultipartUpload
		return signResponse{URL: s.selfURL(r, "/s3/sign/complete", q), Headers: authHeaders(r)}, nil
	}
	return nil, badRequest("method %q is not an upload request", req.Method)
}

// authHeaders are the headers that authenticate the gateway's own XML
// routes as the caller of /s3/sign: its own Authorization header, if it
// sent one (a session cookie goes along by itself).
func authHeaders(r *http.Request) map[string]string {
	if a := r.Header.Get("Authorization"); a != "" {
		return map[string]string{"Authorization": a}
	}
	return nil
}

// selfURL is the absolute URL of one of the Service's routes: the origin
// the browser called (its Origin header, when that names this host), else
// this host with the request's scheme, then BasePath and path.
func (s *Service) selfURL(r *http.Request, path string, q url.Values) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if o, err := url.Parse(r.Header.Get("Origin")); err == nil && o.Host == r.Host && (o.Scheme == "http" || o.Scheme == "https") {
		scheme = o.Scheme
	}
	return scheme + "://" + r.Host + s.cfg.BasePath + path + "?" + q.Encode()
}

// xmlCreate serves POST /s3/sign/uploads?ticket: Uppy's
// CreateMultipartUpload, with the file's type as its Content-Type. The
// upload id it answers is the upload token.
func (s *Service) xmlCreate(_ http.ResponseWriter, r *http.Request, user policy.Subject) (any, error) {
	var t createTicket
	if err := s.open(ticketContext, r.URL.Query().Get("ticket"), &t); err != nil {
		return nil, err
	}
	if t.User != user.ID {
		return nil, fmt.Errorf("%w: issued to another user", errInvalidToken)
	}
	if !s.now().Before(time.Unix(t.Expires, 0)) {
		return nil, errTokenExpired
	}
	resolved(r.Context(), t.Key, "")
	if err := s.authorize(user, policy.Upload, t.Key); err != nil {
		return nil, err
	}
	c, err := s.createUpload(r.Context(), user, t.Key, t.Name, r.Header.Get("Content-Type"), nil, 0, 0)
	if err != nil {
		return nil, err
	}
	return xmlDoc(xmlElem("InitiateMultipartUploadResult",
		xmlElem("Bucket", xmlEscape(s.cfg.Bucket))+
			xmlElem("Key", xmlEscape(c.Key))+
			xmlElem("UploadId", xmlEscape(s.signToken(c))))), nil
}

// xmlListParts serves GET /s3/sign/parts?uploadId&key: ListPartsResult.
func (s *Service) xmlListParts(_ http.ResponseWriter, r *http.Request, user policy.Subject) (any, error) {
	q := r.URL.Query()
	c, parts, err := s.companionParts(r.Context(), user, q.Get("uploadId"), q.Get("key"))
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	b.WriteString(xmlElem("Bucket", xmlEscape(s.cfg.Bucket)) + xmlElem("Key", xmlEscape(c.Key)) + xmlElem("UploadId", xmlEscape(q.Get("uploadId"))))
	for _, p := range parts {
		b.WriteString(xmlElem("Part",
			xmlElem("PartNumber", strconv.Itoa(int(aws.ToInt32(p.PartNumber))))+
				xmlElem("ETag", xmlEscape(trimETag(aws.ToString(p.ETag))))+
				xmlElem("Size", strconv.FormatInt(aws.ToInt64(p.Size), 10))))
	}
	return xmlDoc(xmlElem("ListPartsResult", b.String())), nil
}

// xmlComplete serves POST /s3/sign/complete?uploadId&key: completeUpload,
// ignoring the part list Uppy posts.
func (s *Service) xmlComplete(_ http.ResponseWriter, r *http.Request, user policy.Subject) (any, error) {
	q := r.URL.Query()
	c, done, err := s.companionFinish(r.Context(), user, q.Get("uploadId"), q.Get("key"))
	if err != nil {
		return nil, err
	}
	return xmlDoc(xmlElem("CompleteMultipartUploadResult",
		xmlElem("Location", xmlEscape(s.location(done, c.Key)))+
			xmlElem("Bucket", xmlEscape(s.cfg.Bucket))+
			xmlElem("Key", xmlEscape(c.Key))+
			xmlElem("ETag", xmlEscape(done.ETag)))), nil
}

// xmlAbort serves DELETE /s3/sign/abort?uploadId&key.
func (s *Service) xmlAbort(_ http.ResponseWriter, r *http.Request, user policy.Subject) (any, error) {
	q := r.URL.Query()
	if err := s.abortToken(r.Context(), user, q.Get("uploadId"), q.Get("key")); err != nil {
		return nil, err
	}
	return xmlDoc(nil), nil
}

func xmlElem(name, inner string) string { return "<" + name + ">" + inner + "</" + name + ">" }

// xmlEscape escapes text with the named entities Uppy's small XML parser
// decodes.
var xmlEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&apos;").Replace
