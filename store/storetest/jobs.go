package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
)

// JobStore is what the jobs suite exercises beyond Store. *store.DB implements it.
type JobStore interface {
	connector.JobStore
	CreateJob(ctx context.Context, h connector.Hold, items []connector.JobItem) (int64, error)
	AllowSample(ctx context.Context, id int64, n int, by, reason string) (connector.Hold, error)
	JobItems(ctx context.Context, hold int64, after, limit int) ([]connector.JobItem, error)
	DecideHold(ctx context.Context, id int64, d connector.HoldDecision) (connector.Hold, error)
	ListHolds(ctx context.Context, f store.HoldFilter) ([]connector.Hold, error)
	CloseFeed(ctx context.Context, c store.ClosedFeed) error
	FeedClosed(ctx context.Context, feed string) (store.ClosedFeed, bool, error)
	OffboardHold(ctx context.Context, feed string) (connector.Hold, bool, error)
}

var _ JobStore = (*store.DB)(nil)

// jobTests check clean-up and offboarding jobs: items in order, samples, finishing
// once, counts, the decision's audit, closed feeds.
var jobTests = []subTest{
	{"JobLifecycle", testJobLifecycle},
	{"OffboardOnce", testOffboardOnce},
	{"ClosedFeeds", testClosedFeeds},
}

// js returns b's store as a JobStore.
func js(t *testing.T, b *testBundle) JobStore {
	t.Helper()
	s, ok := b.s.(JobStore)
	if !ok {
		t.Fatalf("%T does not implement storetest.JobStore", b.s)
	}
	return s
}

// items returns n deletion items for a clean-up job; the second is linked to hr:w1 and has logged in.
func items(n int) []connector.JobItem {
	var out []connector.JobItem
	for i := range n {
		last := day(-30)
		it := connector.JobItem{AccountID: "acct-" + string(rune('a'+i)), Action: connector.ActionDelete, Version: `W/"1"`,
			UserName: "u" + string(rune('a'+i)), Created: day(-400),
			Activity: connector.Activity{Known: true, Enrollments: i}}
		if i == 1 {
			it.Worker = key("hr", "w1")
			it.Activity.LastLogin = &last
		}
		out = append(out, it)
	}
	return out
}

