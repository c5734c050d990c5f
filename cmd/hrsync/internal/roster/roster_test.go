package roster

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
)

func sha(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

// rosterCSV is a roster of n people of partner-acme, w-1 to w-n.
func rosterCSV(n int) string {
	var b strings.Builder
	b.WriteString("worker_id,email,given_name,family_name\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "w-%d,p%d@acme.example,P%d,Acme\n", i, i, i)
	}
	return b.String()
}

// waitFor polls cond every 20ms until it holds, and fails t if it does not
// within timeout, with what and cond's last word.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %v: %s", what, timeout, why)
		}
		<-time.After(20 * time.Millisecond)
	}
}

// TestTruncatedRosterIsHeld: a partner with 5,000 people sends a file with 5 of
// them. The upload is held whole and publishes nothing (the uploader has no NATS
// connection here: publishing anything would fail the test).
func TestTruncatedRosterIsHeld(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db, err := store.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "h.db"), nil, store.Migrate(true))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	acme := connector.DefaultFeed("partner-acme", connector.FeedPartner)
	feeds, _ := connector.NewFeeds(acme)
	now := time.Now().UTC()
	var facts []connector.Fact
	for i := 1; i <= 5000; i++ {
		facts = append(facts, connector.Fact{Feed: acme.Name, WorkerID: fmt.Sprintf("w-%d", i), Source: acme.Source,
			ID: fmt.Sprintf("h-%d", i), Kind: connector.KindHired, Effective: now.AddDate(0, -1, 0), Time: now.AddDate(0, -1, 0),
			Profile: connector.Profile{Email: fmt.Sprintf("p%d@acme.example", i)}})
	}
	if _, err := db.RecordFacts(ctx, facts); err != nil {
		t.Fatal(err)
	}
	up := &Uploader{Store: db, Feeds: feeds, Rosters: map[string]Config{}, Now: time.Now,
		Log: slog.New(slog.DiscardHandler), ThresholdsFunc: func(string) connector.Thresholds { return connector.DefaultThresholds() }}
	res, err := up.Upload(ctx, Request{Feed: acme.Name, Mode: "snapshot", Body: strings.NewReader(rosterCSV(5)), Via: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != "held" || res.Published != 0 || res.Summary.Leavers != 4995 || res.Summary.Active != 5000 {
		t.Fatalf("result = %+v, want held with 4995 leavers of 5000 and nothing published", res)
	}
	h, err := db.GetHold(ctx, res.HoldID)
	if err != nil || h.Counts.Removals != 4995 || h.Status != connector.HoldOpen {
		t.Fatalf("hold = %+v, %v", h, err)
	}
	if c, _ := db.Counts(ctx); c.Facts != 5000 {
		t.Fatalf("%d facts: the held upload recorded something", c.Facts)
	}
	// The approver sees who: each held person with the email the feed knows.
	ws, err := db.HoldWorkers(ctx, res.HoldID, connector.WorkerKey{}, 3)
	if err != nil || len(ws) != 3 {
		t.Fatalf("held workers = %+v, %v", ws, err)
	}
	for _, w := range ws {
		if w.Email != fmt.Sprintf("p%s@acme.example", strings.TrimPrefix(w.Worker.WorkerID, "w-")) || w.Action != connector.ActionDeactivate {
			t.Errorf("held worker %+v: want the email of the person the feed knows", w)
		}
	}
}
