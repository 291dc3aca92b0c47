package main

import (
	"os"
	"testing"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// .dockerignore, read by the code docker's build client uses to filter the
// context: test servers, release output and history stay out of it, the
// sources the Dockerfile builds go in.
func TestDockerignore(t *testing.T) {
	f, err := os.Open("../../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path     string
		excluded bool
	}{
		{path: ".bin", excluded: true},
		{path: ".bin/vault", excluded: true},
		{path: "dist", excluded: true},
		{path: "dist/image/index.json", excluded: true},
		{path: ".git", excluded: true},
		{path: ".git/objects/pack/x.pack", excluded: true},
		{path: "go.mod"},
		{path: "go.sum"},
		{path: "cmd/sworn/main.go"},
		{path: "internal/version/version.go"},
		{path: "deploy/Dockerfile"},
	}
	for _, tt := range tests {
		got, err := pm.MatchesOrParentMatches(tt.path)
		if err != nil {
			t.Fatal(err)
		}
		if got != tt.excluded {
			t.Errorf("%s: excluded from the build context = %t, want %t", tt.path, got, tt.excluded)
		}
	}
}
