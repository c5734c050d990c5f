package bench

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/events"
	"github.com/hrsync/hrsync/store"
	"github.com/hrsync/hrsync/store/pgtest"
)

func TestPercentile(t *testing.T) {
	t.Parallel()
	sorted := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, tc := range []struct {
		name   string
		sorted []float64
		p      float64
		want   float64
	}{
		{"Empty", nil, 0.5, 0},
		{"One", []float64{7}, 0.99, 7},
		{"Median", sorted, 0.50, 6},
		{"P99IsTheLast", sorted, 0.99, 10},
		{"P100StaysInRange", sorted, 1, 10},
		{"P0IsTheFirst", sorted, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Percentile(tc.sorted, tc.p); got != tc.want {
				t.Errorf("Percentile(%v, %v) = %v, want %v", tc.sorted, tc.p, got, tc.want)
			}
		})
	}
}

func TestEvents(t *testing.T) {
	t.Parallel()
	evs := Events(3, "x")
	if len(evs) != 3 {
		t.Fatalf("%d events, want 3", len(evs))
	}
	for i, e := range evs {
		if e.Feed != Feed || e.Kind != connector.KindHired || e.Data.WorkerID != e.ID {
			t.Errorf("event %d: %+v", i, e)
		}
		if _, err := events.Encode(e, events.Binary); err != nil {
			t.Errorf("event %d does not encode: %v", i, err)
		}
	}
	if evs[2].Data.WorkerID != "x-0000002" || evs[2].Data.Email != "x-0000002@bench.example" {
		t.Errorf("third event: %+v", evs[2].Data)
	}
}

func TestTimedLMS(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	timed := NewTimedLMS(sandbox.New(), 2)
	before := time.Now()
	if _, err := timed.CreateAccount(ctx, account("hr:w1")); err != nil {
		t.Fatal(err)
	}
	// A failed create (the externalId is taken) is not counted.
	if _, err := timed.CreateAccount(ctx, account("hr:w1")); err == nil {
		t.Fatal("second create of hr:w1 succeeded")
	}
	if n := timed.Count(); n != 1 {
		t.Fatalf("Count = %d, want 1", n)
	}
	if at := timed.times["hr:w1"]; at.Before(before) {
		t.Errorf("created at %s, before the call at %s", at, before)
	}
}

func account(ext string) connector.Account {
	name := strings.TrimPrefix(ext, "hr:")
	return connector.Account{ExternalID: ext, UserName: name + "@bench.example", Active: true,
		Profile: connector.Profile{Email: name + "@bench.example", GivenName: "Bench", FamilyName: name}}
}

