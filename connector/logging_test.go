package connector_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
)

// TestConvergerLogsNoPersonalData: at INFO the converger logs what it did to
// whom by worker id, never the person's email, name or leave reason, not even in
// a review item it raises over a taken userName; DEBUG has the reasons.
func TestConvergerLogsNoPersonalData(t *testing.T) {
	t.Parallel()
	day := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	const reason = "moved abroad to care for her mother"
	prof := connector.Profile{Email: "zofia.private@home.example", GivenName: "Zofia", FamilyName: "Przybylska", EmployeeNumber: "E9"}
	run := func(t *testing.T, level slog.Level) string {
		b := setup(t, day, connector.DefaultFeed("hr", connector.FeedHR), connector.DefaultFeed("partner-acme", connector.FeedPartner))
		var logs bytes.Buffer
		var err error
		b.conv, err = connector.NewConverger(connector.ConvergerConfig{Store: b.db, LMS: b.lms, Feeds: b.feeds, Now: b.clock,
			Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: level}))})
		if err != nil {
			t.Fatal(err)
		}
		b.record(t, connector.Fact{WorkerID: "w1", Kind: connector.KindHired, Effective: day, Profile: prof})
		b.set(day.Add(2 * time.Hour))
		b.record(t, connector.Fact{WorkerID: "w1", Kind: connector.KindLeft, Effective: day.Add(time.Hour), Reason: reason})
		// A partner's worker with the same email: the userName is taken, a review item.
		b.record(t, connector.Fact{Feed: "partner-acme", WorkerID: "p1", Kind: connector.KindHired, Effective: day, Profile: prof})
		if a := b.account(t, "hr:w1"); a.Active {
			t.Fatalf("account %+v active after the leave", a)
		}
		return logs.String()
	}
	t.Run("Info", func(t *testing.T) {
		t.Parallel()
		out := run(t, slog.LevelInfo)
		for _, want := range []string{`"msg":"lms action","action":"create"`, `"msg":"lms action","action":"deactivate"`, `"msg":"review item raised"`} {
			if !strings.Contains(out, want) {
				t.Errorf("log lacks %s:\n%s", want, out)
			}
		}
		for _, bad := range []string{prof.Email, prof.GivenName, prof.FamilyName, reason} {
			if strings.Contains(out, bad) {
				t.Errorf("log at INFO contains %q:\n%s", bad, out)
			}
		}
	})
	t.Run("Debug", func(t *testing.T) {
		t.Parallel()
		if out := run(t, slog.LevelDebug); !strings.Contains(out, reason) || !strings.Contains(out, prof.Email) {
			t.Errorf("log at DEBUG lacks the leave reason or the review's reason:\n%s", out)
		}
	})
}
