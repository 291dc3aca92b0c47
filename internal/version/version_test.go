package version

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestGet(t *testing.T) {
	vcs := func(rev, modified string) *debug.BuildInfo {
		return &debug.BuildInfo{
			Main:     debug.Module{Path: "github.com/sworn-id/sworn", Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}},
		}
	}
	tests := []struct {
		name                string
		ldVersion, ldCommit string
		bi                  *debug.BuildInfo
		want                Info
	}{
		{
			name:      "linker flags win over the build info",
			ldVersion: "v1.2.3", ldCommit: "c0ffee",
			bi:   vcs("deadbeef", "true"),
			want: Info{Version: "v1.2.3", Commit: "c0ffee"},
		},
		{
			name: "a checkout build: vcs.revision and vcs.modified",
			bi:   vcs("deadbeef", "true"),
			want: Info{Version: "(devel)", Commit: "deadbeef", Modified: true},
		},
		{
			name: "a clean checkout",
			bi:   vcs("deadbeef", "false"),
			want: Info{Version: "(devel)", Commit: "deadbeef"},
		},
		{
			name: "go install module@version: no vcs settings",
			bi:   &debug.BuildInfo{Main: debug.Module{Version: "v0.4.0"}},
			want: Info{Version: "v0.4.0", Commit: Unknown},
		},
		{
			name:      "linker version only: the commit still comes from the build info",
			ldVersion: "v1.2.3",
			bi:        vcs("deadbeef", "false"),
			want:      Info{Version: "v1.2.3", Commit: "deadbeef"},
		},
		{
			name: "no build info at all",
			want: Info{Version: Unknown, Commit: Unknown},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.want.GoVersion = runtime.Version()
			tt.want.Platform = runtime.GOOS + "/" + runtime.GOARCH
			if got := get(tt.ldVersion, tt.ldCommit, tt.bi); got != tt.want {
				t.Errorf("get() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestInfoString(t *testing.T) {
	tests := []struct {
		name string
		info Info
		want string
	}{
		{
			name: "a full commit is shortened to 12",
			info: Info{Version: "v1.0.0", Commit: "0123456789abcdef0123", GoVersion: "go1.26.8", Platform: "linux/arm64"},
			want: "v1.0.0 (commit 0123456789ab, go1.26.8, linux/arm64)",
		},
		{
			name: "a dirty tree says so",
			info: Info{Version: "(devel)", Commit: "abc", Modified: true, GoVersion: "go1.26.8", Platform: "linux/amd64"},
			want: "(devel) (commit abc-dirty, go1.26.8, linux/amd64)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.info.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}
