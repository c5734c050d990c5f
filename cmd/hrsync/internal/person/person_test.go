package person_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/person"
	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/store"
)

// TestTell: the story finds the account as the converger does (a rehire under
// a new id through its predecessor's link), plans nothing when several
// accounts match, and names what it cannot tell.
func TestTell(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := store.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "t.db"), nil, store.Migrate(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	feeds, err := connector.NewFeeds(connector.DefaultFeed("hr", connector.FeedHR))
	if err != nil {
		t.Fatal(err)
	}
	lms := sandbox.New()
	conv, err := connector.NewConverger(connector.ConvergerConfig{Store: db, LMS: lms, Feeds: feeds})
	if err != nil {
		t.Fatal(err)
	}
	src := person.Sources{Store: db, Feeds: feeds, LMS: lms}
	start := time.Now().Add(-time.Hour).UTC()
	seq := 0
	record := func(f connector.Fact) {
		t.Helper()
		seq++
		f.Source, f.ID, f.Feed = feeds["hr"].Source, fmt.Sprintf("e%d", seq), "hr"
		f.Effective = start.Add(time.Duration(seq) * time.Minute)
		f.Time = f.Effective
		if _, err := db.RecordFacts(ctx, []connector.Fact{f}); err != nil {
			t.Fatal(err)
		}
		if _, err := conv.Drain(ctx, 10); err != nil {
			t.Fatal(err)
		}
	}
	ann := connector.Profile{Email: "ann@example.com", GivenName: "Ann", FamilyName: "Lee"}
	record(connector.Fact{WorkerID: "w1", Kind: connector.KindHired, Profile: ann})
	record(connector.Fact{WorkerID: "w1", Kind: connector.KindLeft})

	t.Run("RehireUnderANewIDFindsThePredecessorsAccount", func(t *testing.T) {
		// Recorded without converging: the story plans what the converger would.
		f := connector.Fact{Source: feeds["hr"].Source, ID: "rehire", Feed: "hr", WorkerID: "w2", Kind: connector.KindRehired,
			PreviousWorkerID: "w1", Profile: ann, Effective: time.Now().Add(-time.Minute).UTC(), Time: time.Now().Add(-time.Minute).UTC()}
		if _, err := db.RecordFacts(ctx, []connector.Fact{f}); err != nil {
			t.Fatal(err)
		}
		s, err := person.Tell(ctx, src, connector.WorkerKey{Feed: "hr", WorkerID: "w2"}, time.Now(), 10)
		if err != nil {
			t.Fatal(err)
		}
		// The old account, taken over (its externalId updated) and reactivated.
		if s.Account == nil || s.Account.Active || s.Match != "link of w1" || connector.PlanString(s.Plan) != "update "+s.Account.ID+"; reactivate "+s.Account.ID {
			t.Fatalf("story of the rehire: account %+v, match %q, plan %v", s.Account, s.Match, s.Plan)
		}
	})

	t.Run("AmbiguousPlansNothing", func(t *testing.T) {
		for _, u := range []string{"bo-1", "bo-2"} {
			if _, err := lms.CreateAccount(ctx, connector.Account{UserName: u, Active: true, Profile: connector.Profile{Email: "bo@example.com"}}); err != nil {
				t.Fatal(err)
			}
		}
		f := connector.Fact{Source: feeds["hr"].Source, ID: "bo", Feed: "hr", WorkerID: "w3", Kind: connector.KindHired,
			Profile: connector.Profile{Email: "bo@example.com"}, Effective: start, Time: start}
		if _, err := db.RecordFacts(ctx, []connector.Fact{f}); err != nil {
			t.Fatal(err)
		}
		s, err := person.Tell(ctx, src, connector.WorkerKey{Feed: "hr", WorkerID: "w3"}, time.Now(), 10)
		if err != nil || s.Account != nil || len(s.Plan) != 0 || !strings.Contains(s.Match, "2 accounts match") {
			t.Fatalf("ambiguous story: %v; account %+v, match %q, plan %v", err, s.Account, s.Match, s.Plan)
		}
	})

	t.Run("ManualDeactivationIsKept", func(t *testing.T) {
		record(connector.Fact{WorkerID: "w4", Kind: connector.KindHired, Profile: connector.Profile{Email: "cy@example.com"}})
		hist, err := db.LoadHistory(ctx, connector.WorkerKey{Feed: "hr", WorkerID: "w4"})
		if err != nil || hist.Links["w4"] == "" {
			t.Fatalf("w4 not linked: %v %v", hist.Links, err)
		}
		if _, err := lms.SetActive(ctx, hist.Links["w4"], false); err != nil { // an admin, in the LMS
			t.Fatal(err)
		}
		s, err := person.Tell(ctx, src, connector.WorkerKey{Feed: "hr", WorkerID: "w4"}, time.Now(), 10)
		if err != nil || len(s.Plan) != 0 || !strings.Contains(s.Kept, "deactivated outside hrsync") {
			t.Fatalf("story of a manual deactivation: %v; plan %v, kept %q", err, s.Plan, s.Kept)
		}
	})

	t.Run("Unknown", func(t *testing.T) {
		if _, err := person.Tell(ctx, src, connector.WorkerKey{Feed: "hr", WorkerID: "nobody"}, time.Now(), 10); !errors.Is(err, connector.ErrNotFound) {
			t.Errorf("unknown worker: %v, want ErrNotFound", err)
		}
		if _, err := person.Tell(ctx, src, connector.WorkerKey{Feed: "acme", WorkerID: "w1"}, time.Now(), 10); !errors.Is(err, person.ErrUnknownFeed) {
			t.Errorf("unknown feed: %v, want ErrUnknownFeed", err)
		}
	})
}
