package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
)

// explainBundle is a migrated store, a sandbox LMS over HTTP and the
// environment "hrsync explain" reads them from.
type explainBundle struct {
	db  *store.DB
	lms *testLMS
	env map[string]string
	seq int
}

func setupExplain(t *testing.T, config string) *explainBundle {
	t.Helper()
	url := "sqlite://" + filepath.Join(t.TempDir(), "hrsync.db")
	migrateDB(t, url)
	db := openStore(t, url)
	l := startLMS(t, nil)
	return &explainBundle{db: db, lms: l, env: map[string]string{"DATABASE_URL": url, "LMS_URL": l.url, "LMS_TOKEN": l.token,
		"HRSYNC_CONFIG": writeConfig(t, config)}}
}

// record stores one fact of feed hr about worker, effective an hour ago.
func (b *explainBundle) record(t *testing.T, worker string, kind connector.Kind, reason string) {
	t.Helper()
	b.seq++
	at := time.Now().Add(-time.Hour).Add(time.Duration(b.seq) * time.Second).UTC()
	f := connector.Fact{Source: connector.DefaultFeed("hr", connector.FeedHR).Source, ID: fmt.Sprintf("e%d", b.seq), Feed: "hr",
		WorkerID: worker, Kind: kind, Effective: at, Time: at, Reason: reason}
	if kind == connector.KindHired {
		f.Profile = connector.Profile{Email: worker + "@example.com", GivenName: "Ann", FamilyName: "Lee", EmployeeNumber: "E-" + worker}
	}
	if _, err := b.db.RecordFacts(t.Context(), []connector.Fact{f}); err != nil {
		t.Fatal(err)
	}
}

func (b *explainBundle) explain(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, stderr, err := runCLI(t, b.env, append([]string{"explain"}, args...)...)
	t.Logf("hrsync explain %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
	return out, err
}

func (b *explainBundle) account(t *testing.T, worker string) connector.Account {
	t.Helper()
	found, err := b.lms.sb.FindAccounts(t.Context(), connector.AccountFilter{Attr: connector.ByExternalID, Value: "hr:" + worker})
	if err != nil || len(found) != 1 {
		t.Fatalf("accounts of hr:%s: %v (%v)", worker, found, err)
	}
	return found[0]
}

// explainJSON is the part of "explain --format json" the tests read.
type explainJSON struct {
	Worker string           `json:"worker"`
	Facts  []connector.Fact `json:"facts"`
	Want   struct {
		State connector.State `json:"state"`
	} `json:"want"`
	Account *connector.Account `json:"account"`
	Plan    []struct {
		Kind      connector.ActionKind `json:"kind"`
		AccountID string               `json:"account_id"`
	} `json:"plan"`
	Audit   []connector.AuditEntry `json:"audit"`
	Applied *struct {
		Steps []connector.AuditEntry `json:"steps"`
	} `json:"applied"`
}

func TestExplainLeaver(t *testing.T) {
	t.Parallel()
	// settle: 1s, so that --apply's wait for the removal's burst is exercised.
	b := setupExplain(t, "safeguard: {settle: 1s}\n")
	b.record(t, "w1", connector.KindHired, "")
	// The hire, converged through the command: the account is created.
	out, err := b.explain(t, "--worker", "hr:w1", "--apply")
	if err != nil || !strings.Contains(out, "create") || !b.account(t, "w1").Active {
		t.Fatalf("explain --apply of a hire: %v\n%s", err, out)
	}
	acct := b.account(t, "w1")
	b.record(t, "w1", connector.KindLeft, "resigned")

	t.Run("DryRun", func(t *testing.T) {
		out, err := b.explain(t, "--worker", "hr:w1")
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"hired", "left", "resigned", "inactive (resigned)", acct.ID + " (active)", "link of w1",
			"deactivate " + acct.ID, "create"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q", want)
			}
		}
		out, err = b.explain(t, "--worker", "hr:w1", "--format", "json")
		var got explainJSON
		if err != nil || json.Unmarshal([]byte(out), &got) != nil {
			t.Fatalf("--format json: %v\n%s", err, out)
		}
		if got.Worker != "hr:w1" || len(got.Facts) != 2 || got.Facts[0].Kind != connector.KindHired || got.Facts[1].Kind != connector.KindLeft ||
			got.Want.State != connector.StateInactive || got.Account == nil || got.Account.ID != acct.ID || !got.Account.Active ||
			len(got.Plan) != 1 || got.Plan[0].Kind != connector.ActionDeactivate || got.Plan[0].AccountID != acct.ID ||
			len(got.Audit) != 1 || got.Audit[0].Action != connector.ActionCreate || got.Applied != nil {
			t.Fatalf("--format json: %+v", got)
		}
		if !b.account(t, "w1").Active {
			t.Fatal("explain without --apply deactivated the account")
		}
	})

	t.Run("Apply", func(t *testing.T) {
		out, err := b.explain(t, "--worker", "hr:w1", "--apply", "--format", "json")
		var got explainJSON
		if err != nil || json.Unmarshal([]byte(out), &got) != nil {
			t.Fatalf("--apply: %v\n%s", err, out)
		}
		if b.account(t, "w1").Active {
			t.Fatal("the account is still active after --apply")
		}
		if got.Applied == nil || len(got.Applied.Steps) != 1 || got.Applied.Steps[0].Action != connector.ActionDeactivate ||
			got.Applied.Steps[0].Outcome != connector.OutcomeOK || got.Applied.Steps[0].AccountID != acct.ID {
			t.Fatalf("applied steps: %+v", got.Applied)
		}
		audit, err := b.db.ListAudit(t.Context(), store.AuditFilter{Feed: "hr", WorkerID: "w1"})
		if err != nil || len(audit) != 2 || audit[0].Action != connector.ActionDeactivate || audit[0].Outcome != connector.OutcomeOK {
			t.Fatalf("audit: %+v (%v)", audit, err)
		}
		// In step now: nothing more to do.
		out, err = b.explain(t, "--worker", "hr:w1", "--apply")
		if err != nil || !strings.Contains(out, "nothing to do") || !strings.Contains(out, "none (no LMS call, no hold, no review)") {
			t.Fatalf("second --apply: %v\n%s", err, out)
		}
	})
}

