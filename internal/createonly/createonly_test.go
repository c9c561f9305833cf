package createonly

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// fakeS3 answers the probe's writes with puts[i] (nil: stored) and records
// the calls.
type fakeS3 struct {
	puts      []error
	versioned bool // answer each stored write with a version id v<call>
	calls     []string
	ifMatch   []string
}

func (f *fakeS3) PutObject(_ context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	f.calls = append(f.calls, "put "+aws.ToString(in.Key))
	f.ifMatch = append(f.ifMatch, aws.ToString(in.IfNoneMatch))
	if i := len(f.calls) - 1; i < len(f.puts) && f.puts[i] != nil {
		return nil, f.puts[i]
	}
	if f.versioned {
		return &s3.PutObjectOutput{VersionId: aws.String(fmt.Sprintf("v%d", len(f.calls)))}, nil
	}
	return &s3.PutObjectOutput{}, nil
}

func (f *fakeS3) DeleteObject(_ context.Context, in *s3.DeleteObjectInput, _ ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	call := "delete " + aws.ToString(in.Key)
	if in.VersionId != nil {
		call += "?versionId=" + *in.VersionId
	}
	f.calls = append(f.calls, call)
	return &s3.DeleteObjectOutput{}, nil
}

func apiErr(code string) error { return &smithy.GenericAPIError{Code: code, Message: code} }

func TestProbe(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		puts       []error
		want       Support
		wantErr    bool
		wantDelete bool
	}{
		{"honoured", []error{nil, apiErr("PreconditionFailed")}, Supported, false, true},
		{"honoured, concurrent write conflict", []error{nil, apiErr("ConditionalRequestConflict")}, Supported, false, true},
		{"ignored: the second write overwrites", []error{nil, nil}, Unsupported, false, true},
		{"refused as not implemented", []error{apiErr("NotImplemented")}, Unsupported, true, false},
		{"server down", []error{errors.New("connection refused")}, Unknown, true, false},
		{"access denied", []error{apiErr("AccessDenied")}, Unknown, true, false},
		{"second write fails otherwise", []error{nil, apiErr("InternalError")}, Unknown, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeS3{puts: tt.puts}
			got, err := Probe(context.Background(), f, s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("files/.probe/1")})
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("Probe = %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
			deleted := len(f.calls) > 0 && f.calls[len(f.calls)-1] == "delete files/.probe/1"
			if deleted != tt.wantDelete {
				t.Errorf("calls %v: deleted %v, want %v", f.calls, deleted, tt.wantDelete)
			}
			for _, v := range f.ifMatch {
				if v != "*" {
					t.Errorf("a probe write without If-None-Match: *: %q", v)
				}
			}
		})
	}
	if _, err := Probe(context.Background(), &fakeS3{}, s3.PutObjectInput{}); err == nil {
		t.Error("a probe without bucket and key")
	}
}

// In a versioned bucket the probe deletes the versions it wrote, not just
// the key (which would only add a delete marker).
func TestProbeDeletesItsVersions(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		puts []error
		want []string
	}{
		{"honoured", []error{nil, apiErr("PreconditionFailed")}, []string{"delete k?versionId=v1"}},
		{"ignored", []error{nil, nil}, []string{"delete k?versionId=v1", "delete k?versionId=v2"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeS3{puts: tt.puts, versioned: true}
			if _, err := Probe(context.Background(), f, s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("k")}); err != nil {
				t.Fatal(err)
			}
			var deletes []string
			for _, c := range f.calls {
				if strings.HasPrefix(c, "delete") {
					deletes = append(deletes, c)
				}
			}
			if !slices.Equal(deletes, tt.want) {
				t.Errorf("deletes %q, want %q", deletes, tt.want)
			}
		})
	}
}

// The detector probes once, on first use, and shares the answer with every
// caller; concurrent first callers wait for the one probe.
func TestDetectorProbesOnceOnFirstUse(t *testing.T) {
	t.Parallel()
	var probes atomic.Int32
	release := make(chan struct{})
	var reported []Support
	d := &Detector{
		Probe: func(context.Context) (Support, error) {
			probes.Add(1)
			<-release
			return Supported, nil
		},
		Report: func(s Support, _ error) { reported = append(reported, s) },
	}
	if probes.Load() != 0 {
		t.Fatal("probed before first use")
	}
	var wg sync.WaitGroup
	results := make([]bool, 5)
	for i := range results {
		wg.Go(func() { results[i] = d.Supported(context.Background()) })
	}
	time.Sleep(20 * time.Millisecond)
	close(release)
	wg.Wait()
	for i, r := range results {
		if !r {
			t.Errorf("caller %d: false", i)
		}
	}
	if !d.Supported(context.Background()) || probes.Load() != 1 || len(reported) != 1 || reported[0] != Supported {
		t.Errorf("%d probes, reported %v", probes.Load(), reported)
	}
}

// An undecided probe answers false and is retried after RetryAfter; a
// caller whose context ends stops waiting.
func TestDetectorRetriesUndecided(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	answer := Unknown
	var probes int
	d := &Detector{
		Probe: func(context.Context) (Support, error) {
			probes++
			if answer == Unknown {
				return Unknown, errors.New("s3 down")
			}
			return answer, nil
		},
		RetryAfter: time.Minute,
		now:        func() time.Time { return now },
	}
	if d.Supported(context.Background()) {
		t.Fatal("supported while unknown")
	}
	answer = Unsupported
	now = now.Add(30 * time.Second)
	if d.Supported(context.Background()) || probes != 1 {
		t.Fatalf("probed again before RetryAfter: %d probes", probes)
	}
	now = now.Add(31 * time.Second)
	if d.Supported(context.Background()) || probes != 2 {
		t.Fatalf("%d probes after RetryAfter", probes)
	}
	now = now.Add(time.Hour)
	d.Supported(context.Background())
	if probes != 2 {
		t.Errorf("a decided answer was probed again: %d probes", probes)
	}

	slow := &Detector{Probe: func(ctx context.Context) (Support, error) {
		<-ctx.Done()
		return Unknown, ctx.Err()
	}, Timeout: time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if slow.Supported(ctx) {
		t.Error("a caller that gave up got true")
	}
}
