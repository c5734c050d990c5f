package connector_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/store"
)

// switchLMS is an LMS that says whether it is available, as the test decides, and
// counts the calls that reach it.
type switchLMS struct {
	*sandbox.LMS
	mu      sync.Mutex
	up      bool
	retryAt time.Time
	asked   chan struct{} // a value per Available call, dropped when full
	calls   atomic.Int64
}

var _ connector.Availability = (*switchLMS)(nil)

func (s *switchLMS) Available() (bool, time.Time) {
	select {
	case s.asked <- struct{}{}:
	default:
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.up, s.retryAt
}

func (s *switchLMS) set(up bool, retryAt time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.up, s.retryAt = up, retryAt
}

func (s *switchLMS) GetAccount(ctx context.Context, id string) (connector.Account, error) {
	s.calls.Add(1)
	return s.LMS.GetAccount(ctx, id)
}

func (s *switchLMS) FindAccounts(ctx context.Context, f connector.AccountFilter) ([]connector.Account, error) {
	s.calls.Add(1)
	return s.LMS.FindAccounts(ctx, f)
}

func (s *switchLMS) CreateAccount(ctx context.Context, a connector.Account) (connector.Account, error) {
	s.calls.Add(1)
	return s.LMS.CreateAccount(ctx, a)
}

// claimCounter counts ClaimDue calls.
type claimCounter struct {
	connector.ConvergerStore
	claims atomic.Int64
}

func (c *claimCounter) ClaimDue(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]connector.Claim, error) {
	c.claims.Add(1)
	return c.ConvergerStore.ClaimDue(ctx, owner, now, lease, limit)
}

// pollUntil checks cond every 10ms until it holds; it fails the test after limit.
func pollUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", limit, what)
		}
		<-time.After(10 * time.Millisecond)
	}
}

// TestConvergerPausesWhileLMSUnavailable: while the LMS says it is unavailable, the
// converger claims nothing (so nothing is marked failed); once it is available
// again the waiting work is done.
func TestConvergerPausesWhileLMSUnavailable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	feeds, err := connector.NewFeeds(connector.DefaultFeed("hr", connector.FeedHR))
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "x.db"), nil, store.Migrate(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st := &claimCounter{ConvergerStore: db}
	lms := &switchLMS{LMS: sandbox.New(), asked: make(chan struct{}, 1)}
	lms.set(false, time.Now().Add(time.Hour))

	now := time.Now()
	var facts []connector.Fact
	for i := range 3 {
		facts = append(facts, connector.Fact{Source: feeds["hr"].Source, ID: fmt.Sprintf("e%d", i), Feed: "hr",
			WorkerID: fmt.Sprintf("w%d", i), Kind: connector.KindHired, Time: now, Effective: now,
			Profile: connector.Profile{Email: fmt.Sprintf("w%d@example.com", i), GivenName: "W", FamilyName: "Orker"}})
	}
	if _, err := db.RecordFacts(ctx, facts); err != nil {
		t.Fatal(err)
	}

	conv, err := connector.NewConverger(connector.ConvergerConfig{Store: st, LMS: lms, Feeds: feeds,
		PollInterval: 20 * time.Millisecond, Loops: 2,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- conv.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})

	// Both loops ask several times; none claims, and the LMS sees no call.
	for i := range 6 {
		select {
		case <-lms.asked:
		case <-time.After(10 * time.Second):
			t.Fatalf("the converger asked the LMS %d times in 10s", i)
		}
		conv.Notify() // new facts do not make it claim either
	}
	if n := st.claims.Load(); n != 0 {
		t.Fatalf("%d claims while the LMS was unavailable", n)
	}
	if n := lms.calls.Load(); n != 0 {
		t.Fatalf("%d LMS calls while it was unavailable", n)
	}
	next, ok, err := db.NextDue(ctx)
	if err != nil || !ok || next.After(time.Now()) {
		t.Fatalf("NextDue = %v, %v, %v; want the workers still due", next, ok, err)
	}

	lms.set(true, time.Time{})
	pollUntil(t, 20*time.Second, "the accounts were not created after the LMS came back", func() bool { return lms.Count() == 3 })
	pollUntil(t, 20*time.Second, "workers still due", func() bool {
		_, ok, err := db.NextDue(ctx)
		return err == nil && !ok
	})
	if reviews, err := db.ListReviews(ctx, store.ReviewFilter{}); err != nil || len(reviews) != 0 {
		t.Errorf("reviews %v, %v; want none", reviews, err)
	}
}
