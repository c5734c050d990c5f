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
	"github.com/hrsync/hrsync/store"
)

// countingIntents counts the intent inserts of a store.
type countingIntents struct {
	*store.DB
	calls, rows atomic.Int64
}

func (c *countingIntents) BeginActions(ctx context.Context, es []connector.AuditEntry) ([]int64, error) {
	c.calls.Add(1)
	c.rows.Add(int64(len(es)))
	return c.DB.BeginActions(ctx, es)
}

// The intents of a claimed batch are written together: 40 hires converged 4 at a
// time cost one intent insert, not one per wave of 4, and every create is
// audited ok.
func TestBatchIntentsOneInsertPerRound(t *testing.T) {
	t.Parallel()
	b := setup(t, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	cs := &countingIntents{DB: b.db}
	conv, err := connector.NewConverger(connector.ConvergerConfig{Store: cs, LMS: b.lms, Feeds: b.feeds, Now: b.clock,
		Concurrency: 4, Batch: 64, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	var facts []connector.Fact
	for i := range 40 {
		id := fmt.Sprintf("w%02d", i)
		facts = append(facts, connector.Fact{Feed: "hr", Source: "/feeds/hr", ID: "h" + id, WorkerID: id, Kind: connector.KindHired,
			Effective: b.clock().AddDate(0, 0, -1), Time: b.clock(), Profile: profile(id + "@example.com")})
	}
	if _, err := b.db.RecordFacts(t.Context(), facts); err != nil {
		t.Fatal(err)
	}
	if n, err := conv.ConvergeOnce(t.Context()); err != nil || n != 40 {
		t.Fatalf("ConvergeOnce = %d, %v", n, err)
	}
	if b.lms.Count() != 40 {
		t.Fatalf("%d accounts, want 40", b.lms.Count())
	}
	if calls, rows := cs.calls.Load(), cs.rows.Load(); calls != 1 || rows != 40 {
		t.Errorf("%d intent inserts of %d rows, want 1 of 40", calls, rows)
	}
	audit, err := b.db.ListAudit(t.Context(), store.AuditFilter{Feed: "hr", Action: connector.ActionCreate})
	if err != nil {
		t.Fatal(err)
	}
	ok := 0
	for _, a := range audit {
		if a.Outcome == connector.OutcomeOK {
			ok++
		}
	}
	if ok != 40 || len(audit) != 40 {
		t.Errorf("create audit: %d rows, %d ok; want 40 ok", len(audit), ok)
	}
}

// slowIntents is a store whose intent insert takes longer than the lease: the
// clock moves on past it while the round is written (the database slow, or away
// and back).
type slowIntents struct {
	*store.DB
	b     *testBundle
	delay time.Duration
}

func (s *slowIntents) BeginActions(ctx context.Context, es []connector.AuditEntry) ([]int64, error) {
	s.b.set(s.b.clock().Add(s.delay))
	return s.DB.BeginActions(ctx, es)
}

// A write whose intent was committed after the worker's lease ran out is not
// made: another converger may own the worker by then and make the same call.
// The intent row says it was not made, and the worker is converged again.
func TestLeaseLostWhileIntentWritten(t *testing.T) {
	t.Parallel()
	b := setup(t, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	slow := &slowIntents{DB: b.db, b: b, delay: 10 * time.Minute}
	conv, err := connector.NewConverger(connector.ConvergerConfig{Store: slow, LMS: b.lms, Feeds: b.feeds, Now: b.clock,
		Lease: time.Minute, Concurrency: 4, Batch: 64, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	b.hires(t, "w1", "w2", "w3")
	if n, err := conv.ConvergeOnce(t.Context()); err != nil || n != 3 {
		t.Fatalf("ConvergeOnce = %d, %v", n, err)
	}
	if n := b.lms.Count(); n != 0 {
		t.Fatalf("%d accounts made after the lease ran out, want none", n)
	}
	for _, w := range []string{"w1", "w2", "w3"} {
		au := b.auditOf(t, w)
		if len(au) != 1 || au[0].Outcome != connector.OutcomeNotApplied || !strings.Contains(au[0].Detail, "lease ran out") {
			t.Errorf("%s audit %+v, want one create not applied because the lease ran out", w, au)
		}
	}
	// The workers are converged again (their leases have expired) and made once.
	slow.delay = 0
	if n, err := conv.ConvergeOnce(t.Context()); err != nil || n != 3 {
		t.Fatalf("second ConvergeOnce = %d, %v", n, err)
	}
	if n := b.lms.Count(); n != 3 {
		t.Errorf("%d accounts after the retry, want 3", n)
	}
}
