package connector_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/store"
)

func TestThresholdsExceeded(t *testing.T) {
	t.Parallel()
	def := connector.DefaultThresholds()
	tests := []struct {
		name             string
		th               connector.Thresholds
		removals, active int
		want             bool
		reason           string
	}{
		{"NoRemovals", def, 0, 0, false, ""},
		{"AtPercentIsNotMore", def, 10, 50, false, ""},
		{"OverPercent", def, 11, 50, true, "11 removals of 50 active accounts (22.0%) is more than 20%"},
		{"SmallFeedUnderFloor", def, 5, 6, false, ""},
		{"SmallFeedOverFloor", def, 6, 6, true, "6 removals of 6 active accounts (100.0%) is more than 20%"},
		{"AtCountIsNotMore", connector.Thresholds{Count: 500}, 500, 100000, false, ""},
		{"OverCount", def, 501, 100000, true, "501 removals is more than 500 accounts"},
		{"CountBeatsFloor", connector.Thresholds{Count: 3, MinRemovals: 10}, 4, 1000, true, "4 removals is more than 3 accounts"},
		{"NoActiveBase", connector.Thresholds{Percent: 20}, 1, 0, true, "1 removals of 0 active accounts (100.0%) is more than 20%"},
		{"ZeroLimitsNeverHold", connector.Thresholds{}, 10000, 1, false, ""},
		{"TruncatedRoster", def, 4995, 5000, true, "4995 removals is more than 500 accounts"},
		{"FractionalPercent", connector.Thresholds{Percent: 2.5}, 3, 100, true, "3 removals of 100 active accounts (3.0%) is more than 2.5%"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, reason := tt.th.Exceeded(tt.removals, tt.active)
			if got != tt.want || reason != tt.reason {
				t.Fatalf("Exceeded(%d, %d) = %v %q, want %v %q", tt.removals, tt.active, got, reason, tt.want, tt.reason)
			}
		})
	}
}

// setupSafeguard is setup with the safeguard on at its defaults, and size people of
// feed hr hired and converged.
func setupSafeguard(t *testing.T, size int) *testBundle {
	t.Helper()
	start := time.Date(2026, 10, 31, 9, 0, 0, 0, time.UTC)
	b := setup(t, start)
	sg, err := connector.NewSafeguard(connector.SafeguardConfig{Store: b.db, Now: b.clock})
	if err != nil {
		t.Fatal(err)
	}
	b.conv, err = connector.NewConverger(connector.ConvergerConfig{Store: b.db, LMS: b.lms, Feeds: b.feeds, Now: b.clock, Safeguard: sg,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError}))})
	if err != nil {
		t.Fatal(err)
	}
	var hires []connector.Fact
	for i := range size {
		id := fmt.Sprintf("w%02d", i)
		hires = append(hires, connector.Fact{WorkerID: id, Kind: connector.KindHired, Effective: start.AddDate(0, -6, 0),
			Profile: connector.Profile{Email: id + "@example.com", GivenName: "Given", FamilyName: id}})
	}
	b.recordAll(t, hires...)
	if n := b.lms.Count(); n != size {
		t.Fatalf("%d accounts after the hires, want %d", n, size)
	}
	return b
}

// recordAll stores facts recorded at the test clock in one batch, then converges.
func (b *testBundle) recordAll(t *testing.T, facts ...connector.Fact) {
	t.Helper()
	for i := range facts {
		b.seq++
		f := &facts[i]
		f.Feed = "hr"
		f.Source, f.ID = b.feeds[f.Feed].Source, fmt.Sprintf("e%d", b.seq)
		if f.Time.IsZero() {
			f.Time = b.clock()
		}
	}
	if _, err := b.db.RecordFacts(t.Context(), facts); err != nil {
		t.Fatal(err)
	}
	b.converge(t)
}

// leaveMany records a leave for the first n people, effective now.
func (b *testBundle) leaveMany(t *testing.T, n int) {
	t.Helper()
	var leaves []connector.Fact
	for i := range n {
		leaves = append(leaves, connector.Fact{WorkerID: fmt.Sprintf("w%02d", i), Kind: connector.KindLeft, Effective: b.clock(), Reason: "truncated feed"})
	}
	b.recordAll(t, leaves...)
}

func (b *testBundle) deactivations() int {
	n := 0
	for _, op := range b.lms.Ops() {
		if op.Kind == sandbox.OpDeactivate {
			n++
		}
	}
	return n
}

// oneHold returns the only hold, checking there is exactly one.
func (b *testBundle) oneHold(t *testing.T) connector.Hold {
	t.Helper()
	holds, err := b.db.ListHolds(t.Context(), store.HoldFilter{})
	if err != nil || len(holds) != 1 {
		t.Fatalf("holds = %+v (err %v), want exactly one", holds, err)
	}
	return holds[0]
}

