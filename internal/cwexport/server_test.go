package cwexport

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/fxamacker/cbor/v2"
)

// The fake CloudWatch below speaks what the real client sends: Smithy RPC
// v2 CBOR. PutMetricData is a POST to
// /service/GraniteServiceVersion20100801/operation/PutMetricData with
// Content-Type application/cbor and Smithy-Protocol rpc-v2-cbor; the
// body is one CBOR map (indefinite length), numbers as float64,
// timestamps as tag 1 around float64 epoch seconds, gzipped
// (Content-Encoding: gzip) when at least RequestMinCompressSizeBytes
// long.

// putInput is the CBOR shape of PutMetricDataInput.
type putInput struct {
	Namespace  string      `cbor:"Namespace"`
	MetricData []wireDatum `cbor:"MetricData"`
}

type wireDatum struct {
	MetricName        string       `cbor:"MetricName"`
	Unit              string       `cbor:"Unit,omitempty"`
	Dimensions        []wireDim    `cbor:"Dimensions,omitempty"`
	Timestamp         time.Time    `cbor:"Timestamp,omitempty"`
	Value             *float64     `cbor:"Value,omitempty"`
	Values            []float64    `cbor:"Values,omitempty"`
	Counts            []float64    `cbor:"Counts,omitempty"`
	StatisticValues   *wireStatSet `cbor:"StatisticValues,omitempty"`
	StorageResolution *int         `cbor:"StorageResolution,omitempty"`
}

type wireDim struct {
	Name  string `cbor:"Name"`
	Value string `cbor:"Value"`
}

type wireStatSet struct {
	SampleCount float64 `cbor:"SampleCount"`
	Sum         float64 `cbor:"Sum"`
	Minimum     float64 `cbor:"Minimum"`
	Maximum     float64 `cbor:"Maximum"`
}

// strictCBOR fails on any member the structs above do not name, so a
// change of the wire shape shows up.
var strictCBOR = func() cbor.DecMode {
	dm, err := cbor.DecOptions{ExtraReturnErrors: cbor.ExtraDecErrorUnknownField}.DecMode()
	if err != nil {
		panic(err)
	}
	return dm
}()

// request is what the fake received in one call.
type request struct {
	At              time.Time
	Path            string
	Header          http.Header
	ContentEncoding string
	WireBytes       int // body as sent, maybe gzipped
	CBORBytes       int // body after gunzip
	Input           putInput
}

// fakeCloudWatch is an in-process endpoint that decodes PutMetricData
// calls: the client from newClient hands each request to its handler, with
// no network, so tests can run in a synctest bubble. respond, when set,
// answers call n (from 0) and may block; by default every call succeeds.
type fakeCloudWatch struct {
	URL  string
	t    *testing.T
	down atomic.Bool // set by Close: requests fail as if refused

	mu      sync.Mutex
	reqs    []request
	respond func(w http.ResponseWriter, r *http.Request, n int)
	arrived chan int // gets the number of each call as it arrives
}

func newFakeCloudWatch(t *testing.T, respond func(w http.ResponseWriter, r *http.Request, n int)) *fakeCloudWatch {
	t.Helper()
	return &fakeCloudWatch{URL: "http://monitoring.test", t: t, respond: respond, arrived: make(chan int, 1000)}
}

// Close makes the endpoint unreachable.
func (f *fakeCloudWatch) Close() { f.down.Store(true) }

// RoundTrip answers r with f's handler.
func (f *fakeCloudWatch) RoundTrip(r *http.Request) (*http.Response, error) {
	if f.down.Load() {
		return nil, errors.New("connection refused")
	}
	rec := httptest.NewRecorder()
	f.serve(rec, r)
	if err := r.Context().Err(); err != nil {
		return nil, err
	}
	return rec.Result(), nil
}

func (f *fakeCloudWatch) serve(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		f.t.Errorf("reading request body: %v", err)
		return
	}
	body := raw
	enc := r.Header.Get("Content-Encoding")
	switch enc {
	case "":
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			f.t.Errorf("Content-Encoding gzip but body is not: %v", err)
			http.Error(w, "bad gzip", http.StatusBadRequest)
			return
		}
		if body, err = io.ReadAll(zr); err != nil {
			f.t.Errorf("gunzip: %v", err)
			return
		}
	default:
		f.t.Errorf("unexpected Content-Encoding %q", enc)
	}
	var in putInput
	if err := strictCBOR.Unmarshal(body, &in); err != nil {
		f.t.Errorf("decoding CBOR body: %v", err)
		http.Error(w, "bad cbor", http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	n := len(f.reqs)
	f.reqs = append(f.reqs, request{
		At: time.Now(), Path: r.URL.Path, Header: r.Header.Clone(), ContentEncoding: enc,
		WireBytes: len(raw), CBORBytes: len(body), Input: in,
	})
	respond := f.respond
	f.mu.Unlock()
	f.arrived <- n
	if respond != nil {
		respond(w, r, n)
		return
	}
	writeOK(w)
}

// requests returns a copy of the calls so far.
func (f *fakeCloudWatch) requests() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.reqs...)
}

// datums returns every datum received, in order.
func (f *fakeCloudWatch) datums() []wireDatum {
	var ds []wireDatum
	for _, r := range f.requests() {
		ds = append(ds, r.Input.MetricData...)
	}
	return ds
}

// writeOK answers like CloudWatch: an empty CBOR map.
func writeOK(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/cbor")
	w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
	w.WriteHeader(http.StatusOK)
	w.Write([]byte{0xa0})
}

// writeError answers with an rpcv2 CBOR error: __type and message in the
// body, and the query-compatible code and fault in X-Amzn-Query-Error.
func writeError(w http.ResponseWriter, status int, typ, queryError string) {
	b, err := cbor.Marshal(map[string]string{
		"__type":  "com.amazonaws.cloudwatch#" + typ,
		"message": "fake " + strings.ToLower(typ),
	})
	if err != nil {
		panic(err)
	}
	w.Header().Set("Content-Type", "application/cbor")
	w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
	if queryError != "" {
		w.Header().Set("X-Amzn-Query-Error", queryError)
	}
	w.WriteHeader(status)
	w.Write(b)
}

// newClient returns the real SDK client pointed at the fake, built as the
// gateway builds it except for the in-process transport; opts adjust it.
func newClient(f *fakeCloudWatch, opts ...func(*cloudwatch.Options)) *cloudwatch.Client {
	return cloudwatch.New(cloudwatch.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(f.URL),
		HTTPClient:   &http.Client{Transport: f},
		Credentials:  credentials.NewStaticCredentialsProvider("a", "b", ""),
	}, opts...)
}

// noSDKRetries leaves retrying to the exporter, so tests count its own
// attempts (and do not wait for the SDK's backoff of up to 20s).
func noSDKRetries(o *cloudwatch.Options) { o.RetryMaxAttempts = 1 }
