package main

import (
	"strings"
	"testing"
)

// TestBenchFlags checks what "hrsync bench" refuses before it touches anything;
// package bench tests the measuring.
func TestBenchFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"TooFewEvents", []string{"bench", "--events", "50"}, "want 100 to 2000000"},
		{"TooManyEvents", []string{"bench", "--events", "3000000"}, "want 100 to 2000000"},
		{"NotPostgres", []string{"bench", "--events", "100", "--db", "sqlite:///tmp/x.db"}, "bench needs a postgres:// URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runCLI(t, nil, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v: %v, want an error with %q", tc.args, err, tc.want)
			}
		})
	}
}