func (b *testBundle) outcomes(t *testing.T, action connector.ActionKind) map[connector.Outcome]int {
	t.Helper()
	audit, err := b.db.ListAudit(t.Context(), store.AuditFilter{Feed: "hr", Action: action})
	if err != nil {
		t.Fatal(err)
	}
	out := map[connector.Outcome]int{}
	for _, a := range audit {
		out[a.Outcome]++
	}
	return out
}

// heldMassLeave: 50 active people, 40 leave facts at once. The default threshold
// (more than 20% of 50) lets 10 run; the other 30 wait in one hold.
func heldMassLeave(t *testing.T) (*testBundle, connector.Hold) {
	t.Helper()
	b := setupSafeguard(t, 50)
	b.set(b.clock().Add(time.Hour))
	b.leaveMany(t, 40)
	if n := b.deactivations(); n != 10 {
		t.Fatalf("%d deactivations, want the threshold's 10", n)
	}
	h := b.oneHold(t)
	if h.Status != connector.HoldOpen || h.Kind != connector.HoldLive || h.Counts.Removals != 30 || h.Counts.Active != 50 ||
		!strings.Contains(h.Reason, "11 removals of 50 active accounts") {
		t.Fatalf("hold = %+v", h)
	}
	if got := b.outcomes(t, connector.ActionDeactivate); got[connector.OutcomeOK] != 10 || got[connector.OutcomeHeld] != 30 {
		t.Fatalf("deactivate audit outcomes = %v, want 10 ok and 30 held", got)
	}
	// Nothing more runs while the hold is open: converging again, a reconciler
	// marking the held workers due, a fact for one of them.
	ws, err := b.db.HoldWorkers(t.Context(), h.ID, connector.WorkerKey{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]connector.WorkerKey, len(ws))
	for i, w := range ws {
		keys[i] = w.Worker
	}
	if _, err := b.db.MarkDue(t.Context(), keys, b.clock()); err != nil {
		t.Fatal(err)
	}
	b.converge(t)
	b.recordAll(t, connector.Fact{WorkerID: ws[0].Worker.WorkerID, Kind: connector.KindUpdated, Effective: b.clock(), Profile: connector.Profile{JobTitle: "Chef"}})
	if n := b.deactivations(); n != 10 {
		t.Fatalf("%d deactivations while the hold is open, want 10", n)
	}
	if h2 := b.oneHold(t); h2.ID != h.ID || h2.Counts.Removals != 30 {
		t.Fatalf("hold changed: %+v", h2)
	}
	return b, h
}

func TestSafeguardHoldsMassLeave(t *testing.T) {
	t.Parallel()
	b, _ := heldMassLeave(t)
	// Hires and rehires are never held.
	b.recordAll(t, connector.Fact{WorkerID: "new1", Kind: connector.KindHired, Effective: b.clock(), Profile: profile("new1@example.com")})
	if a := b.account(t, "hr:new1"); !a.Active {
		t.Fatal("a hire during an open hold did not run")
	}
	b.recordAll(t, connector.Fact{WorkerID: "w00", Kind: connector.KindRehired, Effective: b.clock(), Profile: connector.Profile{Email: "w00@example.com"}})
	if a := b.account(t, "hr:w00"); !a.Active {
		t.Fatal("a rehire during an open hold did not run")
	}
}

func TestSafeguardApprove(t *testing.T) {
	t.Parallel()
	b, h := heldMassLeave(t)
	b.set(b.clock().Add(10 * time.Minute))
	if _, err := b.db.DecideHold(t.Context(), h.ID, connector.HoldDecision{Approve: true, By: "alice", Reason: "end of season"}); err != nil {
		t.Fatal(err)
	}
	b.converge(t)
	if n := b.deactivations(); n != 40 {
		t.Fatalf("%d deactivations after the approval, want 40", n)
	}
	for i := range 40 {
		if a := b.account(t, fmt.Sprintf("hr:w%02d", i)); a.Active {
			t.Fatalf("w%02d still active after the approval", i)
		}
	}
	audit, err := b.db.ListAudit(t.Context(), store.AuditFilter{Feed: "hr", WorkerID: "w39"})
	if err != nil {
		t.Fatal(err)
	}
	var approved, ran bool
	for _, a := range audit {
		approved = approved || (a.Outcome == connector.OutcomeApproved && strings.Contains(a.Detail, "alice"))
		ran = ran || (a.Action == connector.ActionDeactivate && a.Outcome == connector.OutcomeOK && strings.Contains(a.Detail, fmt.Sprintf("approved in hold %d", h.ID)))
	}
	if !approved || !ran {
		t.Fatalf("audit of w39 lacks the approval (%v) or the approved deactivation (%v): %+v", approved, ran, audit)
	}
	if got := b.oneHold(t); got.Status != connector.HoldApproved {
		t.Fatalf("hold = %+v", got)
	}
}

