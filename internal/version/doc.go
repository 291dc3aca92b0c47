// Package version owns sworn's build facts: the release version, the commit
// it was built from, and the Go toolchain that built it. The CLI's `sworn
// version`, the agent's start log line and its sworn_build_info metric all
// read them from here, so the three always agree.
//
// A release build sets the version and commit with the linker:
//
//	go build -ldflags "-X github.com/sworn-id/sworn/internal/version.version=v0.3.0 \
//	  -X github.com/sworn-id/sworn/internal/version.commit=$(git rev-parse HEAD)" ./cmd/sworn
//
// Without them Get falls back on what the Go toolchain records in every
// binary (debug.ReadBuildInfo): the module version (a tag or a pseudo-version
// under `go install ...@version`, "(devel)" in a checkout) and, for a build
// in a git checkout, vcs.revision and vcs.modified. A value neither source
// knows is "unknown", never empty, so a scraper or a script always sees a
// field.
package version
