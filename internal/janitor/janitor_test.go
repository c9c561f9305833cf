package janitor_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/caddy-upload-gateway/upload-gateway/internal/janitor"
)

var now = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// ago returns the time d before now.
func ago(d time.Duration) time.Time { return now.Add(-d) }

func TestNewRejectsBadOptions(t *testing.T) {
	ok := janitor.Options{Bucket: "b", Prefixes: []string{"p/"}}
	tests := []struct {
		name   string
		api    janitor.API
		modify func(*janitor.Options)
	}{
		{"no client", nil, func(*janitor.Options) {}},
		{"no bucket", &fakeS3{}, func(o *janitor.Options) { o.Bucket = "" }},
		{"no prefixes", &fakeS3{}, func(o *janitor.Options) { o.Prefixes = nil }},
		{"empty prefix", &fakeS3{}, func(o *janitor.Options) { o.Prefixes = []string{"p/", ""} }},
		{"max age under a minute", &fakeS3{}, func(o *janitor.Options) { o.MaxAge = 59 * time.Second }},
		{"negative max age", &fakeS3{}, func(o *janitor.Options) { o.MaxAge = -time.Hour }},
		{"negative interval", &fakeS3{}, func(o *janitor.Options) { o.Interval = -time.Second }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := ok
			tt.modify(&opts)
			j, err := janitor.New(tt.api, opts)
			if !errors.Is(err, janitor.ErrInvalidOptions) {
				t.Errorf("New(%+v) = %v, %v; want ErrInvalidOptions", opts, j, err)
			}
		})
	}
	for _, maxAge := range []time.Duration{0, time.Minute, 48 * time.Hour} {
		opts := ok
		opts.MaxAge = maxAge
		if _, err := janitor.New(&fakeS3{}, opts); err != nil {
			t.Errorf("New with MaxAge %v: %v", maxAge, err)
		}
	}
}