func TestSafeguardReject(t *testing.T) {
	t.Parallel()
	b, h := heldMassLeave(t)
	b.set(b.clock().Add(10 * time.Minute))
	if _, err := b.db.DecideHold(t.Context(), h.ID, connector.HoldDecision{By: "bob", Reason: "truncated export"}); err != nil {
		t.Fatal(err)
	}
	b.converge(t)
	ws, err := b.db.HoldWorkers(t.Context(), h.ID, connector.WorkerKey{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]connector.WorkerKey, len(ws))
	for i, w := range ws {
		keys[i] = w.Worker
	}
	// A reconciler marking them due changes nothing: the same facts, rejected.
	if _, err := b.db.MarkDue(t.Context(), keys, b.clock()); err != nil {
		t.Fatal(err)
	}
	b.converge(t)
	if n := b.deactivations(); n != 10 {
		t.Fatalf("%d deactivations after the rejection, want the 10 from before", n)
	}
	for _, w := range ws {
		if a := b.account(t, w.Worker.ExternalID()); !a.Active {
			t.Fatalf("%s deactivated after the rejection", w.Worker)
		}
	}
	if got := b.outcomes(t, connector.ActionDeactivate); got[connector.OutcomeSkipped] == 0 || got[connector.OutcomeRejected] != 30 {
		t.Fatalf("deactivate audit outcomes = %v, want skipped ones and 30 rejected", got)
	}
	// The feed keeps flowing: a hire runs, and so does a new leave of someone
	// else once the window has room again.
	b.set(b.clock().Add(2 * time.Hour))
	b.recordAll(t, connector.Fact{WorkerID: "new1", Kind: connector.KindHired, Effective: b.clock(), Profile: profile("new1@example.com")})
	if a := b.account(t, "hr:new1"); !a.Active {
		t.Fatal("a hire after the rejection did not run")
	}
	b.recordAll(t, connector.Fact{WorkerID: "w45", Kind: connector.KindLeft, Effective: b.clock()})
	if a := b.account(t, "hr:w45"); a.Active {
		t.Fatal("a leave of someone not held did not run after the rejection")
	}
	// A new fact for a rejected worker is decided afresh.
	b.recordAll(t, connector.Fact{WorkerID: ws[0].Worker.WorkerID, Kind: connector.KindLeft, Effective: b.clock(), Reason: "confirmed"})
	if a := b.account(t, ws[0].Worker.ExternalID()); a.Active {
		t.Fatal("a new leave fact for a rejected worker did not run")
	}
	if got := b.oneHold(t); got.Status != connector.HoldRejected || got.DecidedBy != "bob" {
		t.Fatalf("hold = %+v", got)
	}
}

// approvingSafeguard approves every hold it is told about, at once: a person who
// approves while the converger that held the plan has yet to commit it.
type approvingSafeguard struct {
	t        *testing.T
	next     connector.Safeguard
	db       *store.DB
	approved []int64
}

func (s *approvingSafeguard) CheckRemoval(ctx context.Context, r connector.Removal) (connector.RemovalVerdict, error) {
	v, err := s.next.CheckRemoval(ctx, r)
	if err == nil && !v.Allow && v.Status == connector.HoldOpen {
		if _, err := s.db.DecideHold(ctx, v.HoldID, connector.HoldDecision{Approve: true, By: "alice", Reason: "seen"}); err != nil {
			s.t.Errorf("DecideHold(%d): %v", v.HoldID, err)
		}
		s.approved = append(s.approved, v.HoldID)
	}
	return v, err
}

// TestSafeguardApprovalDuringConvergeIsKept: a hold approved between the
// safeguard's verdict and the commit of the held plan runs (issue #10, defect 2:
// the commit cleared the due time the approval had set).
func TestSafeguardApprovalDuringConvergeIsKept(t *testing.T) {
	t.Parallel()
	b := setupSafeguard(t, 10)
	sg, err := connector.NewSafeguard(connector.SafeguardConfig{Store: b.db, Now: b.clock, Default: connector.Thresholds{Count: 1}})
	if err != nil {
		t.Fatal(err)
	}
	as := &approvingSafeguard{t: t, next: sg, db: b.db}
	b.conv, err = connector.NewConverger(connector.ConvergerConfig{Store: b.db, LMS: b.lms, Feeds: b.feeds, Now: b.clock, Safeguard: as,
		Concurrency: 1, Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError}))})
	if err != nil {
		t.Fatal(err)
	}
	b.set(b.clock().Add(time.Hour))
	b.leaveMany(t, 2) // the first runs, the second is held and approved at once
	if len(as.approved) != 1 {
		t.Fatalf("holds approved = %v, want one", as.approved)
	}
	if n := b.deactivations(); n != 2 {
		t.Fatalf("%d deactivations, want 2: the approval of hold %d given during the converge was lost", n, as.approved[0])
	}
}

