package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
)

// No Docker engine runs where the tests run, so docker-compose.yml is checked by
// loading it with the compose-spec parser, and every hrsync command line in it is
// checked against the CLI's own flags and environment variables.
func TestDockerCompose(t *testing.T) {
	t.Parallel()
	path, err := filepath.Abs("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cli.NewProjectOptions([]string{path}, cli.WithName("hrsync"), cli.WithWorkingDirectory(filepath.Dir(path)))
	if err != nil {
		t.Fatal(err)
	}
	proj, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	for _, name := range []string{"postgres", "nats", "sandbox-lms", "hrsync"} {
		if _, ok := proj.Services[name]; !ok {
			t.Fatalf("service %q missing", name)
		}
	}
	if nats := proj.Services["nats"]; !strings.Contains(strings.Join(nats.Command, " "), "-js") {
		t.Errorf("nats runs without JetStream: %v", nats.Command)
	}
	if pg := proj.Services["postgres"]; pg.HealthCheck == nil {
		t.Error("postgres has no healthcheck; hrsync would start before it accepts connections")
	}

	hr := proj.Services["hrsync"]
	if dep, ok := hr.DependsOn["postgres"]; !ok || dep.Condition != "service_healthy" {
		t.Errorf("hrsync must wait for a healthy postgres, got %+v", hr.DependsOn)
	}
	env := map[string]string{}
	for k, v := range hr.Environment {
		if v != nil {
			env[k] = *v
		}
	}
	for k, want := range map[string]string{"DATABASE_URL": "@postgres:5432/", "NATS_URL": "nats://nats:4222", "LMS_URL": "http://sandbox-lms:8081/scim/v2"} {
		if !strings.Contains(env[k], want) {
			t.Errorf("hrsync %s = %q, want it to contain %q", k, env[k], want)
		}
	}
	if env["LMS_TOKEN"] == "" || !strings.Contains(strings.Join(proj.Services["sandbox-lms"].Command, " "), "--token "+env["LMS_TOKEN"]) {
		t.Error("hrsync's LMS_TOKEN does not match the sandbox's --token")
	}

	for _, name := range []string{"hrsync", "sandbox-lms"} {
		cmd := proj.Services[name].Command
		if len(cmd) == 0 {
			t.Fatalf("%s has no command", name)
		}
		help := helpOf(t, cmd[0])
		for _, arg := range cmd[1:] {
			if flag, ok := strings.CutPrefix(arg, "--"); ok {
				if !strings.Contains(help, "  --"+flag+" ") && !strings.Contains(help, "  --"+flag+"\n") {
					t.Errorf("%s: command uses --%s, which hrsync %s does not have", name, flag, cmd[0])
				}
			}
		}
		if name == "hrsync" {
			for k := range env {
				if !strings.Contains(help, "(env "+k+")") {
					t.Errorf("hrsync: compose sets %s, which hrsync %s does not read", k, cmd[0])
				}
			}
		}
	}
}

// helpOf returns the --help text of an hrsync command (its words, e.g. "holds approve").
func helpOf(t *testing.T, command string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	args := append(append([]string{"hrsync"}, strings.Fields(command)...), "--help")
	if err := run(context.Background(), args, func(string) string { return "" }, &out, &errOut); err != nil || out.Len() == 0 {
		t.Fatalf("hrsync %s --help: %v, printed %d bytes (stderr: %s)", command, err, out.Len(), errOut.String())
	}
	return out.String()
}

func TestDockerfile(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../deploy/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if n := len(regexp.MustCompile(`(?m)^FROM `).FindAllString(s, -1)); n < 2 {
		t.Errorf("Dockerfile has %d stages, want a multi-stage build", n)
	}
	user := regexp.MustCompile(`(?m)^USER\s+(\S+)`).FindStringSubmatch(s)
	if user == nil || strings.HasPrefix(user[1], "root") || strings.HasPrefix(user[1], "0") {
		t.Errorf("Dockerfile must run as non-root, USER = %v", user)
	}
}
