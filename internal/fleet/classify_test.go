package fleet

import "testing"

func TestClassifyNamesEachVaultRequestAgentsMake(t *testing.T) {
	for _, tc := range []struct {
		path string
		want kind
	}{
		{path: "/v1/pki/sign/sworn", want: kindSign},
		{path: "/v1/pki/root/sign-intermediate", want: kindIntermediate},
		{path: "/v1/pki/issuers", want: kindRead},
		{path: "/v1/pki/issuer/6f1c/json", want: kindRead},
		{path: "/v1/pki/config/issuers", want: kindRead},
		{path: "/v1/auth/approle/login", want: kindAuth},
		{path: "/v1/auth/token/renew-self", want: kindAuth},
		{path: "/v1/sys/health", want: kindOther},
		{path: "/v1/pkix/sign/sworn", want: kindOther}, // another mount
		{path: "/v1/pki/sign-verbatim/sworn", want: kindOther},
		{path: "/pki/sign/sworn", want: kindOther},
	} {
		if got := classify("pki", tc.path); got != tc.want {
			t.Errorf("classify(%q) = %s, want %s", tc.path, kindNames[got], kindNames[tc.want])
		}
	}
}