// setupSettling is setupSafeguard with a settle period: removals gather into a
// burst that is judged whole.
func setupSettling(t *testing.T, size int, settle time.Duration) *testBundle {
	t.Helper()
	b := setupSafeguard(t, size)
	sg, err := connector.NewSafeguard(connector.SafeguardConfig{Store: b.db, Now: b.clock, Settle: settle})
	if err != nil {
		t.Fatal(err)
	}
	b.conv, err = connector.NewConverger(connector.ConvergerConfig{Store: b.db, LMS: b.lms, Feeds: b.feeds, Now: b.clock, Safeguard: sg,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError}))})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A burst is held whole or runs whole, never split. Judged one removal at a time,
// 10 leavers of a 20-person feed sent together ran 4 (20%) and held 6; settled
// into one burst, none of them runs before a person decides.
func TestSafeguardBurstHeldWhole(t *testing.T) {
	t.Parallel()
	split := setupSafeguard(t, 20)
	split.set(split.clock().Add(time.Hour))
	split.leaveMany(t, 10)
	if n := split.deactivations(); n == 0 || n == 10 {
		t.Fatalf("without a settle period: %d deactivations; the test expects the burst to be split", n)
	}

	b := setupSettling(t, 20, time.Minute)
	b.set(b.clock().Add(time.Hour))
	b.leaveMany(t, 10)
	if n := b.deactivations(); n != 0 {
		t.Fatalf("%d deactivations while the burst settles, want 0", n)
	}
	b.set(b.clock().Add(time.Minute))
	b.converge(t)
	if n := b.deactivations(); n != 0 {
		t.Fatalf("%d deactivations after the burst was judged, want 0: held whole", n)
	}
	h := b.oneHold(t)
	if h.Status != connector.HoldOpen || h.Counts.Removals != 10 || h.Counts.Active != 20 {
		t.Fatalf("hold = %+v, want the whole burst of 10 of 20", h)
	}
	if got := b.outcomes(t, connector.ActionDeactivate); got[connector.OutcomeHeld] != 10 || got[connector.OutcomeOK] != 0 {
		t.Fatalf("deactivate audit outcomes = %v, want 10 held", got)
	}
	// A burst under the thresholds runs whole: 3 more leavers later (15%).
	c := setupSettling(t, 20, time.Minute)
	c.set(c.clock().Add(time.Hour))
	c.leaveMany(t, 3)
	c.set(c.clock().Add(time.Minute))
	c.converge(t)
	if n := c.deactivations(); n != 3 {
		t.Fatalf("%d deactivations of a burst under the thresholds, want 3", n)
	}
}

// readCountingLMS counts the account reads of the converger.
type readCountingLMS struct {
	connector.LMS
	reads atomic.Int64
}

func (r *readCountingLMS) GetAccount(ctx context.Context, id string) (connector.Account, error) {
	r.reads.Add(1)
	return r.LMS.GetAccount(ctx, id)
}

func (r *readCountingLMS) FindAccounts(ctx context.Context, f connector.AccountFilter) ([]connector.Account, error) {
	r.reads.Add(1)
	return r.LMS.FindAccounts(ctx, f)
}

// Settling costs no LMS call: a leaver of a burst that passes is read once and
// deactivated once, and one of a held burst is not read at all.
func TestSafeguardSettlingReadsNothing(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name          string
		leavers       int
		reads, writes int
	}{{"Passes", 3, 3, 3}, {"Held", 10, 0, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setupSafeguard(t, 20)
			counting := &readCountingLMS{LMS: b.lms}
			sg, err := connector.NewSafeguard(connector.SafeguardConfig{Store: b.db, Now: b.clock, Settle: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			b.conv, err = connector.NewConverger(connector.ConvergerConfig{Store: b.db, LMS: counting, Feeds: b.feeds, Now: b.clock,
				Safeguard: sg, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			b.set(b.clock().Add(time.Hour))
			b.leaveMany(t, tc.leavers)
			if n := counting.reads.Load(); n != 0 {
				t.Fatalf("%d LMS reads while the burst settles, want 0", n)
			}
			b.set(b.clock().Add(time.Minute))
			b.converge(t)
			if n := counting.reads.Load(); n != int64(tc.reads) {
				t.Errorf("%d LMS reads for %d leavers, want %d", n, tc.leavers, tc.reads)
			}
			if n := b.deactivations(); n != tc.writes {
				t.Errorf("%d deactivations, want %d", n, tc.writes)
			}
		})
	}
}
