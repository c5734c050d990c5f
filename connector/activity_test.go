package connector_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/guard"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/connector/lms/scim"
)

func TestActivityAny(t *testing.T) {
	t.Parallel()
	login := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name string
		a    connector.Activity
		want bool
	}{
		{"UnknownCountsAsActivity", connector.Activity{}, true},
		{"KnownNone", connector.Activity{Known: true}, false},
		{"Login", connector.Activity{Known: true, LastLogin: &login}, true},
		{"EnrolledNeverStarted", connector.Activity{Known: true, Enrollments: 1}, true},
		{"Completion", connector.Activity{Known: true, Completions: 1}, true},
		{"Upload", connector.Activity{Known: true, Uploads: 1}, true},
		{"Reward", connector.Activity{Known: true, Rewards: 1}, true},
	} {
		if got := c.a.Any(); got != c.want {
			t.Errorf("%s: Any = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestReadActivity: the sandbox tells every kind of activity, directly, over SCIM
// (training extension) and behind the guard; a plain SCIM server cannot tell.
func TestReadActivity(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sb := sandbox.New()
	idle, _ := sb.CreateAccount(ctx, connector.Account{UserName: "idle@example.com", Active: true, Profile: connector.Profile{Email: "idle@example.com"}})
	used, _ := sb.CreateAccount(ctx, connector.Account{UserName: "used@example.com", Active: true, Profile: connector.Profile{Email: "used@example.com"}})
	if _, err := sb.AddTraining(used.ID, sandbox.Training{Uploads: 2, Rewards: 1}); err != nil {
		t.Fatal(err)
	}
	if err := sb.Enroll(used.ID, "safety-101", time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sb.Handler(""))
	t.Cleanup(srv.Close)
	client, err := scim.New(srv.URL+sandbox.BasePath, scim.WithHTTPClient(srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	for name, lms := range map[string]connector.LMS{"sandbox": sb, "scim": client, "guard": guard.New(client, guard.Config{})} {
		a, err := connector.ReadActivity(ctx, lms, used.ID)
		if err != nil || !a.Known || a.Enrollments != 1 || a.Uploads != 2 || a.Rewards != 1 || !a.Any() {
			t.Errorf("%s: used = %+v, %v", name, a, err)
		}
		a, err = connector.ReadActivity(ctx, lms, idle.ID)
		if err != nil || !a.Known || a.Any() {
			t.Errorf("%s: idle = %+v, %v; want known and no activity", name, a, err)
		}
	}

	// A SCIM server without the training extension cannot tell: unknown, which
	// counts as activity.
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/scim+json")
		_, _ = w.Write([]byte(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"id":"1","userName":"p@example.com","active":true}`))
	}))
	t.Cleanup(plain.Close)
	pc, _ := scim.New(plain.URL+"/scim/v2", scim.WithHTTPClient(plain.Client()), scim.WithoutDiscovery())
	a, err := connector.ReadActivity(ctx, pc, "1")
	if err != nil || a.Known || !a.Any() {
		t.Fatalf("plain SCIM: %+v, %v; want unknown activity", a, err)
	}
}