// TestSeedReconcile seeds a SQLite store and the sandbox and checks that every
// worker is linked to its account, 1% of them drifted.
func TestSeedReconcile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := store.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "seed.db"), nil, store.Migrate(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	lms := sandbox.New()
	if err := SeedReconcile(ctx, db, lms, 250, 4); err != nil {
		t.Fatal(err)
	}
	if n := lms.Count(); n != 250 {
		t.Fatalf("the sandbox holds %d accounts, want 250", n)
	}
	edited := 0
	page, err := lms.ListAccounts(ctx, 1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range page.Accounts {
		if a.Profile.GivenName == "Edited" {
			edited++
		}
	}
	if edited != 3 { // w00000007, w00000107, w00000207
		t.Errorf("%d edited accounts, want 3", edited)
	}
	// Every worker was claimed and completed: none is left due.
	cs, err := db.ClaimDue(ctx, "test", time.Now().Add(time.Hour), time.Minute, 10)
	if err != nil || len(cs) != 0 {
		t.Fatalf("due after seeding: %d (%v)", len(cs), err)
	}
}

func TestPeakRSS(t *testing.T) {
	t.Parallel()
	ResetPeakRSS()
	if PeakRSS() == 0 {
		t.Error("PeakRSS = 0")
	}
}

// fakeStack stands in for hrsync: it consumes the stream and creates each
// event's account in the LMS, with no store.
type fakeStack struct {
	js     jetstream.JetStream
	stream string
	lms    connector.LMS
	dec    *events.Decoder
}

func (f *fakeStack) JetStream() jetstream.JetStream { return f.js }
func (f *fakeStack) Stream() string                 { return f.stream }

func (f *fakeStack) Run(ctx context.Context) error {
	cons, err := f.js.CreateOrUpdateConsumer(ctx, f.stream, jetstream.ConsumerConfig{
		Durable: "fake", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		return err
	}
	for ctx.Err() == nil {
		msgs, err := cons.Fetch(100, jetstream.FetchMaxWait(50*time.Millisecond))
		if err != nil {
			return err
		}
		for m := range msgs.Messages() {
			fact, err := f.dec.Decode(m.Subject(), nats.Header(m.Headers()), m.Data())
			if err != nil {
				return err
			}
			ext := fact.Feed + ":" + fact.WorkerID
			if _, err := f.lms.CreateAccount(ctx, account(ext)); err != nil && !errors.Is(err, connector.ErrConflict) {
				return err
			}
			_ = m.Ack()
		}
	}
	return nil
}

func startJetStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: t.TempDir(), NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS not ready after 10s")
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func newFakeStack(t *testing.T, timed *TimedLMS) *fakeStack {
	t.Helper()
	ctx := context.Background()
	js := startJetStream(t)
	sc := events.StreamConfig{Prefix: StreamPrefix}
	if _, err := events.EnsureStreams(ctx, js, sc, []string{Feed}); err != nil {
		t.Fatal(err)
	}
	feeds, err := connector.NewFeeds(connector.DefaultFeed(Feed, connector.FeedHR))
	if err != nil {
		t.Fatal(err)
	}
	return &fakeStack{js: js, stream: sc.Name(Feed), lms: timed, dec: &events.Decoder{Feeds: feeds}}
}

// TestPipeline measures the fake stack end to end, without PostgreSQL.
func TestPipeline(t *testing.T) {
	t.Parallel()
	timed := NewTimedLMS(sandbox.New(), 300)
	s := newFakeStack(t, timed)
	res, err := pipeline(context.Background(), s, timed, 300, MixHires, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != 300 || res.Seconds <= 0 || res.EventsPerS <= 0 || res.P50Ms <= 0 || res.P99Ms < res.P50Ms {
		t.Fatalf("result: %+v", res)
	}
	// The fake stack makes one call a hire: its create.
	if res.Changes != 300 || res.LMSCalls != 300 || res.LMSCallsPerChange != 1 ||
		!reflect.DeepEqual(res.LMSCallsByOp, map[string]int{"CreateAccount": 300}) {
		t.Fatalf("calls: %+v", res)
	}
}

// TestRun runs the whole bench, the baseline on PostgreSQL included, on the fake
// stack and checks what it prints.
func TestRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := pgtest.URL(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	schema := u.Query().Get("search_path")
	db, err := sql.Open("postgres", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })

	timed := NewTimedLMS(sandbox.New(), 200)
	s := newFakeStack(t, timed)
	var out strings.Builder
	res, err := Run(ctx, Config{Events: 200, Batch: 64, Schema: schema, LMS: "test sandbox", JSON: true,
		LMSRate: "1000/h", LMSPerMinute: 1000.0 / 60}, s, timed, db, &out)
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, out.String())
	}
	if res.Events != 200 || res.BaselineEventsPerS <= 0 || res.RatioToBaseline <= 0 || res.LMS != "test sandbox" ||
		res.LMSMinutesAtRate != 12 || res.Replicas != 1 || res.CPUMicrosPerEvent <= 0 {
		t.Fatalf("result: %+v", res)
	}
	var rows int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM "+schema+".bench_baseline").Scan(&rows); err != nil || rows != 200 {
		t.Fatalf("baseline rows: %d (%v)", rows, err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	for i, want := range []string{"hrsync bench: 200 events, PostgreSQL schema " + schema + ", LMS: test sandbox",
		"baseline (JetStream consume+ack, batched INSERT):", "hrsync end to end (publish → LMS account):", "latency publish → LMS: p50",
		"CPU per event: ", "LMS calls: 200 for 200 changes (hires), 1.00 a change: CreateAccount 200", "LMS time at 1000/h: 12.0 minutes"} {
		if i >= len(lines) || !strings.Contains(lines[i], want) {
			t.Errorf("line %d lacks %q:\n%s", i, want, out.String())
		}
	}
	var js Result
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &js); err != nil || !reflect.DeepEqual(js, res) {
		t.Errorf("last line %q is not the result %+v (%v)", lines[len(lines)-1], res, err)
	}
}

func TestCreateSchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_ = pgtest.URL(t) // skips, or fails, when PostgreSQL is unreachable
	admin, err := sql.Open("postgres", pgtest.ServerURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	schema, schemaURL, err := CreateSchema(ctx, admin, pgtest.ServerURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = DropSchema(context.WithoutCancel(ctx), admin, schema) })
	if !strings.HasPrefix(schema, "hrsync_bench_") || len(schema) != len("hrsync_bench_")+8 {
		t.Errorf("schema %q", schema)
	}
	u, err := url.Parse(schemaURL)
	if err != nil || u.Query().Get("search_path") != schema {
		t.Fatalf("schema URL %q (%v)", schemaURL, err)
	}
	if err := DropSchema(ctx, admin, schema); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := admin.QueryRowContext(ctx, "SELECT count(*) FROM information_schema.schemata WHERE schema_name = $1", schema).Scan(&n); err != nil || n != 0 {
		t.Errorf("schema %s left after DropSchema: %d (%v)", schema, n, err)
	}
}

// The CPU accounting reads this process's time and other processes' from /proc.
func TestProcessCPU(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc here")
	}
	b, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	self := strings.TrimSpace(string(b))
	before := processCPU(self)
	for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end); {
		// burn some CPU so that the clock ticks
	}
	after := processCPU(self)
	if before < 0 || after < before {
		t.Errorf("processCPU(%q): %v then %v, want known and growing", self, before, after)
	}
	if got := processCPU("no-such-process-name"); got != -1 {
		t.Errorf("processCPU of no process = %v, want -1", got)
	}
	if got := cpuPerEvent(time.Second, 3*time.Second, 1000); got != 2000 {
		t.Errorf("cpuPerEvent = %v µs, want 2000", got)
	}
	if got := cpuPerEvent(-1, time.Second, 10); got != -1 {
		t.Errorf("cpuPerEvent of an unknown sample = %v, want -1", got)
	}
}
