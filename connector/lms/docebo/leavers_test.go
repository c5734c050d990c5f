package docebo_test

import (
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/docebo"
	"github.com/hrsync/hrsync/connector/lms/docebo/docebosim"
	"github.com/hrsync/hrsync/connector/lms/guard"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/store"
)

// TestConvergerLeaversDocebo: 2,000 hires, then 2,000 leavers, through the
// converger's batch path, the guard and the account mirror, on the Docebo
// simulator. The leave takes at most 0.02 calls per change with claims of 1,000
// workers and with the daemon's default of 64: the accounts are known from their
// creates, so the leave is only change_status lists (about 0.005 and 0.016 a
// change). Without the mirror, Docebo having no read of many users by id, each
// claimed batch of 64 walked the user list first: about 0.18 a change.
func TestConvergerLeaversDocebo(t *testing.T) {
	for _, batch := range []int{1000, 64} {
		t.Run(fmt.Sprintf("claim-%d", batch), func(t *testing.T) { convergerLeaversDocebo(t, batch) })
	}
}

func convergerLeaversDocebo(t *testing.T, batch int) {
	ctx := t.Context()
	sb := sandbox.New(docebosim.SandboxOptions()...)
	sim := docebosim.New(sb, docebosim.Config{ClientID: "c", ClientSecret: "s"})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	c, err := docebo.New(srv.URL, "c", "s", docebo.WithFields(docebosim.Fields), docebo.WithHTTPClient(srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	g := guard.New(c, guard.Config{})
	db, err := store.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "h.db"), nil, store.Migrate(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	feeds, err := connector.NewFeeds(connector.DefaultFeed("hr", connector.FeedHR))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	clock := func() time.Time { return now }
	db.Now = clock
	// With the account mirror (connector/mirror.go), as the app runs it: a
	// leaver's account, known from its create, is deactivated without a read,
	// which on Docebo (no read by a list of ids) is what keeps a claimed batch
	// of leavers at one change_status call.
	conv, err := connector.NewConverger(connector.ConvergerConfig{Store: db, LMS: g, Feeds: feeds, Now: clock, Batch: batch, Concurrency: 4, Mirror: db})
	if err != nil {
		t.Fatal(err)
	}
	const n = 2000
	record := func(kind connector.Kind, prefix string) {
		var facts []connector.Fact
		for i := range n {
			id := fmt.Sprintf("w%05d", i)
			facts = append(facts, connector.Fact{Feed: "hr", Source: feeds["hr"].Source, ID: prefix + id, WorkerID: id, Kind: kind,
				Effective: now.Add(-time.Minute), Time: now, Profile: connector.Profile{Email: id + "@example.com", GivenName: "A", FamilyName: id}})
		}
		if _, err := db.RecordFacts(ctx, facts); err != nil {
			t.Fatal(err)
		}
		if _, err := conv.Drain(ctx, 100); err != nil {
			t.Fatal(err)
		}
	}
	before := sim.Calls("")
	record(connector.KindHired, "h-")
	hires := sim.Calls("") - before
	now = now.Add(time.Hour)
	before = sim.Calls("")
	record(connector.KindLeft, "l-")
	leaves := sim.Calls("") - before
	inactive := 0
	for _, r := range sb.Snapshot() {
		if !r.Account.Active {
			inactive++
		}
	}
	t.Logf("hires: %d calls for %d (%.3f per change); leaves: %d calls for %d (%.4f per change), change_status %d; %d inactive",
		hires, n, float64(hires)/n, leaves, n, float64(leaves)/n, sim.Calls("PUT /manage/v1/user/change_status"), inactive)
	if inactive != n {
		t.Errorf("leaves: %d inactive, want %d", inactive, n)
	}
	if float64(leaves)/n > 0.02 {
		t.Errorf("leaves: %d inactive, %.4f calls per change; want %d and at most 0.02", inactive, float64(leaves)/n, n)
	}
}
