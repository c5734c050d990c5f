package demo

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/app"
	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/events"
	"github.com/hrsync/hrsync/store"
)

// TestPlay plays short seasons through a pipeline assembled here from the
// library packages, without the CLI: an in-process NATS JetStream server, SQLite,
// the JetStream consumer and the converger with the default safeguard. (The CLI
// tests TestDemo and TestDemoHolds play it through cmd/hrsync's own stack.)
func TestPlay(t *testing.T) {
	t.Parallel()
	for _, seed := range []uint64{2, 7} {
		var out strings.Builder
		open := func(ctx context.Context, p Parts) (Runtime, error) { return openTestRuntime(t, ctx, p) }
		res, err := Play(t.Context(), Config{Out: &out, People: 60, Seed: seed, Open: open})
		if err != nil {
			t.Fatalf("seed %d: %v\n%s", seed, err, out.String())
		}
		if !res.OK || res.Hired != 60 || res.DuplicateAccounts != 0 || res.HoldsApproved == 0 || res.DeadLettered != 7 ||
			res.RehiresHistoryIntact != res.Rehired {
			t.Fatalf("seed %d: %+v\n%s", seed, res, out.String())
		}
		for _, want := range []string{"safeguard: hold 1 keeps", "hrsync holds approve 1 --by demo-admin", "OK: every expectation held."} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("seed %d: output lacks %q:\n%s", seed, want, out.String())
			}
		}
		b, err := json.Marshal(res)
		if err != nil || !strings.Contains(string(b), `"rehires_history_intact":`) || !strings.Contains(string(b), `"ok":true`) {
			t.Errorf("seed %d: JSON %s, %v", seed, b, err)
		}
	}
}

// TestPlayMoodle plays a season against the simulated Moodle site through the
// moodle adapter: the same expectations, training history included.
func TestPlayMoodle(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	open := func(ctx context.Context, p Parts) (Runtime, error) { return openTestRuntime(t, ctx, p) }
	res, err := Play(t.Context(), Config{Out: &out, People: 60, Seed: 7, Open: open, LMS: "moodle"})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !res.OK || res.Hired != 60 || res.DuplicateAccounts != 0 || res.RehiresHistoryIntact != res.Rehired || res.Rehired == 0 {
		t.Fatalf("%+v\n%s", res, out.String())
	}
	if !strings.Contains(out.String(), "sandbox LMS (moodle)") {
		t.Errorf("output does not name the flavor:\n%s", out.String())
	}
}

func TestPlayRefuses(t *testing.T) {
	t.Parallel()
	open := func(context.Context, Parts) (Runtime, error) { t.Fatal("opened"); return nil, nil }
	for _, c := range []Config{{People: 19, Open: open}, {People: 20001, Open: open}, {People: 50}} {
		if _, err := Play(t.Context(), c); err == nil {
			t.Errorf("Play(%+v): no error", c)
		}
	}
}

// testRuntime is a running hrsync assembled from the library packages.
type testRuntime struct {
	js    jetstream.JetStream
	db    *store.DB
	conv  *connector.Converger
	feeds connector.Feeds
	stop  func()
}

const testSettle = 30 * time.Second

func openTestRuntime(t *testing.T, ctx context.Context, p Parts) (Runtime, error) {
	dir := t.TempDir()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: filepath.Join(dir, "nats"), NoSigs: true, NoLog: true})
	if err != nil {
		return nil, err
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS not ready after 10s")
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		return nil, err
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	if _, err := events.EnsureStreams(ctx, js, events.StreamConfig{}, p.Feeds.Names()); err != nil {
		return nil, err
	}
	db, err := store.Open(ctx, "sqlite://"+filepath.Join(dir, "hrsync.db"), nil, store.Migrate(true))
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = db.Close() })
	db.Now = p.Now
	def := connector.DefaultThresholds()
	sg, err := connector.NewSafeguard(connector.SafeguardConfig{Store: db, Default: def, Overall: def,
		Window: time.Hour, Settle: testSettle, Now: p.Now})
	if err != nil {
		return nil, err
	}
	lms, err := app.GuardedLMS(p.LMS, nil, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		return nil, err
	}
	conv, err := connector.NewConverger(connector.ConvergerConfig{Store: db, LMS: lms, Feeds: p.Feeds, Now: p.Now,
		Safeguard: sg, Policy: func(feed string) connector.Policy {
			return p.Feeds[feed].Policy(connector.Policy{Leaver: connector.LeaverDeactivate})
		}})
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithCancel(ctx)
	consumed := make(chan error, 1)
	go func() {
		consumed <- events.Consume(cctx, js, &events.Decoder{Feeds: p.Feeds}, db,
			events.ConsumerConfig{Batch: 128, MaxWait: 50 * time.Millisecond})
	}()
	return &testRuntime{js: js, db: db, conv: conv, feeds: p.Feeds, stop: func() {
		cancel()
		if err := <-consumed; err != nil && ctx.Err() == nil {
			t.Errorf("consumer: %v", err)
		}
	}}, nil
}

func (r *testRuntime) Publish(ctx context.Context, e events.Event, mode events.Mode) error {
	_, err := events.Publish(ctx, r.js, e, mode)
	return err
}

func (r *testRuntime) PublishMsg(ctx context.Context, msg *nats.Msg) error {
	_, err := r.js.PublishMsg(ctx, msg)
	return err
}

func (r *testRuntime) Drained(ctx context.Context) bool {
	for _, f := range r.feeds.Names() {
		cons, err := r.js.Consumer(ctx, events.StreamConfig{}.Name(f), events.DefaultDurable)
		if err != nil {
			return false
		}
		info, err := cons.Info(ctx)
		if err != nil || info.NumPending != 0 || info.NumAckPending != 0 {
			return false
		}
	}
	return true
}

func (r *testRuntime) Drain(ctx context.Context, maxPasses int) (int, error) {
	return r.conv.Drain(ctx, maxPasses)
}

func (r *testRuntime) Store() Store                { return r.db }
func (r *testRuntime) SettlePeriod() time.Duration { return testSettle }
func (r *testRuntime) Close()                      { r.stop() }