func testJobLifecycle(t *testing.T, b *testBundle) {
	s := js(t, b)
	if _, err := s.CreateJob(b.ctx, connector.Hold{Kind: connector.HoldLive, Feed: "hr"}, items(1)); err == nil {
		t.Fatal("CreateJob accepted a live hold")
	}
	if _, err := s.CreateJob(b.ctx, connector.Hold{Kind: connector.HoldCleanup}, nil); err == nil {
		t.Fatal("CreateJob accepted a job without items")
	}
	id, err := s.CreateJob(b.ctx, connector.Hold{Kind: connector.HoldCleanup, Reason: "dormant: never logged in", Payload: []byte(`{}`)}, items(5))
	if err != nil {
		t.Fatal(err)
	}
	h, err := s.GetHold(b.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if h.Kind != connector.HoldCleanup || h.Status != connector.HoldOpen || h.Counts.Removals != 5 || h.Counts.Deletions != 5 || h.Sample != 0 {
		t.Fatalf("hold = %+v", h)
	}
	all, err := s.JobItems(b.ctx, id, 0, 0)
	if err != nil || len(all) != 5 {
		t.Fatalf("JobItems = %d, %v", len(all), err)
	}
	if it := all[1]; it.Seq != 2 || it.Worker != key("hr", "w1") || it.Activity.LastLogin == nil || !it.Activity.LastLogin.Equal(day(-30)) ||
		it.Activity.Enrollments != 1 || !it.Created.Equal(day(-400)) || it.Version != `W/"1"` || it.Status != connector.JobPending {
		t.Fatalf("item 2 = %+v", it)
	}

	// A sample: only the first two are pending within it.
	if _, err := s.AllowSample(b.ctx, id, 2, "", "x"); err == nil {
		t.Fatal("AllowSample without --by")
	}
	if h, err = s.AllowSample(b.ctx, id, 2, "ana", "try two first"); err != nil || h.Sample != 2 {
		t.Fatalf("AllowSample = %+v, %v", h, err)
	}
	if _, err := s.AllowSample(b.ctx, id, 1, "ana", "shrink"); err == nil {
		t.Fatal("a sample shrank")
	}
	if h, _ = s.GetHold(b.ctx, id); h.Sample != 2 || h.Status != connector.HoldOpen {
		t.Fatalf("after sample: %+v", h)
	}
	p, err := s.PendingJobItems(b.ctx, id, h.Sample, 10)
	if err != nil || len(p) != 2 || p[0].Seq != 1 || p[1].Seq != 2 {
		t.Fatalf("pending in sample = %+v, %v", p, err)
	}
	at := b.now
	p[0].Status, p[0].Detail, p[0].DoneAt = connector.JobDone, "deleted", &at
	p[1].Status, p[1].Detail = connector.JobSkipped, "logged in since the report"
	audit := []connector.AuditEntry{{At: at, AccountID: p[0].AccountID, Action: connector.ActionDelete, Outcome: connector.OutcomeOK, Detail: "cleanup: deleted"},
		{At: at, AccountID: p[1].AccountID, Action: connector.ActionDelete, Outcome: connector.OutcomeSkipped, Detail: "cleanup: skipped"}}
	if err := s.FinishJobItems(b.ctx, id, p, audit[:1]); err == nil {
		t.Fatal("FinishJobItems accepted audit rows that do not match the items")
	}
	if err := s.FinishJobItems(b.ctx, id, p, audit); err != nil {
		t.Fatal(err)
	}
	// Finishing again (a second run of the same hold at the same time) changes
	// nothing and audits nothing.
	p[0].Status = connector.JobFailed
	if err := s.FinishJobItems(b.ctx, id, p[:1], audit[:1]); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishJobItems(b.ctx, id, []connector.JobItem{{Seq: 3}}, nil); err == nil {
		t.Fatal("FinishJobItems accepted an item without an end status")
	}
	c, err := s.JobCounts(b.ctx, id)
	if err != nil || c[connector.JobDone] != 1 || c[connector.JobSkipped] != 1 || c[connector.JobPending] != 3 || c[connector.JobFailed] != 0 {
		t.Fatalf("counts = %v, %v", c, err)
	}
	if p, _ := s.PendingJobItems(b.ctx, id, 2, 10); len(p) != 0 {
		t.Fatalf("sample still pending: %+v", p)
	}
	if p, _ := s.PendingJobItems(b.ctx, id, 0, 2); len(p) != 2 || p[0].Seq != 3 {
		t.Fatalf("pending after sample = %+v", p)
	}
	got, _ := s.JobItems(b.ctx, id, 0, 1)
	if len(got) != 1 || got[0].Status != connector.JobDone || got[0].DoneAt == nil || !got[0].DoneAt.Equal(at) {
		t.Fatalf("item 1 after finish = %+v", got)
	}

	// The decision audits every item.
	if _, err := s.DecideHold(b.ctx, id, connector.HoldDecision{Approve: true, By: "ana", Reason: "sample was fine"}); err != nil {
		t.Fatal(err)
	}
	rows, err := b.s.ListAudit(b.ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	approved, sample, done := 0, 0, 0
	for _, r := range rows {
		switch {
		case r.Outcome == connector.OutcomeApproved && r.Plan == "sample":
			sample++
		case r.Outcome == connector.OutcomeApproved:
			approved++
		case r.Outcome == connector.OutcomeOK && r.AccountID == "acct-a":
			done++
		}
	}
	if approved != 5 || sample != 1 || done != 1 {
		t.Fatalf("audit: %d approvals, %d sample approvals, %d done; rows %+v", approved, sample, done, rows)
	}
	if _, err := s.AllowSample(b.ctx, id, 3, "ana", "late"); !errors.Is(err, connector.ErrConflict) {
		t.Fatalf("AllowSample on a decided hold = %v, want ErrConflict", err)
	}
}

// A feed is offboarded once: a second offboarding while the first hold is
// open or approved is refused and names the hold (issue #10, defect 5).
func testOffboardOnce(t *testing.T, b *testBundle) {
	s := js(t, b)
	off := connector.Hold{Kind: connector.HoldOffboard, Feed: "partner-acme", Reason: "offboard"}
	first, err := s.CreateJob(b.ctx, off, items(2))
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []string{"open", "approved"} {
		if step == "approved" {
			if _, err := s.DecideHold(b.ctx, first, connector.HoldDecision{Approve: true, By: "ana", Reason: "ok"}); err != nil {
				t.Fatal(err)
			}
		}
		_, err := s.CreateJob(b.ctx, off, items(2))
		var oe *store.OpenJobError
		if !errors.As(err, &oe) || !errors.Is(err, connector.ErrConflict) || oe.Hold.ID != first || string(oe.Hold.Status) != step {
			t.Fatalf("second offboarding while hold %d is %s: err = %v, want an OpenJobError naming it", first, step, err)
		}
		if h, ok, err := s.OffboardHold(b.ctx, "partner-acme"); err != nil || !ok || h.ID != first {
			t.Fatalf("OffboardHold = %+v, %v, %v; want hold %d", h, ok, err, first)
		}
	}
	if list, err := s.ListHolds(b.ctx, store.HoldFilter{Feed: "partner-acme"}); err != nil || len(list) != 1 {
		t.Fatalf("holds of the feed = %+v, %v; want one", list, err)
	}
	// Another feed, and clean-ups, are not affected.
	if _, err := s.CreateJob(b.ctx, connector.Hold{Kind: connector.HoldOffboard, Feed: "partner-beta"}, items(1)); err != nil {
		t.Fatalf("offboarding another feed: %v", err)
	}
	if _, err := s.CreateJob(b.ctx, connector.Hold{Kind: connector.HoldCleanup, Feed: "partner-acme"}, items(1)); err != nil {
		t.Fatalf("a clean-up of the feed: %v", err)
	}
	// A rejected offboarding may be asked for again.
	if _, ok, err := s.OffboardHold(b.ctx, "partner-gamma"); ok || err != nil {
		t.Fatalf("OffboardHold of a feed never offboarded = %v, %v", ok, err)
	}
	g, err := s.CreateJob(b.ctx, connector.Hold{Kind: connector.HoldOffboard, Feed: "partner-gamma"}, items(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.DecideHold(b.ctx, g, connector.HoldDecision{By: "ana", Reason: "not yet"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateJob(b.ctx, connector.Hold{Kind: connector.HoldOffboard, Feed: "partner-gamma"}, items(1)); err != nil {
		t.Fatalf("offboarding again after a rejection: %v", err)
	}
}

func testClosedFeeds(t *testing.T, b *testBundle) {
	s := js(t, b)
	if _, ok, err := s.FeedClosed(b.ctx, "acme"); ok || err != nil {
		t.Fatalf("FeedClosed on an open feed = %v, %v", ok, err)
	}
	at := b.now.Add(time.Hour)
	if err := s.CloseFeed(b.ctx, store.ClosedFeed{Feed: "acme", ClosedAt: at, ClosedBy: "ana", Reason: "contract ended", HoldID: 7}); err != nil {
		t.Fatal(err)
	}
	if err := s.CloseFeed(b.ctx, store.ClosedFeed{Feed: "acme", ClosedBy: "bob"}); err != nil {
		t.Fatalf("closing again: %v", err)
	}
	c, ok, err := s.FeedClosed(b.ctx, "acme")
	if !ok || err != nil || c.ClosedBy != "ana" || c.HoldID != 7 || !c.ClosedAt.Equal(at) || c.Reason != "contract ended" {
		t.Fatalf("FeedClosed = %+v, %v, %v", c, ok, err)
	}
	if err := s.CloseFeed(b.ctx, store.ClosedFeed{Feed: "Not A Feed"}); err == nil {
		t.Fatal("CloseFeed accepted a bad name")
	}
}