func TestSweep(t *testing.T) {
	someErr := errors.New("connection reset")
	tests := []struct {
		name        string
		fake        *fakeS3
		opts        janitor.Options // Bucket, Now and OnSweep are set by the test
		want        janitor.Report  // Duration and Err are not compared
		wantErrs    []error         // each must be in Report.Err; none: Err must be nil
		wantAborted []string
		wantCalls   []string // compared when set
	}{
		{
			name: "age threshold",
			fake: &fakeS3{uploads: []upload{
				{key: "p/old", id: "u1", initiated: ago(25 * time.Hour), parts: []int64{5 << 20, 100}},
				{key: "p/exactly", id: "u2", initiated: ago(24 * time.Hour), parts: []int64{7}},
				{key: "p/just-over", id: "u3", initiated: ago(24*time.Hour + time.Nanosecond)},
				{key: "p/young", id: "u4", initiated: ago(time.Hour), parts: []int64{9}},
				{key: "p/no-date", id: "u5", parts: []int64{11}},
			}},
			opts:        janitor.Options{Prefixes: []string{"p/"}},
			want:        janitor.Report{Found: 2, Aborted: 2, OrphanBytes: 5<<20 + 100},
			wantAborted: []string{"u3", "u1"},
			wantCalls: []string{
				"List p/ after=/",
				"ListParts u3 after=", "Abort p/just-over u3",
				"ListParts u1 after=", "Abort p/old u1",
			},
		},
		{
			name: "paginates uploads",
			fake: &fakeS3{pageSize: 2, uploads: []upload{
				{key: "p/a", id: "u1", initiated: ago(48 * time.Hour)},
				{key: "p/a", id: "u2", initiated: ago(48 * time.Hour)},
				{key: "p/a", id: "u3", initiated: ago(48 * time.Hour)},
				{key: "p/b", id: "u4", initiated: ago(time.Hour)},
				{key: "p/c", id: "u5", initiated: ago(48 * time.Hour)},
			}},
			opts: janitor.Options{Prefixes: []string{"p/"}, DryRun: true},
			want: janitor.Report{Found: 4},
			wantCalls: []string{
				"List p/ after=/",
				"ListParts u1 after=", "ListParts u2 after=",
				"List p/ after=p/a/u2",
				"ListParts u3 after=",
				"List p/ after=p/b/u4",
				"ListParts u5 after=",
			},
		},
		{
			name: "paginates uploads while aborting them",
			fake: &fakeS3{pageSize: 2, uploads: []upload{
				{key: "p/a", id: "u1", initiated: ago(48 * time.Hour)},
				{key: "p/a", id: "u2", initiated: ago(48 * time.Hour)},
				{key: "p/b", id: "u3", initiated: ago(48 * time.Hour)},
				{key: "p/c", id: "u4", initiated: ago(48 * time.Hour)},
				{key: "p/d", id: "u5", initiated: ago(48 * time.Hour)},
			}},
			opts:        janitor.Options{Prefixes: []string{"p/"}},
			want:        janitor.Report{Found: 5, Aborted: 5},
			wantAborted: []string{"u1", "u2", "u3", "u4", "u5"},
		},
		{
			name: "paginates parts",
			fake: &fakeS3{partsPageSize: 2, uploads: []upload{
				{key: "p/a", id: "u1", initiated: ago(48 * time.Hour), parts: []int64{1, 2, 4, 8, 16}},
			}},
			opts:        janitor.Options{Prefixes: []string{"p/"}},
			want:        janitor.Report{Found: 1, Aborted: 1, OrphanBytes: 31},
			wantAborted: []string{"u1"},
			wantCalls: []string{
				"List p/ after=/",
				"ListParts u1 after=", "ListParts u1 after=2", "ListParts u1 after=4",
				"Abort p/a u1",
			},
		},
		{
			name: "reads at most ten pages of parts",
			fake: &fakeS3{partsPageSize: 1, uploads: []upload{
				{key: "p/a", id: "u1", initiated: ago(48 * time.Hour), parts: []int64{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
			}},
			opts:        janitor.Options{Prefixes: []string{"p/"}},
			want:        janitor.Report{Found: 1, Aborted: 1, OrphanBytes: 10},
			wantAborted: []string{"u1"},
		},
		{
			name: "never touches uploads outside the prefixes",
			fake: &fakeS3{ignorePrefix: true, uploads: []upload{
				{key: "other/a", id: "u1", initiated: ago(48 * time.Hour), parts: []int64{1}},
				{key: "p", id: "u2", initiated: ago(48 * time.Hour), parts: []int64{2}},
				{key: "p/a", id: "u3", initiated: ago(48 * time.Hour), parts: []int64{4}},
				{key: "q/a", id: "u4", initiated: ago(48 * time.Hour), parts: []int64{8}},
				{key: "r/a", id: "u5", initiated: ago(48 * time.Hour), parts: []int64{16}},
			}},
			opts:        janitor.Options{Prefixes: []string{"q/", "p/"}},
			want:        janitor.Report{Found: 2, Aborted: 2, OrphanBytes: 12},
			wantAborted: []string{"u3", "u4"},
		},
		{
			name: "overlapping prefixes are swept once",
			fake: &fakeS3{uploads: []upload{
				{key: "p/a/1", id: "u1", initiated: ago(48 * time.Hour), parts: []int64{1}},
				{key: "p/b", id: "u2", initiated: ago(48 * time.Hour), parts: []int64{2}},
			}},
			opts:        janitor.Options{Prefixes: []string{"p/a/", "p/", "p/"}},
			want:        janitor.Report{Found: 2, Aborted: 2, OrphanBytes: 3},
			wantAborted: []string{"u1", "u2"},
			wantCalls: []string{
				"List p/ after=/",
				"ListParts u1 after=", "Abort p/a/1 u1",
				"ListParts u2 after=", "Abort p/b u2",
			},
		},
		{
			name: "dry run measures but does not abort",
			fake: &fakeS3{uploads: []upload{
				{key: "p/a", id: "u1", initiated: ago(48 * time.Hour), parts: []int64{3, 4}},
				{key: "p/b", id: "u2", initiated: ago(time.Hour), parts: []int64{5}},
			}},
			opts: janitor.Options{Prefixes: []string{"p/"}, DryRun: true},
			want: janitor.Report{Found: 1, OrphanBytes: 7},
			wantCalls: []string{
				"List p/ after=/",
				"ListParts u1 after=",
			},
		},
		{
			name: "NoSuchUpload counts as aborted",
			fake: &fakeS3{
				uploads: []upload{
					{key: "p/a", id: "u1", initiated: ago(48 * time.Hour)},
					{key: "p/b", id: "u2", initiated: ago(48 * time.Hour)},
				},
				abortErr: map[string]error{
					"u1": fmt.Errorf("operation error S3: AbortMultipartUpload: %w", &types.NoSuchUpload{}),
					"u2": &smithy.GenericAPIError{Code: "NoSuchUpload", Message: "gone"},
				},
			},
			opts: janitor.Options{Prefixes: []string{"p/"}},
			want: janitor.Report{Found: 2, Aborted: 2},
		},
		{
			name: "upload gone before its parts are listed",
			fake: &fakeS3{
				uploads:  []upload{{key: "p/a", id: "u1", initiated: ago(48 * time.Hour)}},
				partsErr: map[string]error{"u1": &types.NoSuchUpload{}},
				abortErr: map[string]error{"u1": &types.NoSuchUpload{}},
			},
			opts: janitor.Options{Prefixes: []string{"p/"}},
			want: janitor.Report{Found: 1, Aborted: 1},
		},
		{
			name: "abort failures are counted and the sweep goes on",
			fake: &fakeS3{
				uploads: []upload{
					{key: "p/a", id: "u1", initiated: ago(48 * time.Hour), parts: []int64{1}},
					{key: "p/b", id: "u2", initiated: ago(48 * time.Hour), parts: []int64{2}},
					{key: "p/c", id: "u3", initiated: ago(48 * time.Hour), parts: []int64{4}},
				},
				abortErr: map[string]error{
					"u1": &smithy.GenericAPIError{Code: "AccessDenied"},
					"u2": someErr,
				},
			},
			opts:        janitor.Options{Prefixes: []string{"p/"}},
			want:        janitor.Report{Found: 3, Aborted: 1, Failed: 2, OrphanBytes: 7},
			wantErrs:    []error{janitor.ErrAbort},
			wantAborted: []string{"u3"},
		},
		{
			name: "a prefix that cannot be listed does not stop the others",
			fake: &fakeS3{
				uploads: []upload{
					{key: "a/1", id: "u1", initiated: ago(48 * time.Hour)},
					{key: "b/1", id: "u2", initiated: ago(48 * time.Hour)},
				},
				listErr: map[string]error{"a/": someErr},
			},
			opts:        janitor.Options{Prefixes: []string{"a/", "b/"}},
			want:        janitor.Report{Found: 1, Aborted: 1},
			wantErrs:    []error{janitor.ErrList},
			wantAborted: []string{"u2"},
		},
		{
			name: "an orphan whose parts cannot be listed is still aborted",
			fake: &fakeS3{
				uploads: []upload{
					{key: "p/a", id: "u1", initiated: ago(48 * time.Hour), parts: []int64{1}},
					{key: "p/b", id: "u2", initiated: ago(48 * time.Hour), parts: []int64{2}},
				},
				partsErr: map[string]error{"u1": someErr},
			},
			opts:        janitor.Options{Prefixes: []string{"p/"}},
			want:        janitor.Report{Found: 2, Aborted: 2, OrphanBytes: 2},
			wantErrs:    []error{janitor.ErrList},
			wantAborted: []string{"u1", "u2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var reports []janitor.Report
			opts := tt.opts
			opts.Bucket, opts.Now = "bucket", func() time.Time { return now }
			opts.OnSweep = func(r janitor.Report) { reports = append(reports, r) }
			j, err := janitor.New(tt.fake, opts)
			if err != nil {
				t.Fatal(err)
			}

			got := j.Sweep(context.Background())

			if got.Found != tt.want.Found || got.Aborted != tt.want.Aborted || got.Failed != tt.want.Failed || got.OrphanBytes != tt.want.OrphanBytes {
				t.Errorf("Sweep = %+v, want Found %d, Aborted %d, Failed %d, OrphanBytes %d",
					got, tt.want.Found, tt.want.Aborted, tt.want.Failed, tt.want.OrphanBytes)
			}
			if len(tt.wantErrs) == 0 && got.Err != nil {
				t.Errorf("Err = %v, want nil", got.Err)
			}
			for _, want := range tt.wantErrs {
				if !errors.Is(got.Err, want) {
					t.Errorf("Err = %v, want it to wrap %v", got.Err, want)
				}
			}
			if aborted := tt.fake.abortedIDs(); !slices.Equal(aborted, tt.wantAborted) {
				t.Errorf("aborted %q, want %q", aborted, tt.wantAborted)
			}
			if calls := tt.fake.callLog(); tt.wantCalls != nil && !slices.Equal(calls, tt.wantCalls) {
				t.Errorf("calls:\n got %q\nwant %q", calls, tt.wantCalls)
			}
			if len(reports) != 1 || reports[0].Found != got.Found || reports[0].Aborted != got.Aborted || reports[0].OrphanBytes != got.OrphanBytes {
				t.Errorf("OnSweep got %+v, want one report equal to %+v", reports, got)
			}
		})
	}
}

// orphans returns n orphans under p/.
func orphans(n int) []upload {
	var us []upload
	for i := range n {
		us = append(us, upload{key: fmt.Sprintf("p/%03d", i), id: fmt.Sprintf("u%03d", i), initiated: ago(48 * time.Hour), parts: []int64{1}})
	}
	return us
}

func TestSweepStopsWhenCancelled(t *testing.T) {
	t.Run("between aborts", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		fake := &fakeS3{pageSize: 2, uploads: orphans(20)}
		aborts := 0
		fake.hook = func(_ context.Context, op string) error {
			if op == "Abort" {
				if aborts++; aborts == 3 {
					cancel()
				}
			}
			return nil
		}
		j, err := janitor.New(fake, janitor.Options{Bucket: "b", Prefixes: []string{"p/"}, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}

		r := j.Sweep(ctx)

		if !errors.Is(r.Err, context.Canceled) {
			t.Errorf("Err = %v, want context.Canceled", r.Err)
		}
		if r.Aborted != 3 || r.Failed != 0 {
			t.Errorf("Aborted %d, Failed %d after cancelling on the 3rd abort; want 3, 0", r.Aborted, r.Failed)
		}
		if calls := fake.callLog(); calls[len(calls)-1] != "Abort p/002 u002" {
			t.Errorf("calls after cancel: %q", calls)
		}
	})
	t.Run("during a call", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			fake := &fakeS3{uploads: orphans(3)}
			fake.hook = func(ctx context.Context, op string) error {
				<-ctx.Done() // a hung S3 call
				return ctx.Err()
			}
			j, err := janitor.New(fake, janitor.Options{Bucket: "b", Prefixes: []string{"p/", "q/"}, Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan janitor.Report)
			go func() { done <- j.Sweep(ctx) }()

			synctest.Wait() // Sweep is blocked in the hung listing
			cancel()

			r := <-done
			if !errors.Is(r.Err, context.Canceled) || r.Found != 0 {
				t.Errorf("Sweep = %+v, want no orphan found and context.Canceled", r)
			}
			if calls := fake.callLog(); len(calls) != 1 {
				t.Errorf("calls %q, want only the first listing", calls)
			}
		})
	})
}

