package main

import (
	"bytes"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// hash-password reads the password from stdin and prints a hash that the
// console's sign-in accepts; a short password is a usage error.
func TestConsoleHashPassword(t *testing.T) {
	t.Parallel()
	hash := func(stdin string) (string, error) {
		var out, errOut bytes.Buffer
		root := newRootCmd(&environment{getenv: func(string) string { return "" }, stdout: &out, stderr: &errOut})
		root.SetIn(strings.NewReader(stdin))
		root.SetArgs([]string{"console", "hash-password"})
		err := root.ExecuteContext(t.Context())
		return strings.TrimSpace(out.String()), err
	}
	h, err := hash("a long enough password\n")
	if err != nil {
		t.Fatal(err)
	}
	if err := bcrypt.CompareHashAndPassword([]byte(h), []byte("a long enough password")); err != nil {
		t.Fatalf("hash %q does not match the password: %v", h, err)
	}
	if _, err := hash("short\n"); err == nil || exitCode(err) != exitUsage {
		t.Fatalf("a short password: %v, want a usage error", err)
	}
}
