package vault

import (
	"crypto/x509"
	"testing"
	"time"
)

// The time Activate records in the replaced issuer's name bounds its
// SVIDs' validity for Retire; names written before the mark was renamed
// must still be read, or Retire would fall back to the issuer's expiry.
func TestOldMarkIsReadInBothSpellingsAndReplacedOnReactivation(t *testing.T) {
	tests := []struct {
		name, mark, stripped string
	}{
		{name: "sworn-root-old-since-1764150000", mark: "1764150000", stripped: "sworn-root"},
		{name: "sworn-root-retired-1764150000", mark: "1764150000", stripped: "sworn-root"},
		{name: "old-since-42", mark: "42", stripped: ""},
		{name: "sworn-root", mark: "", stripped: "sworn-root"},
		{name: "sworn-root-old-since-soon", mark: "", stripped: "sworn-root-old-since-soon"},
		{name: "retired-team-root", mark: "", stripped: "retired-team-root"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := retiredMark(tt.name); got != tt.mark {
				t.Fatalf("retiredMark(%q) = %q, want %q", tt.name, got, tt.mark)
			}
			if got := stripOldMark(tt.name); got != tt.stripped {
				t.Fatalf("stripOldMark(%q) = %q, want %q", tt.name, got, tt.stripped)
			}
		})
	}
}

func TestOldNeedsAMarkOrAnEarlierCertificateThanTheSigningOne(t *testing.T) {
	at := func(sec int64) *x509.Certificate { return &x509.Certificate{NotBefore: time.Unix(sec, 0)} }
	signing := Issuer{ID: "s", Default: true, Certificate: at(100)}
	tests := []struct {
		name    string
		i       Issuer
		signing Issuer
		want    bool
	}{
		{name: "the signing issuer", i: signing, signing: signing, want: false},
		{name: "marked by activate, same second", i: Issuer{Name: "root-old-since-100", Certificate: at(100)}, signing: signing, want: true},
		{name: "unmarked, same second (a new rotation)", i: Issuer{Name: "root-2", Certificate: at(100)}, signing: signing, want: false},
		{name: "unmarked, later (prepared)", i: Issuer{Name: "root-2", Certificate: at(200)}, signing: signing, want: false},
		{name: "unmarked, earlier (made default by hand)", i: Issuer{Name: "root-0", Certificate: at(50)}, signing: signing, want: true},
		{name: "no signing issuer on the mount", i: Issuer{Name: "root-0", Certificate: at(50)}, signing: Issuer{}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.i.Old(tt.signing); got != tt.want {
				t.Fatalf("Old = %v, want %v", got, tt.want)
			}
		})
	}
}
