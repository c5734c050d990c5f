package app

import (
	"context"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// readCounter counts the reads of linked accounts that reach the sandbox.
type readCounter struct {
	*sandbox.LMS
	reads atomic.Int64
}

func (r *readCounter) GetAccount(ctx context.Context, id string) (connector.Account, error) {
	r.reads.Add(1)
	return r.LMS.GetAccount(ctx, id)
}

func (r *readCounter) GetAccounts(ctx context.Context, ids []string) (map[string]connector.Account, error) {
	r.reads.Add(1)
	return r.LMS.GetAccounts(ctx, ids)
}

// lms.mirror: by default the app's converger updates an account it knows from
// its create without reading it (conditionally on the version the create's
// answer gave); with lms.mirror false it reads it first. (A profile update, not
// a leave: the safeguard lets live removals settle for 30 s first.)
func TestLMSMirrorConfig(t *testing.T) {
	t.Parallel()
	for _, on := range []bool{true, false} {
		feeds, err := connector.NewFeeds(connector.DefaultFeed("hr", connector.FeedHR))
		if err != nil {
			t.Fatal(err)
		}
		set := testSettings(t, "sqlite://"+filepath.Join(t.TempDir(), "m.db"), feeds)
		if !on {
			set.File.LMS.Mirror = new(bool)
		}
		lms := &readCounter{LMS: sandbox.New()}
		a, err := Open(t.Context(), set, Options{Migrate: true, LMS: lms})
		if err != nil {
			t.Fatal(err)
		}
		conv, err := a.Converger(connector.ConvergerConfig{})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		record := func(id string, k connector.Kind, family string) {
			t.Helper()
			f := connector.Fact{Feed: "hr", Source: feeds["hr"].Source, ID: id, WorkerID: "w1", Kind: k, Effective: now.Add(-time.Minute),
				Time: now, Profile: connector.Profile{Email: "w1@example.com", GivenName: "A", FamilyName: family}}
			if _, err := a.Store().RecordFacts(t.Context(), []connector.Fact{f}); err != nil {
				t.Fatal(err)
			}
			if _, err := conv.Drain(t.Context(), 10); err != nil {
				t.Fatal(err)
			}
		}
		record("e1", connector.KindHired, "B")
		before := lms.reads.Load()
		record("e2", connector.KindUpdated, "Renamed")
		reads := lms.reads.Load() - before
		if accs, _ := lms.FindAccounts(t.Context(), connector.AccountFilter{Attr: connector.ByExternalID, Value: "hr:w1"}); len(accs) != 1 || accs[0].Profile.FamilyName != "Renamed" {
			t.Fatalf("mirror=%v: after the update: %+v", on, accs)
		}
		if on && reads != 0 || !on && reads != 1 {
			t.Errorf("mirror=%v: the update read the account %d times, want %d", on, reads, map[bool]int{true: 0, false: 1}[on])
		}
		a.Close()
	}
}

// The converger's mirror hook feeds hrsync_lms_mirror_plans_total.
func TestMirrorPlansMetric(t *testing.T) {
	t.Parallel()
	m := NewMetrics()
	h := m.convergerHooks(connector.ConvergerHooks{})
	h.Mirror(true)
	h.Mirror(true)
	h.Mirror(false)
	for result, want := range map[string]float64{"served": 2, "read": 1} {
		if got := testutil.ToFloat64(m.mirrorPlans.WithLabelValues(result)); got != want {
			t.Errorf("hrsync_lms_mirror_plans_total{result=%q} = %v, want %v", result, got, want)
		}
	}
}

// lms.quarantine reaches the guard's settings, and a bad one is refused naming
// the setting.
func TestLMSQuarantineConfig(t *testing.T) {
	t.Parallel()
	f := LMSConfig{Quarantine: LMSQuarantineConfig{ProbeInterval: 2 * time.Second, MaxProbeInterval: time.Minute}}
	if s := f.Over(LMSSettings{}, nil); s.ProbeInterval != 2*time.Second || s.MaxProbeInterval != time.Minute {
		t.Fatalf("Over: probe %s, max %s", s.ProbeInterval, s.MaxProbeInterval)
	}
	for _, tc := range []struct {
		probe, max time.Duration
		want       string
	}{
		{-time.Second, 0, "lms.quarantine.probe_interval -1s"},
		{0, -time.Second, "lms.quarantine.max_probe_interval -1s"},
		{time.Hour, time.Minute, "lms.quarantine.probe_interval 1h0m0s is longer than lms.quarantine.max_probe_interval 1m0s"},
	} {
		s := LMSSettings{Rate: "unlimited", ProbeInterval: tc.probe, MaxProbeInterval: tc.max}
		if _, err := guardedLMS(s, sandbox.New(), nil, nil, nil, NewMetrics()); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("probe %s, max %s: %v, want %q", tc.probe, tc.max, err, tc.want)
		}
	}
}
