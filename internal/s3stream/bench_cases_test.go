package s3stream

import "net/http"

// benchCases of BenchmarkUploadToSink: payload signing as the gateway's
// payload_signing (unsigned for a loopback endpoint, signed), with and
// without the full-object SHA-256, and with the plain transport instead of
// the gateway's (WrapDial).
var benchCases = []benchCase{
	{"unsigned", true, Options{}, false},
	{"unsigned-plainconn", true, Options{}, true},
	{"unsigned+sha256", true, Options{SHA256: true}, false},
	{"signed", false, Options{}, false},
	{"signed+sha256", false, Options{SHA256: true}, false},
}

type benchCase struct {
	name     string
	unsigned bool
	opts     Options
	plain    bool // net/http's own connections, without WrapDial
}

// transport is the S3 client's transport of a case: the gateway's buffer
// sizes, and its connections unless plain.
func (tc benchCase) transport() *http.Transport {
	tr := &http.Transport{WriteBufferSize: 256 << 10, ReadBufferSize: 64 << 10, MaxIdleConnsPerHost: 16}
	if !tc.plain {
		tr.DialContext = WrapDial(nil)
	}
	return tr
}
