package roles_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/caddy-upload-gateway/upload-gateway/internal/roles"
)

func TestRank(t *testing.T) {
	t.Parallel()
	ordered := []roles.Role{roles.None, roles.Viewer, roles.Uploader, roles.Admin}
	for i, r := range ordered {
		if got := r.Rank(); got != i {
			t.Errorf("%v.Rank() = %d, want %d", r, got, i)
		}
		for j, o := range ordered {
			if got, want := r.AtLeast(o), i >= j; got != want {
				t.Errorf("%v.AtLeast(%v) = %v, want %v", r, o, got, want)
			}
		}
	}
	if got := roles.Role("superuser").Rank(); got != 0 {
		t.Errorf("unknown role Rank() = %d, want 0", got)
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    roles.Role
		wantErr bool
	}{
		{"viewer", roles.Viewer, false},
		{"uploader", roles.Uploader, false},
		{"admin", roles.Admin, false},
		{"none", roles.None, false},
		{"", roles.None, false},
		{"Admin", roles.None, true},
		{"admins", roles.None, true},
		{" admin", roles.None, true},
		{"root", roles.None, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := roles.Parse(tt.in)
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Fatalf("Parse(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
			if err != nil && !errors.Is(err, roles.ErrUnknownRole) {
				t.Errorf("error %v does not match ErrUnknownRole", err)
			}
		})
	}
}

func TestResolve(t *testing.T) {
	t.Parallel()
	custom := map[string]roles.Role{"gw-admins": roles.Admin, "gw-readers": roles.Viewer}
	tests := []struct {
		name       string
		mapper     roles.Mapper
		claims     map[string]any
		want       roles.Role
		wantGroups []string
	}{
		{
			name:       "single group",
			claims:     map[string]any{"cognito:groups": []any{"uploaders"}},
			want:       roles.Uploader,
			wantGroups: []string{"uploaders"},
		},
		{
			name:       "multiple groups: highest wins",
			claims:     map[string]any{"cognito:groups": []any{"viewers", "admin", "uploader"}},
			want:       roles.Admin,
			wantGroups: []string{"viewers", "admin", "uploader"},
		},
		{
			name:       "unknown groups are ignored",
			claims:     map[string]any{"cognito:groups": []any{"marketing", "viewer", "us-east-1_Pool_Google"}},
			want:       roles.Viewer,
			wantGroups: []string{"marketing", "viewer", "us-east-1_Pool_Google"},
		},
		{
			name:       "only unknown groups: Default",
			mapper:     roles.Mapper{Default: roles.Viewer},
			claims:     map[string]any{"cognito:groups": []any{"marketing"}},
			want:       roles.Viewer,
			wantGroups: []string{"marketing"},
		},
		{
			name:   "missing claim: Default None",
			claims: map[string]any{"sub": "u1"},
			want:   roles.None,
		},
		{
			name:   "missing claim: configured Default",
			mapper: roles.Mapper{Default: roles.Viewer},
			claims: map[string]any{"sub": "u1"},
			want:   roles.Viewer,
		},
		{
			name:   "nil claims",
			want:   roles.None,
			claims: nil,
		},
		{
			name:       "Default is a floor",
			mapper:     roles.Mapper{Default: roles.Uploader},
			claims:     map[string]any{"cognito:groups": []any{"viewers"}},
			want:       roles.Uploader,
			wantGroups: []string{"viewers"},
		},
		{
			name:       "string claim, space separated",
			claims:     map[string]any{"cognito:groups": "viewers uploaders"},
			want:       roles.Uploader,
			wantGroups: []string{"viewers", "uploaders"},
		},
		{
			name:       "string claim, comma separated with spaces",
			claims:     map[string]any{"cognito:groups": "viewers, admins,,uploader"},
			want:       roles.Admin,
			wantGroups: []string{"viewers", "admins", "uploader"},
		},
		{
			name:       "[]string claim",
			claims:     map[string]any{"cognito:groups": []string{"viewer"}},
			want:       roles.Viewer,
			wantGroups: []string{"viewer"},
		},
		{
			name:       "custom claim name",
			mapper:     roles.Mapper{Claim: "roles", Groups: custom},
			claims:     map[string]any{"roles": []any{"gw-readers"}, "cognito:groups": []any{"admins"}},
			want:       roles.Viewer,
			wantGroups: []string{"gw-readers"},
		},
		{
			name:       "custom groups replace the defaults",
			mapper:     roles.Mapper{Groups: custom},
			claims:     map[string]any{"cognito:groups": []any{"admins", "gw-admins"}},
			want:       roles.Admin,
			wantGroups: []string{"admins", "gw-admins"},
		},
		{
			name:       "empty Groups maps nothing",
			mapper:     roles.Mapper{Groups: map[string]roles.Role{}},
			claims:     map[string]any{"cognito:groups": []any{"admins"}},
			want:       roles.None,
			wantGroups: []string{"admins"},
		},
		{
			name:       "case sensitive: Admins is not admins",
			claims:     map[string]any{"cognito:groups": []any{"Admins", "ADMIN", "Viewers"}},
			want:       roles.None,
			wantGroups: []string{"Admins", "ADMIN", "Viewers"},
		},
		{
			name:       "no trimming inside arrays",
			claims:     map[string]any{"cognito:groups": []any{" admins", "admins "}},
			want:       roles.None,
			wantGroups: []string{" admins", "admins "},
		},
		{
			name:       "duplicates and non-strings dropped",
			claims:     map[string]any{"cognito:groups": []any{"viewers", 42, nil, "viewers", "", true}},
			want:       roles.Viewer,
			wantGroups: []string{"viewers"},
		},
		{
			name:   "claim of another type",
			mapper: roles.Mapper{Default: roles.Viewer},
			claims: map[string]any{"cognito:groups": map[string]any{"admins": true}},
			want:   roles.Viewer,
		},
		{
			name:   "empty array",
			claims: map[string]any{"cognito:groups": []any{}},
			want:   roles.None,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, groups := tt.mapper.Resolve(tt.claims)
			if got != tt.want {
				t.Errorf("role = %v, want %v", got, tt.want)
			}
			if !reflect.DeepEqual(groups, tt.wantGroups) {
				t.Errorf("groups = %q, want %q", groups, tt.wantGroups)
			}
		})
	}
}

func TestMapperValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		mapper  roles.Mapper
		wantErr bool
	}{
		{"zero value", roles.Mapper{}, false},
		{"custom", roles.Mapper{Claim: "roles", Groups: map[string]roles.Role{"a": roles.Admin}, Default: roles.Viewer}, false},
		{"bad default", roles.Mapper{Default: "root"}, true},
		{"bad group role", roles.Mapper{Groups: map[string]roles.Role{"a": "Admin"}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.mapper.Validate()
			if (err != nil) != tt.wantErr {
				t.Fatalf("Validate() = %v, want error %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, roles.ErrUnknownRole) {
				t.Errorf("error %v does not match ErrUnknownRole", err)
			}
		})
	}
}

func TestDefaultGroupsIsACopy(t *testing.T) {
	t.Parallel()
	g := roles.DefaultGroups()
	g["admins"] = roles.Viewer
	if r, _ := (roles.Mapper{}).Resolve(map[string]any{"cognito:groups": "admins"}); r != roles.Admin {
		t.Errorf("changing DefaultGroups() affected the zero Mapper: role %v", r)
	}
}

func TestNewMapper(t *testing.T) {
	m, err := roles.NewMapper("roles", map[string]string{"staff": "uploader", "guests": "none"}, "viewer")
	if err != nil {
		t.Fatal(err)
	}
	if m.Claim != "roles" || m.Default != roles.Viewer || m.Groups["staff"] != roles.Uploader || m.Groups["guests"] != roles.None {
		t.Errorf("NewMapper = %+v", m)
	}
	if m, err := roles.NewMapper("", nil, "none"); err != nil || m.Groups != nil || m.Default != roles.None {
		t.Errorf("NewMapper with defaults = %+v, %v", m, err)
	}
	for _, bad := range []struct {
		groups map[string]string
		def    string
	}{{map[string]string{"g": "root"}, ""}, {nil, "Admin"}} {
		if _, err := roles.NewMapper("", bad.groups, bad.def); !errors.Is(err, roles.ErrUnknownRole) {
			t.Errorf("NewMapper(%v, %q) = %v, want roles.ErrUnknownRole", bad.groups, bad.def, err)
		}
	}
}
