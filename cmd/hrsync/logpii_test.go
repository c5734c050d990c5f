package main

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestRedactNATSURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"nats://s3cret-token@127.0.0.1:4222":                       "nats://xxxxx@127.0.0.1:4222",
		"nats://hrsync:s3cret@a:4222, nats://hrsync:s3cret@b:4222": "nats://xxxxx@a:4222,nats://xxxxx@b:4222",
		"nats://127.0.0.1:4222":                                    "nats://127.0.0.1:4222",
	} {
		if got := redactNATSURL(in); got != want {
			t.Errorf("redactNATSURL(%q) = %q, want %q", in, got, want)
		}
	}
	// The daemon's error when NATS cannot be reached names the server, not the token.
	_, _, err := runCLI(t, map[string]string{"NATS_URL": "nats://s3cret-token@127.0.0.1:1", "LMS_URL": "http://127.0.0.1:1/scim/v2",
		"DATABASE_URL": "sqlite://" + filepath.Join(t.TempDir(), "h.db")}, "run", "--admin-addr=")
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("run with NATS unreachable: %v, want an error naming the server without its token", err)
	}
}
