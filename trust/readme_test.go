package trust_test

import (
	"os"
	"strings"
	"testing"
)

// The README's trust snippets are the examples' code, byte for byte, so
// what the README shows compiles (and the policy file decides as
// ExampleParsePolicy prints).
func TestREADMEShowsTheExamples(t *testing.T) {
	readme := readFile(t, "../README.md")
	section := between(t, readme, "## mTLS between services\n", "\n## ")
	examples := readFile(t, "example_test.go")
	code := between(t, examples, "\t// README begin\n", "\t// README end\n")
	code = strings.ReplaceAll("\n"+code, "\n\t", "\n")[1:]
	if got := between(t, section, "```go\n", "```\n"); got != code {
		t.Errorf("README's Go snippet:\n%s\nExampleServerConfig between the README markers:\n%s", got, code)
	}
	if got := between(t, section, "```yaml\n", "```\n"); got != readmePolicy {
		t.Errorf("README's policy file:\n%s\nreadmePolicy:\n%s", got, readmePolicy)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// between returns the text of s after the first start up to the next end.
func between(t *testing.T, s, start, end string) string {
	t.Helper()
	_, rest, ok := strings.Cut(s, start)
	if !ok {
		t.Fatalf("no %q", start)
	}
	text, _, ok := strings.Cut(rest, end)
	if !ok {
		t.Fatalf("no %q after %q", end, start)
	}
	return text
}