func TestExplainHeld(t *testing.T) {
	t.Parallel()
	// Any removal of the feed's accounts is more than 1%: held.
	b := setupExplain(t, "safeguard: {percent: 1, count: 500, min_removals: 0, settle: 0s}\n")
	for _, w := range []string{"w1", "w2"} {
		b.record(t, w, connector.KindHired, "")
		if _, err := b.explain(t, "--worker", "hr:"+w, "--apply"); err != nil {
			t.Fatal(err)
		}
	}
	b.record(t, "w1", connector.KindLeft, "resigned")
	out, err := b.explain(t, "--worker", "hr:w1", "--apply")
	if !needsPerson(err) || !strings.Contains(err.Error(), "held in hold") || !strings.Contains(out, "held") {
		t.Fatalf("--apply under a hold: err %v (exit %d), want exit 3 naming the hold\n%s", err, exitCode(err), out)
	}
	if !b.account(t, "w1").Active {
		t.Fatal("--apply deactivated an account whose removal is held")
	}
	holds, err := b.db.ListHolds(t.Context(), store.HoldFilter{Feed: "hr", Status: connector.HoldOpen})
	if err != nil || len(holds) != 1 {
		t.Fatalf("open holds: %+v (%v)", holds, err)
	}
	// Again: the open hold still holds it.
	if _, err := b.explain(t, "--worker", "hr:w1", "--apply"); !needsPerson(err) || !b.account(t, "w1").Active {
		t.Fatalf("second --apply under the hold: %v", err)
	}
}

func TestExplainUnknownWorker(t *testing.T) {
	t.Parallel()
	b := setupExplain(t, "safeguard: {settle: 0s}\n")
	b.record(t, "w1", connector.KindHired, "")
	for _, args := range [][]string{{"--worker", "hr:nobody"}, {"--worker", "hr:nobody", "--apply"}} {
		_, err := b.explain(t, args...)
		if err == nil || exitCode(err) != exitFailed || !strings.Contains(err.Error(), "hr:nobody") || !strings.Contains(err.Error(), "no facts") {
			t.Errorf("%q: err %v (exit %d), want exit 1 naming hr:nobody", args, err, exitCode(err))
		}
	}
	if _, err := b.explain(t, "--worker", "acme:w1"); err == nil || exitCode(err) != exitFailed || !strings.Contains(err.Error(), "acme") {
		t.Errorf("unknown feed: %v", err)
	}
	if _, err := b.explain(t, "--worker", "w1"); exitCode(err) != exitUsage {
		t.Errorf("--worker without a feed: %v (exit %d), want a usage error", err, exitCode(err))
	}
	if n := b.lms.sb.Count(); n != 0 {
		t.Errorf("%d accounts: a failed explain touched the LMS", n)
	}
}
