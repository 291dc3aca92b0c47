package trust_test

import (
	"testing"

	"github.com/sworn-id/sworn/trust"
)

func TestPolicyAdmitsNobody(t *testing.T) {
	rule, err := trust.ParseHTTPRule("spiffe://example.org/web GET /api/*")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		allow []string
		deny  []string
		http  []trust.HTTPRule
		want  bool
	}{
		{name: "empty", want: true},
		{name: "deny only", deny: []string{"spiffe://example.org/x"}, want: true},
		{name: "an allow entry", allow: []string{"spiffe://example.org"}, want: false},
		{name: "an HTTP rule only", http: []trust.HTTPRule{rule}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := trust.NewPolicy(tt.allow, tt.deny)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.WithHTTPRules(tt.http...).AdmitsNobody(); got != tt.want {
				t.Fatalf("AdmitsNobody() = %v, want %v", got, tt.want)
			}
		})
	}
}
