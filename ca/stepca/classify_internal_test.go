package stepca

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sworn-id/sworn/ca"
)

// classify maps step-ca's answers, as the client returns them
// (*statusError, wrapped), to the ca error classes: 401 and 403 are
// refusals, other 4xx invalid requests, 5xx outages.
func TestClassifyStepCAStatus(t *testing.T) {
	for _, tc := range []struct {
		status int
		want   error
	}{
		{status: http.StatusBadRequest, want: ca.ErrInvalidRequest},
		{status: http.StatusUnauthorized, want: ca.ErrRefused},
		{status: http.StatusForbidden, want: ca.ErrRefused},
		{status: http.StatusNotFound, want: ca.ErrInvalidRequest},
		{status: http.StatusInternalServerError, want: ca.ErrUnavailable},
		{status: http.StatusServiceUnavailable, want: ca.ErrUnavailable},
	} {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			answer := readError(http.MethodPost, "/sign", &http.Response{StatusCode: tc.status, Header: http.Header{},
				Body: io.NopCloser(strings.NewReader(fmt.Sprintf(`{"status":%d,"message":"step-ca says no"}`, tc.status)))})
			got := classify(fmt.Errorf("client POST failed: %w", answer))
			for _, class := range []error{ca.ErrInvalidRequest, ca.ErrRefused, ca.ErrUnavailable} {
				if errors.Is(got, class) != (class == tc.want) {
					t.Fatalf("classify(%d) = %v; errors.Is(%v) = %v, want only %v", tc.status, got, class, errors.Is(got, class), tc.want)
				}
			}
			if !errors.Is(got, answer) || !strings.Contains(got.Error(), "step-ca says no") {
				t.Fatalf("classify(%d) = %v, lost step-ca's answer", tc.status, got)
			}
		})
	}
}

// A connection that dies mid-request reaches classify as the client
// returns it: the *url.Error unwrapped to a bare EOF. It is an outage.
func TestClassifyADroppedConnectionAsAnOutage(t *testing.T) {
	for _, cause := range []error{io.EOF, io.ErrUnexpectedEOF} {
		got := classify(fmt.Errorf("client POST https://127.0.0.1:9000/sign failed: %w", cause))
		if !errors.Is(got, ca.ErrUnavailable) || errors.Is(got, ca.ErrInvalidRequest) {
			t.Fatalf("classify(%v) = %v, want only ca.ErrUnavailable", cause, got)
		}
	}
}
