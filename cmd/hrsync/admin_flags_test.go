package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestRunAdminFlagsChecked: bad admin limits stop "hrsync run" before it
// connects to anything, with an error naming the flag or variable and why.
func TestRunAdminFlagsChecked(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, []string{"--admin-max-upload", "0"}, "--admin-max-upload \"0\": must be more than 0 bytes"},
		{nil, []string{"--admin-max-upload", "lots"}, "--admin-max-upload \"lots\": not a size"},
		{map[string]string{"HRSYNC_ADMIN_MAX_UPLOAD": "-5MiB"}, nil, "--admin-max-upload \"-5MiB\": not a size"},
		{nil, []string{"--admin-uploads-per-token", "0"}, "--admin-uploads-per-token 0: must be at least 1"},
		{nil, []string{"--admin-read-timeout", "0s"}, "--admin-read-timeout 0s: must be positive"},
		{map[string]string{"HRSYNC_ADMIN_IDLE_TIMEOUT": "soon"}, nil, "HRSYNC_ADMIN_IDLE_TIMEOUT=\"soon\" (for --admin-idle-timeout)"},
	} {
		_, _, err := runCLI(t, tt.env, append([]string{"run", "--db", "sqlite://" + filepath.Join(t.TempDir(), "h.db")}, tt.args...)...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v %v: %v, want an error containing %q", tt.env, tt.args, err, tt.want)
		}
	}
}
