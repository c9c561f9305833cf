package shared

import (
	"reflect"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestStatusCode(t *testing.T) {
	tests := []struct {
		in      string
		want    int
		wantErr bool
	}{
		{"5xx", 5, false}, {"4XX", 4, false}, {"500", 500, false}, {"422", 422, false},
		{"6xx", 0, true}, {"99", 0, true}, {"abc", 0, true}, {"600", 0, true},
	}
	for _, tt := range tests {
		got, err := StatusCode(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("StatusCode(%q) = %d, %v; want %d, err %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

// blockTarget collects what the block helpers read.
type blockTarget struct {
	S3      S3Config
	Names   []string
	Max     int
	Size    int64
	Rate    int64
	Janitor *JanitorConfig
}

func (b *blockTarget) unmarshal(d *caddyfile.Dispenser) error {
	return Block(d, &b.S3, func(name string) error {
		switch name {
		case "names":
			return Strings(d, &b.Names)
		case "max":
			return Off(d, &b.Max, Integer)
		case "size":
			return Off(d, &b.Size, Size)
		case "rate":
			return Off(d, &b.Rate, Rate)
		case "janitor":
			var err error
			b.Janitor, err = UnmarshalJanitor(d)
			return err
		}
		return Unrecognized(d)
	})
}

func TestBlockHelpers(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		want    blockTarget
		wantErr string
	}{
		{"all", "d {\nbucket b\nnames a b\nnames c\nmax 3\nsize 1KiB\njanitor {\ndry_run\n}\n}",
			blockTarget{S3: S3Config{Bucket: "b"}, Names: []string{"a", "b", "c"}, Max: 3, Size: 1024, Janitor: &JanitorConfig{DryRun: true}}, ""},
		{"off", "d {\nmax off\nsize off\nrate off\n}", blockTarget{Max: -1, Size: -1, Rate: -1}, ""},
		{"rate", "d {\nrate 8KiB/s\n}", blockTarget{Rate: 8192}, ""},
		{"rate without /s", "d {\nrate 16KiB\n}", blockTarget{Rate: 16384}, ""},
		{"bad rate", "d {\nrate fast\n}", blockTarget{}, "invalid rate 'fast'"},
		{"bad size", "d {\nsize big\n}", blockTarget{}, "invalid byte size 'big'"},
		{"bad duration", "d {\njanitor {\ninterval soon\n}\n}", blockTarget{}, "invalid duration 'soon'"},
		{"bad number", "d {\nmax many\n}", blockTarget{}, "invalid number 'many'"},
		{"argument on the directive", "d x {\n}", blockTarget{}, "wrong argument count"},
		{"unknown", "d {\nfoo\n}", blockTarget{}, "unrecognized subdirective foo"},
		{"no names", "d {\nnames\n}", blockTarget{}, "wrong argument count"},
		{"off and more", "d {\nmax off 2\n}", blockTarget{}, "wrong argument count"},
		{"janitor argument", "d {\njanitor x {\n}\n}", blockTarget{}, "wrong argument count"},
		{"janitor unknown", "d {\njanitor {\nfoo\n}\n}", blockTarget{}, "unrecognized janitor option foo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got blockTarget
			err := got.unmarshal(caddyfile.NewTestDispenser(tt.input))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
