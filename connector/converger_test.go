package connector_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/store"
)

// testBundle is a converger on a real SQLite store and the sandbox LMS, with a clock
// the test moves.
type testBundle struct {
	db    *store.DB
	lms   *sandbox.LMS
	conv  *connector.Converger
	mu    sync.Mutex
	now   time.Time
	seq   int
	feeds connector.Feeds
}

func (b *testBundle) clock() time.Time { b.mu.Lock(); defer b.mu.Unlock(); return b.now }
func (b *testBundle) set(t time.Time)  { b.mu.Lock(); defer b.mu.Unlock(); b.now = t }

func setup(t *testing.T, start time.Time, feeds ...connector.Feed) *testBundle {
	t.Helper()
	if len(feeds) == 0 {
		feeds = []connector.Feed{connector.DefaultFeed("hr", connector.FeedHR)}
	}
	b := &testBundle{now: start}
	var err error
	b.feeds, err = connector.NewFeeds(feeds...)
	if err != nil {
		t.Fatal(err)
	}
	b.db, err = store.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "t.db"), nil, store.Migrate(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.db.Close() })
	b.db.Now = b.clock
	b.lms = sandbox.New(sandbox.WithClock(b.clock))
	b.conv, err = connector.NewConverger(connector.ConvergerConfig{Store: b.db, LMS: b.lms, Feeds: b.feeds, Now: b.clock,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// record stores one fact recorded at the test clock, then converges everything due.
func (b *testBundle) record(t *testing.T, f connector.Fact) {
	t.Helper()
	b.seq++
	if f.Feed == "" {
		f.Feed = "hr"
	}
	f.Source, f.ID = b.feeds[f.Feed].Source, fmt.Sprintf("e%d", b.seq)
	if f.Time.IsZero() {
		f.Time = b.clock()
	}
	if _, err := b.db.RecordFacts(context.Background(), []connector.Fact{f}); err != nil {
		t.Fatal(err)
	}
	b.converge(t)
}

func (b *testBundle) converge(t *testing.T) {
	t.Helper()
	if _, err := b.conv.Drain(context.Background(), 100); err != nil {
		t.Fatal(err)
	}
}

func (b *testBundle) account(t *testing.T, externalID string) connector.Account {
	t.Helper()
	found, err := b.lms.FindAccounts(context.Background(), connector.AccountFilter{Attr: connector.ByExternalID, Value: externalID})
	if err != nil || len(found) != 1 {
		t.Fatalf("accounts with externalId %s: %v (err %v)", externalID, found, err)
	}
	return found[0]
}

func profile(email string) connector.Profile {
	return connector.Profile{Email: email, GivenName: "Ann", FamilyName: "Lee", EmployeeNumber: "E7"}
}

func TestConvergerEffectiveDates(t *testing.T) {
	t.Parallel()
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	monday := time.Date(2026, 12, 7, 0, 0, 0, 0, berlin)
	b := setup(t, monday.AddDate(0, 0, -3)) // Friday before

	t.Run("FutureHireCreatesNothingUntilDue", func(t *testing.T) {
		b.record(t, connector.Fact{WorkerID: "w1", Kind: connector.KindHired, Effective: monday, Profile: profile("ann@example.com")})
		if n := b.lms.Count(); n != 0 {
			t.Fatalf("%d accounts before Monday", n)
		}
		next, ok, err := b.db.NextDue(context.Background())
		if err != nil || !ok || !next.Equal(monday) {
			t.Fatalf("NextDue = %v %v %v, want Monday 00:00 Berlin", next, ok, err)
		}
		b.set(monday.Add(-time.Second))
		b.converge(t)
		if n := b.lms.Count(); n != 0 {
			t.Fatalf("%d accounts a second before Monday", n)
		}
		b.set(monday)
		b.converge(t)
		if a := b.account(t, "hr:w1"); !a.Active {
			t.Fatal("account not active on Monday")
		}
	})

	t.Run("LeaveAt18BerlinDeactivatesAtThatInstant", func(t *testing.T) {
		b.set(monday.Add(9 * time.Hour))
		six := monday.Add(18 * time.Hour)
		b.record(t, connector.Fact{WorkerID: "w1", Kind: connector.KindLeft, Effective: six})
		b.set(six.Add(-time.Millisecond))
		b.converge(t)
		if !b.account(t, "hr:w1").Active {
			t.Fatal("deactivated before 18:00")
		}
		b.set(six)
		b.converge(t)
		if b.account(t, "hr:w1").Active {
			t.Fatal("still active at 18:00 Berlin")
		}
	})

	t.Run("RehireBeforeLeaveTakesEffectNeverDeactivates", func(t *testing.T) {
		day := monday.AddDate(0, 0, 1).Add(8 * time.Hour)
		b.set(day)
		b.record(t, connector.Fact{WorkerID: "w2", Kind: connector.KindHired, Effective: day, Profile: profile("bo@example.com")})
		friday := day.AddDate(0, 0, 3)
		b.record(t, connector.Fact{WorkerID: "w2", Kind: connector.KindLeft, Effective: friday})
		b.set(day.Add(time.Hour))
		b.record(t, connector.Fact{WorkerID: "w2", Kind: connector.KindRehired, Effective: friday, Profile: profile("bo@example.com")})
		b.set(friday.Add(time.Hour))
		b.converge(t)
		a := b.account(t, "hr:w2")
		if !a.Active {
			t.Fatal("the withdrawn leave deactivated the account")
		}
		for _, op := range b.lms.Ops() {
			if op.AccountID == a.ID && op.Kind == sandbox.OpDeactivate {
				t.Fatal("the account was deactivated at some point")
			}
		}
	})
}

func TestConvergerRehire(t *testing.T) {
	t.Parallel()
	day := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

	t.Run("SameAccountWithNewEmailAndHistory", func(t *testing.T) {
		t.Parallel()
		b := setup(t, day)
		b.record(t, connector.Fact{WorkerID: "w1", Kind: connector.KindHired, Effective: day, Profile: profile("ann@example.com")})
		first := b.account(t, "hr:w1")
		if err := b.lms.CompleteCourse(first.ID, "safety-101", day.AddDate(0, 1, 0)); err != nil {
			t.Fatal(err)
		}
		b.set(day.AddDate(0, 2, 0))
		b.record(t, connector.Fact{WorkerID: "w1", Kind: connector.KindLeft, Effective: b.clock()})
		b.set(day.AddDate(1, 0, 0))
		b.record(t, connector.Fact{WorkerID: "w1", Kind: connector.KindRehired, Effective: b.clock(), Profile: profile("ann.lee@example.com")})
		a := b.account(t, "hr:w1")
		tr, _ := b.lms.Training(a.ID)
		if a.ID != first.ID || !a.Active || a.UserName != "ann.lee@example.com" || len(tr.Completions) != 1 {
			t.Fatalf("after rehire: %+v, training %+v; want account %s active with the new email and its completion", a, tr, first.ID)
		}
		if n := b.lms.Count(); n != 1 {
			t.Fatalf("%d accounts, want 1", n)
		}
	})

	t.Run("NewWorkerIDFindsOldAccount", func(t *testing.T) {
		t.Parallel()
		b := setup(t, day)
		b.record(t, connector.Fact{WorkerID: "w1", Kind: connector.KindHired, Effective: day, Profile: profile("ann@example.com")})
		first := b.account(t, "hr:w1")
		b.set(day.AddDate(0, 2, 0))
		b.record(t, connector.Fact{WorkerID: "w1", Kind: connector.KindLeft, Effective: b.clock()})
		b.set(day.AddDate(1, 0, 0))
		b.record(t, connector.Fact{WorkerID: "w9", Kind: connector.KindRehired, Effective: b.clock(), PreviousWorkerID: "w1",
			Profile: connector.Profile{Email: "ann.2027@example.com"}})
		a := b.account(t, "hr:w9")
		if a.ID != first.ID || !a.Active {
			t.Fatalf("rehire under a new id: %+v, want account %s reactivated", a, first.ID)
		}
		links, _ := b.db.Links(context.Background())
		if links[connector.WorkerKey{Feed: "hr", WorkerID: "w9"}] != first.ID {
			t.Fatalf("links = %v", links)
		}
		if _, still := links[connector.WorkerKey{Feed: "hr", WorkerID: "w1"}]; still {
			t.Fatal("the old worker id still holds the account")
		}
	})
}

func TestConvergerMatching(t *testing.T) {
	t.Parallel()
	day := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	ctx := context.Background()

	t.Run("AdoptsHandMadeAccountByEmail", func(t *testing.T) {
		t.Parallel()
		b := setup(t, day)
		made, _ := b.lms.CreateAccount(ctx, connector.Account{UserName: "ANN@example.com", Active: true, Profile: connector.Profile{Email: "ANN@example.com"}})
		b.record(t, connector.Fact{WorkerID: "w1", Kind: connector.KindHired, Effective: day, Profile: profile("ann@example.com")})
		if a := b.account(t, "hr:w1"); a.ID != made.ID {
			t.Fatalf("created %s instead of adopting %s", a.ID, made.ID)
		}
	})

	t.Run("TwoCandidatesIsAReviewNotAGuess", func(t *testing.T) {
		t.Parallel()
		b := setup(t, day)
		for _, u := range []string{"a1@example.com", "a2@example.com"} {
			if _, err := b.lms.CreateAccount(ctx, connector.Account{UserName: u, Active: true, Profile: connector.Profile{Email: u, EmployeeNumber: "E7"}}); err != nil {
				t.Fatal(err)
			}
		}
		b.record(t, connector.Fact{WorkerID: "w1", Kind: connector.KindHired, Effective: day, Profile: profile("ann@example.com")})
		if n := b.lms.Count(); n != 2 {
			t.Fatalf("%d accounts: the converger acted on an ambiguous match", n)
		}
		reviews, err := b.db.ListReviews(ctx, store.ReviewFilter{})
		if err != nil || len(reviews) != 1 || len(reviews[0].Candidates) != 2 || !strings.Contains(reviews[0].Reason, "refusing to guess") {
			t.Fatalf("reviews = %+v, %v; want one naming both candidates", reviews, err)
		}
		b.converge(t) // converging again must not pile up review items
		if again, _ := b.db.ListReviews(ctx, store.ReviewFilter{}); len(again) != 1 {
			t.Fatalf("%d review items after converging again", len(again))
		}
	})

	t.Run("PartnerNeverReachesAnEmployeesAccount", func(t *testing.T) {
		t.Parallel()
		b := setup(t, day, connector.DefaultFeed("hr", connector.FeedHR), connector.DefaultFeed("partner-acme", connector.FeedPartner))
		b.record(t, connector.Fact{WorkerID: "e1", Kind: connector.KindHired, Effective: day, Profile: profile("ann@example.com")})
		employee := b.account(t, "hr:e1")
		b.record(t, connector.Fact{Feed: "partner-acme", WorkerID: "p1", Kind: connector.KindHired, Effective: day, Profile: profile("ann@example.com")})
		b.record(t, connector.Fact{Feed: "partner-acme", WorkerID: "p1", Kind: connector.KindLeft, Effective: day})
		if a, _ := b.lms.GetAccount(ctx, employee.ID); !a.Active || a.ExternalID != "hr:e1" {
			t.Fatalf("the partner feed touched the employee's account: %+v", a)
		}
		reviews, _ := b.db.ListReviews(ctx, store.ReviewFilter{Feed: "partner-acme"})
		if len(reviews) != 1 || b.lms.Count() != 1 {
			t.Fatalf("reviews %+v, %d accounts; want one review for the partner row and no new account", reviews, b.lms.Count())
		}
	})
}

func TestConvergerRespectsManualDeactivation(t *testing.T) {
	t.Parallel()
	day := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	ctx := context.Background()
	b := setup(t, day)
	b.record(t, connector.Fact{WorkerID: "w1", Kind: connector.KindHired, Effective: day, Profile: profile("ann@example.com")})
	a := b.account(t, "hr:w1")
	if _, err := b.lms.SetActive(ctx, a.ID, false); err != nil { // an admin, by hand
		t.Fatal(err)
	}
	b.set(day.AddDate(0, 1, 0))
	b.record(t, connector.Fact{WorkerID: "w1", Kind: connector.KindUpdated, Effective: b.clock(), Profile: connector.Profile{JobTitle: "Chef"}})
	got := b.account(t, "hr:w1")
	if got.Active || got.Profile.JobTitle != "Chef" {
		t.Fatalf("after an update: %+v; want the title updated and the account left inactive", got)
	}
	reviews, _ := b.db.ListReviews(ctx, store.ReviewFilter{})
	if len(reviews) != 1 || !strings.Contains(reviews[0].Reason, "deactivated outside hrsync") {
		t.Fatalf("reviews = %+v", reviews)
	}
	b.converge(t) // converging again changes nothing
	if b.account(t, "hr:w1").Active {
		t.Fatal("reactivated on a second converge")
	}

	// A rehire recorded since is HR's word: the account comes back.
	b.set(day.AddDate(0, 2, 0))
	b.record(t, connector.Fact{WorkerID: "w1", Kind: connector.KindRehired, Effective: b.clock(), Profile: profile("ann@example.com")})
	if !b.account(t, "hr:w1").Active {
		t.Fatal("a rehire did not reactivate the account")
	}
}

// manualBundle records on day the hire of w1, effective two months earlier (HR
// was late), then a leave of absence from day+1 to day+2, so that hrsync's last
// state change is its reactivation on day+2. An admin deactivates the account by
// hand on day+7, and the clock moves on to day+30: the start of every case of
// TestConvergerManualDeactivationRecordedSince.
func manualBundle(t *testing.T, day time.Time) *testBundle {
	t.Helper()
	b := setup(t, day)
	b.record(t, connector.Fact{WorkerID: "w1", Kind: connector.KindHired, Effective: day.AddDate(0, -2, 0), Profile: profile("ann@example.com")})
	b.set(day.AddDate(0, 0, 1))
	b.record(t, connector.Fact{WorkerID: "w1", Kind: connector.KindSuspended, Effective: b.clock(), Reason: "illness"})
	b.set(day.AddDate(0, 0, 2))
	b.record(t, connector.Fact{WorkerID: "w1", Kind: connector.KindResumed, Effective: b.clock()})
	if a := b.account(t, "hr:w1"); !a.Active {
		t.Fatalf("setup: not active after the leave of absence: %+v", a)
	}
	b.set(day.AddDate(0, 0, 7))
	if _, err := b.lms.SetActive(context.Background(), b.account(t, "hr:w1").ID, false); err != nil { // an admin, by hand
		t.Fatal(err)
	}
	b.set(day.AddDate(0, 0, 30))
	return b
}

// TestConvergerManualDeactivationRecordedSince pins the rule of docs/reconcile.md:
// a hire, rehire or resume *recorded* (store time) after hrsync last set the
// account active brings back an account an admin deactivated, whatever its
// effective or event time; without one the account stays inactive with a review.
func TestConvergerManualDeactivationRecordedSince(t *testing.T) {
	t.Parallel()
	day := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	ctx := context.Background()
	manualReviews := func(t *testing.T, b *testBundle) int {
		t.Helper()
		reviews, err := b.db.ListReviews(ctx, store.ReviewFilter{})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, r := range reviews {
			if strings.Contains(r.Reason, "deactivated outside hrsync") {
				n++
			}
		}
		return n
	}

	t.Run("NewHiredEvent", func(t *testing.T) {
		t.Parallel()
		b := manualBundle(t, day)
		// HR sends a new hired event (a new contract) after the admin's deactivation.
		b.record(t, connector.Fact{WorkerID: "w1", Kind: connector.KindHired, Effective: b.clock(), Profile: profile("ann@example.com")})
		if a := b.account(t, "hr:w1"); !a.Active {
			t.Fatalf("a hired event recorded after the manual deactivation left the account inactive: %+v", a)
		}
		if n := manualReviews(t, b); n != 0 {
			t.Fatalf("%d review items say deactivated outside hrsync; want none", n)
		}
	})

	t.Run("BackdatedLeaveAndRehire", func(t *testing.T) {
		t.Parallel()
		b := manualBundle(t, day)
		// Sent a month after the admin's deactivation, both dated before hrsync
		// created the account: HR corrects the history, the person was away for
		// ten days last month and is employed again.
		b.record(t, connector.Fact{WorkerID: "w1", Kind: connector.KindLeft, Effective: day.AddDate(0, 0, -30), Time: b.clock()})
		b.record(t, connector.Fact{WorkerID: "w1", Kind: connector.KindRehired, Effective: day.AddDate(0, 0, -20), Time: b.clock(),
			Profile: profile("ann@example.com")})
		if a := b.account(t, "hr:w1"); !a.Active {
			t.Fatalf("a back-dated rehire recorded after the manual deactivation left the account inactive: %+v", a)
		}
	})

	t.Run("BackdatedLeaveAndRehireInOneBatch", func(t *testing.T) {
		t.Parallel()
		b := manualBundle(t, day)
		b.seq += 2
		facts := []connector.Fact{
			{Feed: "hr", WorkerID: "w1", Source: "/feeds/hr", ID: "late-left", Kind: connector.KindLeft, Effective: day.AddDate(0, 0, -30), Time: b.clock()},
			{Feed: "hr", WorkerID: "w1", Source: "/feeds/hr", ID: "late-rehired", Kind: connector.KindRehired, Effective: day.AddDate(0, 0, -20), Time: b.clock(),
				Profile: profile("ann@example.com")},
		}
		if _, err := b.db.RecordFacts(ctx, facts); err != nil {
			t.Fatal(err)
		}
		b.converge(t)
		if a := b.account(t, "hr:w1"); !a.Active {
			t.Fatalf("a back-dated leave and rehire recorded together left the account inactive: %+v", a)
		}
	})

	t.Run("NothingNewRecorded", func(t *testing.T) {
		t.Parallel()
		b := manualBundle(t, day)
		// An update is no word on employment; a hire re-sent under its old id is a
		// duplicate and records nothing.
		b.record(t, connector.Fact{WorkerID: "w1", Kind: connector.KindUpdated, Effective: b.clock(), Profile: connector.Profile{JobTitle: "Chef"}})
		if a := b.account(t, "hr:w1"); a.Active {
			t.Fatalf("reactivated without a hire, rehire or resume recorded since: %+v", a)
		}
		if n := manualReviews(t, b); n != 1 {
			t.Fatalf("%d review items say deactivated outside hrsync; want 1", n)
		}
	})

	t.Run("ReactivateManualPolicy", func(t *testing.T) {
		t.Parallel()
		b := manualBundle(t, day)
		conv, err := connector.NewConverger(connector.ConvergerConfig{Store: b.db, LMS: b.lms, Feeds: b.feeds, Now: b.clock,
			Policy: func(string) connector.Policy { return connector.Policy{ReactivateManual: true} }})
		if err != nil {
			t.Fatal(err)
		}
		b.conv = conv
		b.record(t, connector.Fact{WorkerID: "w1", Kind: connector.KindUpdated, Effective: b.clock(), Profile: connector.Profile{JobTitle: "Chef"}})
		if a := b.account(t, "hr:w1"); !a.Active {
			t.Fatalf("reactivate_manual on, nothing new recorded: the account stayed inactive: %+v", a)
		}
		if n := manualReviews(t, b); n != 0 {
			t.Fatalf("%d review items with reactivate_manual on", n)
		}
	})

	t.Run("LeaveInForceKeepsItOff", func(t *testing.T) {
		t.Parallel()
		b := manualBundle(t, day)
		// A rehire and then a leave that follows it, both recorded since: HR's
		// last word is the leave, so the account stays off (and hrsync has
		// nothing to reactivate).
		b.record(t, connector.Fact{WorkerID: "w1", Kind: connector.KindRehired, Effective: b.clock(), Profile: profile("ann@example.com")})
		b.set(b.clock().AddDate(0, 0, 1))
		b.record(t, connector.Fact{WorkerID: "w1", Kind: connector.KindLeft, Effective: b.clock().Add(-time.Hour)})
		// The rehire took effect for a day and brought the account back; the
		// leave deactivated it again, as hrsync's own action.
		if a := b.account(t, "hr:w1"); a.Active {
			t.Fatalf("active after a leave in force: %+v", a)
		}
	})

	t.Run("FutureRehireWaitsForItsDate", func(t *testing.T) {
		t.Parallel()
		b := manualBundle(t, day)
		start := b.clock().AddDate(0, 0, 10)
		b.record(t, connector.Fact{WorkerID: "w1", Kind: connector.KindRehired, Effective: start, Profile: profile("ann@example.com")})
		b.record(t, connector.Fact{WorkerID: "w1", Kind: connector.KindUpdated, Effective: b.clock(), Profile: connector.Profile{JobTitle: "Chef"}})
		if a := b.account(t, "hr:w1"); a.Active {
			t.Fatalf("a rehire dated in ten days brought the account back today: %+v", a)
		}
		b.set(start)
		b.converge(t)
		if a := b.account(t, "hr:w1"); !a.Active {
			t.Fatalf("the rehire came due and the account stayed inactive: %+v", a)
		}
	})
}

func TestConvergerReactivateManualPolicy(t *testing.T) {
	t.Parallel()
	day := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	ctx := context.Background()
	b := setup(t, day)
	conv, err := connector.NewConverger(connector.ConvergerConfig{Store: b.db, LMS: b.lms, Feeds: b.feeds, Now: b.clock,
		Policy: func(string) connector.Policy {
			return connector.Policy{Leaver: connector.LeaverDeactivate, ReactivateManual: true}
		}})
	if err != nil {
		t.Fatal(err)
	}
	b.conv = conv
	b.record(t, connector.Fact{WorkerID: "w1", Kind: connector.KindHired, Effective: day, Profile: profile("ann@example.com")})
	a := b.account(t, "hr:w1")
	_, _ = b.lms.SetActive(ctx, a.ID, false)
	b.set(day.AddDate(0, 1, 0))
	b.record(t, connector.Fact{WorkerID: "w1", Kind: connector.KindUpdated, Effective: b.clock(), Profile: connector.Profile{JobTitle: "Chef"}})
	if !b.account(t, "hr:w1").Active {
		t.Fatal("with reactivate_manual on, the account stays inactive")
	}
}

func TestConvergerOrganizationScope(t *testing.T) {
	t.Parallel()
	day := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	ctx := context.Background()
	acme := connector.DefaultFeed("partner-acme", connector.FeedPartner)
	acme.Scope.Organizations = []string{"Acme"}
	b := setup(t, day, acme)
	// An account in another organisation carries acme's externalId: out of scope.
	if _, err := b.lms.CreateAccount(ctx, connector.Account{ExternalID: "partner-acme:p1", UserName: "p1@acme.example",
		Active: true, Organization: "Globex", Profile: connector.Profile{Email: "p1@acme.example"}}); err != nil {
		t.Fatal(err)
	}
	b.record(t, connector.Fact{Feed: "partner-acme", WorkerID: "p1", Kind: connector.KindHired, Effective: day, Profile: profile("p1@acme.example")})
	b.record(t, connector.Fact{Feed: "partner-acme", WorkerID: "p1", Kind: connector.KindLeft, Effective: day})
	if found, _ := b.lms.FindAccounts(ctx, connector.AccountFilter{Attr: connector.ByExternalID, Value: "partner-acme:p1"}); len(found) != 1 || !found[0].Active {
		t.Fatalf("the feed touched an account of another organisation: %+v", found)
	}
	// Accounts it creates land in its organisation.
	b.record(t, connector.Fact{Feed: "partner-acme", WorkerID: "p2", Kind: connector.KindHired, Effective: day, Profile: profile("p2@acme.example")})
	if a := b.account(t, "partner-acme:p2"); a.Organization != "Acme" {
		t.Fatalf("created account's organization = %q, want Acme", a.Organization)
	}
}

func TestConvergerLeaverDeletePolicy(t *testing.T) {
	t.Parallel()
	day := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	ctx := context.Background()
	for _, leaver := range []connector.LeaverAction{connector.LeaverDeleteIfNoActivity, connector.LeaverDeactivateThenDelete} {
		t.Run(string(leaver), func(t *testing.T) {
			t.Parallel()
			b := setup(t, day)
			pol := connector.Policy{Leaver: leaver, DeleteAfter: 30 * 24 * time.Hour}
			conv, err := connector.NewConverger(connector.ConvergerConfig{Store: b.db, LMS: b.lms, Feeds: b.feeds, Now: b.clock,
				Policy: func(string) connector.Policy { return pol }})
			if err != nil {
				t.Fatal(err)
			}
			b.conv = conv
			b.record(t, connector.Fact{WorkerID: "idle", Kind: connector.KindHired, Effective: day, Profile: profile("idle@example.com")})
			b.record(t, connector.Fact{WorkerID: "used", Kind: connector.KindHired, Effective: day, Profile: connector.Profile{Email: "used@example.com"}})
			used := b.account(t, "hr:used")
			if err := b.lms.Enroll(used.ID, "safety-101", day); err != nil { // enrolled, never started
				t.Fatal(err)
			}
			leave := day.AddDate(0, 1, 0)
			b.set(leave)
			b.record(t, connector.Fact{WorkerID: "idle", Kind: connector.KindLeft, Effective: leave})
			b.record(t, connector.Fact{WorkerID: "used", Kind: connector.KindLeft, Effective: leave})
			if a := b.account(t, "hr:idle"); a.Active {
				t.Fatal("a leaver is not deactivated first")
			}
			next, ok, _ := b.db.NextDue(ctx)
			if !ok || !next.Equal(leave.Add(pol.DeleteAfter)) {
				t.Fatalf("NextDue = %v %v, want the end of the grace period %v", next, ok, leave.Add(pol.DeleteAfter))
			}
			b.set(leave.Add(pol.DeleteAfter))
			b.converge(t)
			if found, _ := b.lms.FindAccounts(ctx, connector.AccountFilter{Attr: connector.ByExternalID, Value: "hr:idle"}); len(found) != 0 {
				t.Fatalf("the account without activity was not deleted: %+v", found)
			}
			if a := b.account(t, "hr:used"); a.Active {
				t.Fatal("the account with an enrollment was reactivated")
			}
			entries, _ := b.db.ListAudit(ctx, store.AuditFilter{WorkerID: "used", Action: connector.ActionDelete})
			if len(entries) != 1 || entries[0].Outcome != connector.OutcomeSkipped || !strings.Contains(entries[0].Detail, "1 enrollments") {
				t.Fatalf("audit of the kept account: %+v", entries)
			}
			b.set(leave.Add(2 * pol.DeleteAfter))
			b.converge(t)
			if n := b.lms.Count(); n != 1 {
				t.Fatalf("%d accounts after converging again, want 1 (the deleted one stays deleted)", n)
			}
		})
	}
}
