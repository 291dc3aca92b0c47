package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"testing"
)

// LICENSE is the Apache License 2.0 word for word (the text the image's
// licenses label names), with only the appendix's copyright line filled in.
func TestLicenseIsApache2(t *testing.T) {
	text, err := os.ReadFile("../../LICENSE")
	if err != nil {
		t.Fatal(err)
	}
	const filled = "Copyright 2026 The sworn Authors"
	if !bytes.Contains(text, []byte(filled)) {
		t.Errorf("LICENSE has no %q", filled)
	}
	template := bytes.Replace(text, []byte(filled), []byte("Copyright [yyyy] [name of copyright owner]"), 1)
	// sha256 of https://www.apache.org/licenses/LICENSE-2.0.txt as the
	// SPIFFE projects ship it.
	const apache2 = "c71d239df91726fc519c6eb72d318ec65820627232b2f796219e87dcf35d0ab4"
	if sum := sha256.Sum256(template); hex.EncodeToString(sum[:]) != apache2 {
		t.Errorf("LICENSE is not the Apache License 2.0 text (sha256 of the template form %x, want %s)", sum, apache2)
	}
}
