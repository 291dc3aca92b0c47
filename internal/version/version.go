package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set by the linker (-X) in release builds; see the package comment. They
// are variables, not constants, because -X can only set a string variable.
var (
	version string
	commit  string
)

// Unknown stands for a fact neither the linker flags nor the build info
// recorded.
const Unknown = "unknown"

// Info is what a binary knows about its own build. Its JSON form is the
// stable output of `sworn version -o json`: fields are only ever added.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	Modified  bool   `json:"modified"` // built from a tree with uncommitted changes
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"` // GOOS/GOARCH
}

// Get returns this binary's build facts.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return get(version, commit, bi)
}

// get prefers the linker's values and fills the rest from bi (nil when the
// binary carries no build info).
func get(ldVersion, ldCommit string, bi *debug.BuildInfo) Info {
	info := Info{
		Version:   ldVersion,
		Commit:    ldCommit,
		GoVersion: runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
	}
	if bi != nil {
		if info.Version == "" && bi.Main.Version != "" {
			info.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if info.Commit == "" {
					info.Commit = s.Value
				}
			case "vcs.modified":
				// Only meaningful for the revision the build info names: a
				// commit given by the linker says nothing about this tree.
				info.Modified = ldCommit == "" && s.Value == "true"
			}
		}
	}
	if info.Version == "" {
		info.Version = Unknown
	}
	if info.Commit == "" {
		info.Commit = Unknown
	}
	return info
}

// String is the one-line form `sworn --version` prints:
// "v0.3.0 (commit 0123abcd, go1.26.8, linux/amd64)".
func (i Info) String() string {
	c := i.Commit
	if len(c) > 12 {
		c = c[:12]
	}
	if i.Modified {
		c += "-dirty"
	}
	return fmt.Sprintf("%s (commit %s, %s, %s)", i.Version, c, i.GoVersion, i.Platform)
}
