package connector_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/store"
)

// The invariant of DESIGN.md: for any permutation and duplication of a worker's
// facts, the final LMS state is the same as for in-order arrival. Each trial plays
// one random history twice through the real converger, a real (SQLite) store and
// the sandbox LMS, converging after every arrival: once in order, once shuffled
// with redeliveries. The LMS must end up the same.
func TestPropertyArrivalOrderDoesNotMatter(t *testing.T) {
	t.Parallel()
	trials := 150
	if testing.Short() {
		trials = 30
	}
	for trial := range trials {
		rng := rand.New(rand.NewPCG(uint64(trial), 7))
		facts := randomHistory(rng)
		end := facts[len(facts)-1].Effective.Add(time.Hour)

		inOrder := slices.Clone(facts)
		sort.SliceStable(inOrder, func(i, j int) bool { return inOrder[i].Time.Before(inOrder[j].Time) })
		want := playArrivals(t, inOrder, end)

		shuffled := slices.Clone(facts)
		for range rng.IntN(4) { // redeliveries
			shuffled = append(shuffled, facts[rng.IntN(len(facts))])
		}
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		got := playArrivals(t, shuffled, end)

		if !reflect.DeepEqual(got, want) {
			t.Fatalf("trial %d: arrival order changed the LMS.\nfacts: %s\nin order: %v\nshuffled: %v", trial, describe(facts), want, got)
		}
	}
}

// lmsState is the comparable part of an LMS: accounts by externalId, without the
// ids the LMS assigned.
type lmsState map[string]string

// playArrivals records facts one at a time, converging after each, and returns
// the LMS state at the end.
func playArrivals(t *testing.T, arrivals []connector.Fact, now time.Time) lmsState {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "p.db"), nil, store.Migrate(true))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	clock := func() time.Time { return now }
	db.Now = clock
	lms := sandbox.New(sandbox.WithClock(clock))
	feeds, _ := connector.NewFeeds(connector.DefaultFeed("hr", connector.FeedHR))
	conv, err := connector.NewConverger(connector.ConvergerConfig{Store: db, LMS: lms, Feeds: feeds, Now: clock, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range arrivals {
		if _, err := db.RecordFacts(ctx, []connector.Fact{f}); err != nil {
			t.Fatal(err)
		}
		if _, err := conv.Drain(ctx, 100); err != nil {
			t.Fatal(err)
		}
	}
	state := lmsState{}
	for _, r := range lms.Snapshot() {
		a := r.Account
		if _, dup := state[a.ExternalID]; dup {
			t.Fatalf("two accounts with externalId %q", a.ExternalID)
		}
		state[a.ExternalID] = fmt.Sprintf("user=%s active=%v %+v", a.UserName, a.Active, a.Profile)
	}
	return state
}

// randomHistory invents one person's life at the company: hired, maybe renamed,
// maybe on a leave of absence (resumed or not), maybe leaving and coming back
// (perhaps under a new worker id, perhaps with a new email), maybe leaving again.
// Event times are mostly the effective times; some events are recorded ahead of
// their effective date.
func randomHistory(rng *rand.Rand) []connector.Fact {
	base := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	day := func(d int) time.Time { return base.AddDate(0, 0, d) }
	id, email := "w1", "ann@example.com"
	seq := 0
	var facts []connector.Fact
	at := 0
	add := func(kind connector.Kind, mutate func(*connector.Fact)) {
		seq++
		at += 1 + rng.IntN(30)
		f := connector.Fact{Feed: "hr", WorkerID: id, Source: "/feeds/hr", ID: fmt.Sprintf("e%d", seq), Kind: kind,
			Effective: day(at), Time: day(at)}
		if rng.IntN(3) == 0 {
			f.Time = day(at - rng.IntN(at)) // recorded ahead of time
		}
		if kind != connector.KindLeft {
			f.Profile = connector.Profile{Email: email, GivenName: "Ann", FamilyName: "Lee", EmployeeNumber: "E1"}
		}
		if mutate != nil {
			mutate(&f)
		}
		facts = append(facts, f)
	}
	add(connector.KindHired, nil)
	if rng.IntN(2) == 0 {
		add(connector.KindUpdated, func(f *connector.Fact) { f.Profile = connector.Profile{FamilyName: "Lee-Smith"} })
	}
	if rng.IntN(2) == 0 { // a leave of absence, perhaps still running
		add(connector.KindSuspended, func(f *connector.Fact) { f.Profile, f.Reason = connector.Profile{}, "parental leave" })
		if rng.IntN(3) > 0 {
			add(connector.KindResumed, nil)
		}
	}
	if rng.IntN(4) > 0 {
		add(connector.KindLeft, func(f *connector.Fact) { f.Reason = "end of contract" })
		if rng.IntN(3) > 0 {
			prev := ""
			switch rng.IntN(3) {
			case 0:
				email = "ann.lee@example.com"
			case 1:
				prev, id = id, "w2"
			}
			add(connector.KindRehired, func(f *connector.Fact) { f.PreviousWorkerID = prev })
			if rng.IntN(3) == 0 {
				add(connector.KindLeft, nil)
			}
		}
	}
	return facts
}

func describe(facts []connector.Fact) string {
	s := ""
	for _, f := range facts {
		s += fmt.Sprintf("\n  %s %s eff=%s rec=%s prev=%q email=%q", f.Kind, f.WorkerID,
			f.Effective.Format(time.DateOnly), f.Time.Format(time.DateOnly), f.PreviousWorkerID, f.Profile.Email)
	}
	return s
}