func TestConcurrentSweepsAbortEachOrphanOnce(t *testing.T) {
	fake := &fakeS3{pageSize: 3, uploads: orphans(40)}
	opts := janitor.Options{Bucket: "b", Prefixes: []string{"p/"}, Now: func() time.Time { return now }}
	const instances = 4
	reports := make([]janitor.Report, instances)
	var wg sync.WaitGroup
	for i := range instances {
		j, err := janitor.New(fake, opts)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { reports[i] = j.Sweep(context.Background()) })
	}
	wg.Wait()

	if n := len(fake.abortedIDs()); n != 40 {
		t.Errorf("%d uploads aborted, want 40", n)
	}
	for i, r := range reports {
		if r.Err != nil || r.Failed != 0 || r.Aborted != r.Found {
			t.Errorf("instance %d: %+v, want every orphan it found aborted and no error", i, r)
		}
	}
}

func TestRunSweepsEveryIntervalUntilCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		sweeps := make(chan janitor.Report, 100)
		fake := &fakeS3{uploads: orphans(1)}
		j, err := janitor.New(fake, janitor.Options{
			Bucket: "b", Prefixes: []string{"p/"}, Interval: 5 * time.Minute,
			Now:     func() time.Time { return now },
			OnSweep: func(r janitor.Report) { sweeps <- r },
		})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			j.Run(ctx)
		}()

		start := time.Now()
		for i := range 3 {
			r := <-sweeps
			if (i == 0 && r.Aborted != 1) || (i > 0 && r.Found != 0) {
				t.Errorf("sweep %d: %+v", i, r)
			}
		}
		// The first sweep waits up to a tenth of the interval, then one each interval.
		if took := time.Since(start); took < 10*time.Minute || took > 11*time.Minute {
			t.Errorf("3 sweeps took %v at a 5m interval, want 10m..11m", took)
		}
		cancel()
		<-done
		n := len(sweeps)
		time.Sleep(time.Hour)
		if len(sweeps) != n {
			t.Errorf("a sweep ran after Run returned")
		}
	})
}

func TestRunStopsWhileWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		fake := &fakeS3{}
		// With a one-day interval the first sweep waits for up to 2.4 hours.
		j, err := janitor.New(fake, janitor.Options{Bucket: "b", Prefixes: []string{"p/"}, Interval: 24 * time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			j.Run(ctx)
		}()
		synctest.Wait() // Run is waiting for its first sweep
		cancel()
		<-done
		if calls := fake.callLog(); len(calls) != 0 {
			t.Errorf("calls %q while waiting for the first sweep", calls)
		}
	})
}

func TestRunReturnsAtOnceWhenAlreadyCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	fake := &fakeS3{}
	j, err := janitor.New(fake, janitor.Options{Bucket: "b", Prefixes: []string{"p/"}, Interval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	j.Run(ctx)
	if calls := fake.callLog(); len(calls) != 0 {
		t.Errorf("calls %q after a cancelled context", calls)
	}
}

var _ janitor.API = (*fakeS3)(nil)
