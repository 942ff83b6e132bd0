package engram_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestUnitReadmeQuickStart checks that the README's quick start is the body of Example, which
// runs against the real server: the README cannot drift from code that works.
func TestUnitReadmeQuickStart(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("example_quickstart_test.go")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```go\n.*?\nfunc main\\(\\) \\{\n(.*?)\n\\}\n```").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README.md has no Go block with a main function")
	}
	e := regexp.MustCompile(`(?s)\nfunc Example\(\) \{\n(.*?)\n\t// Output:`).FindSubmatch(example)
	if e == nil {
		t.Fatal("example_quickstart_test.go has no func Example")
	}
	if got, want := strings.TrimSpace(string(m[1])), strings.TrimSpace(string(e[1])); got != want {
		t.Errorf("README quick start differs from Example:\nREADME:\n%s\n\nExample:\n%s", got, want)
	}
	for _, imp := range []string{`"context"`, `"fmt"`, `"log"`, `"os"`, `engram "github.com/engram-memory-server/engram/sdk-go"`} {
		if !strings.Contains(string(m[0]), imp) {
			t.Errorf("README quick start does not import %s", imp)
		}
	}
}
