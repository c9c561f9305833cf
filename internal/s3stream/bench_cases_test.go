package s3stream

// benchCases of BenchmarkUploadToSink: payload signing as the gateway's
// payload_signing (unsigned for a loopback endpoint, signed), with and
// without the full-object SHA-256.
var benchCases = []struct {
	name     string
	unsigned bool
	opts     Options
}{
	{"unsigned", true, Options{}},
	{"unsigned+sha256", true, Options{SHA256: true}},
	{"signed", false, Options{}},
	{"signed+sha256", false, Options{SHA256: true}},
}
