package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"time"

	_ "github.com/lib/pq" // the baseline writes to PostgreSQL directly
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/events"
)

func cmdBench(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "bench", "bench [flags]", `
A benchmark, not a test. It pushes N hire events end to end: publish to JetStream →
consume → record in PostgreSQL → converge → create the account in the LMS (the
in-process sandbox, or any SCIM LMS with --lms-url). It prints events/s and the p50/p99
latency from publish to the LMS call returning.

Beside it, measured in the same run on the same machine, a baseline: bare JetStream
consume and ack with batched PostgreSQL inserts of the same number of events. The
bench works in a fresh PostgreSQL schema that it drops afterwards.`)
	vars := map[string]string{}
	dbURL := fs.String("db", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "PostgreSQL URL (a fresh schema is used and dropped)")
	vars["db"] = "DATABASE_URL"
	n := fs.Int("events", 20000, "number of events")
	natsURL := fs.String("nats-url", "", "NATS server with JetStream (default: an embedded in-process server)")
	var l lmsFlags
	l.register(fs, vars)
	fs.Lookup("lms-url").Usage = "SCIM base URL of an LMS to create the accounts in (default: the in-process sandbox)"
	concurrency := fs.Int("concurrency", 16, "workers converged at once")
	batch := fs.Int("batch", 512, "messages per consume batch")
	convBatch := fs.Int("converge-batch", 256, "workers per converge claim")
	loops := fs.Int("loops", 2, "converge batches in flight at once")
	asJSON := fs.Bool("json", false, "end with one JSON line of results")
	keep := fs.Bool("keep-schema", false, "do not drop the schema afterwards")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the end-to-end run to this file")
	if err := parseFlags(fs, env, args, vars); err != nil {
		return err
	}
	if *n < 100 || *n > 2_000_000 {
		return fmt.Errorf("--events %d: want 100 to 2000000", *n)
	}
	u, err := url.Parse(*dbURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return fmt.Errorf("--db %q: bench needs a postgres:// URL", redactURL(*dbURL))
	}
	log, err := newLogger(env.stderr, "text", "warn")
	if err != nil {
		return err
	}

	// A fresh schema, so a bench never touches real data.
	schema := "hrsync_bench_" + randomID()[:8]
	admin, err := sql.Open("postgres", *dbURL)
	if err != nil {
		return err
	}
	defer admin.Close()
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	if !*keep {
		defer func() { _, _ = admin.ExecContext(context.WithoutCancel(ctx), "DROP SCHEMA "+schema+" CASCADE") }()
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	schemaURL := u.String()

	var lms connector.LMS
	var lmsName string
	if l.url != "" {
		if lms, err = openLMS(lmsConfig{}.over(&l)); err != nil {
			return err
		}
		lmsName = "SCIM at " + l.url
	} else {
		lms, lmsName = sandbox.New(), "in-process sandbox"
	}
	timed := &timedLMS{LMS: lms, created: make(map[string]time.Time, *n)}

	feeds, _ := connector.NewFeeds(connector.DefaultFeed("hr", connector.FeedHR))
	set, err := settingsFor(schemaURL, feeds, fileConfig{})
	if err != nil {
		return err
	}
	set.stream.Prefix = benchStreamPrefix
	s, err := newStack(ctx, set, appOptions{LMS: timed, Log: log}, stackConfig{
		NATSURL: *natsURL, EmbeddedNATS: *natsURL == "", ManageStream: true, Durable: "hrsync-bench",
		Converger: connector.ConvergerConfig{Concurrency: *concurrency, Batch: *convBatch, Loops: *loops, PollInterval: 50 * time.Millisecond},
		Consumer:  events.ConsumerConfig{Batch: *batch, MaxWait: 20 * time.Millisecond},
	})
	if err != nil {
		return err
	}
	defer s.Close()
	streamName := set.stream.Name("hr")
	stream, err := s.js.Stream(ctx, streamName)
	if err != nil {
		return err
	}
	defer func() { _ = s.js.DeleteStream(context.WithoutCancel(ctx), streamName) }()

	fmt.Fprintf(env.stdout, "hrsync bench: %d events, PostgreSQL schema %s, LMS: %s\n", *n, schema, lmsName)

	// Baseline: the same events, bare consume+ack with batched inserts.
	base, err := benchBaseline(ctx, s.js, streamName, admin, schema, *n, *batch)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	if err := stream.Purge(ctx); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "  baseline (JetStream consume+ack, batched INSERT): %8.0f events/s\n", base)

	// The real path.
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	res, err := benchPipeline(ctx, s, timed, *n)
	if err != nil {
		return err
	}
	res.BaselineEventsPerS = base
	res.RatioToBaseline = res.EventsPerS / base
	res.LMS = lmsName
	fmt.Fprintf(env.stdout, "  hrsync end to end (publish → LMS account):       %8.0f events/s (%.0f%% of baseline)\n", res.EventsPerS, 100*res.RatioToBaseline)
	fmt.Fprintf(env.stdout, "  latency publish → LMS: p50 %.1f ms, p99 %.1f ms\n", res.P50Ms, res.P99Ms)
	if *asJSON {
		line, _ := json.Marshal(res)
		fmt.Fprintln(env.stdout, string(line))
	}
	return nil
}

type benchResult struct {
	Events             int     `json:"events"`
	Seconds            float64 `json:"seconds"`
	EventsPerS         float64 `json:"events_per_s"`
	BaselineEventsPerS float64 `json:"baseline_events_per_s"`
	RatioToBaseline    float64 `json:"ratio_to_baseline"`
	P50Ms              float64 `json:"p50_ms"`
	P99Ms              float64 `json:"p99_ms"`
	LMS                string  `json:"lms"`
}

// timedLMS records when each account's create returned, by externalId.
type timedLMS struct {
	connector.LMS
	mu      sync.Mutex
	created map[string]time.Time
}

func (t *timedLMS) CreateAccount(ctx context.Context, a connector.Account) (connector.Account, error) {
	out, err := t.LMS.CreateAccount(ctx, a)
	if err == nil {
		t.mu.Lock()
		t.created[a.ExternalID] = time.Now()
		t.mu.Unlock()
	}
	return out, err
}

func (t *timedLMS) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.created)
}

func benchEvents(n int, prefix string) []events.Event {
	out := make([]events.Event, n)
	now := time.Now().UTC()
	for i := range out {
		w := fmt.Sprintf("%s-%07d", prefix, i)
		out[i] = events.Event{Feed: "hr", Kind: connector.KindHired, ID: w, Source: "/feeds/hr", Time: now,
			Data: events.Data{WorkerID: w, Email: w + "@bench.example", GivenName: "Bench", FamilyName: w,
				Effective: now.Format(time.RFC3339)}}
	}
	return out
}

// publishAll publishes evs asynchronously and returns each one's publish time.
func publishAll(ctx context.Context, js jetstream.JetStream, evs []events.Event) (map[string]time.Time, error) {
	sent := make(map[string]time.Time, len(evs))
	for i, e := range evs {
		msg, err := events.Encode(e, events.Binary)
		if err != nil {
			return nil, err
		}
		sent["hr:"+e.Data.WorkerID] = time.Now()
		if _, err := js.PublishMsgAsync(msg); err != nil {
			return nil, err
		}
		if i%1000 == 999 {
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(30 * time.Second):
				return nil, errors.New("publish acks not received within 30s")
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		return nil, errors.New("publish acks not received within 30s")
	}
	return sent, nil
}

func benchPipeline(ctx context.Context, s *stack, timed *timedLMS, n int) (benchResult, error) {
	evs := benchEvents(n, "b")
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.runLoops(rctx) }()
	start := time.Now()
	sent, err := publishAll(ctx, s.js, evs)
	if err != nil {
		cancel()
		<-done
		return benchResult{}, err
	}
	deadline := time.Now().Add(10 * time.Minute)
	for timed.count() < n {
		if time.Now().After(deadline) {
			cancel()
			<-done
			return benchResult{}, fmt.Errorf("only %d of %d accounts created after 10 minutes", timed.count(), n)
		}
		select {
		case err := <-done:
			return benchResult{}, fmt.Errorf("pipeline stopped early: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		return benchResult{}, err
	}
	var last time.Time
	lat := make([]float64, 0, n)
	timed.mu.Lock()
	for ext, at := range timed.created {
		if at.After(last) {
			last = at
		}
		if p, ok := sent[ext]; ok {
			lat = append(lat, float64(at.Sub(p).Microseconds())/1000)
		}
	}
	timed.mu.Unlock()
	slices.Sort(lat)
	secs := last.Sub(start).Seconds()
	return benchResult{Events: n, Seconds: secs, EventsPerS: float64(n) / secs,
		P50Ms: percentile(lat, 0.50), P99Ms: percentile(lat, 0.99)}, nil
}

func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

// benchStreamPrefix keeps the bench's streams apart from a deployment's.
const benchStreamPrefix = "HRSYNC_BENCH"

// benchBaseline measures bare JetStream consume+ack with one multi-row INSERT per
// batch, on the same events, to show what the machine can do without hrsync.
func benchBaseline(ctx context.Context, js jetstream.JetStream, stream string, db *sql.DB, schema string, n, batch int) (float64, error) {
	table := schema + ".bench_baseline"
	if _, err := db.ExecContext(ctx, "CREATE TABLE "+table+" (subject TEXT NOT NULL, msg_id TEXT NOT NULL, data BYTEA NOT NULL, at TIMESTAMPTZ NOT NULL DEFAULT now())"); err != nil {
		return 0, err
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable: "baseline", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 4 * batch,
	})
	if err != nil {
		return 0, err
	}
	defer func() { _ = js.DeleteConsumer(context.WithoutCancel(ctx), stream, "baseline") }()
	start := time.Now()
	if _, err := publishAll(ctx, js, benchEvents(n, "base")); err != nil {
		return 0, err
	}
	got := 0
	deadline := time.Now().Add(5 * time.Minute)
	for got < n {
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("consumed %d of %d in 5 minutes", got, n)
		}
		msgs, err := cons.FetchNoWait(batch)
		if err != nil {
			return 0, err
		}
		var rows []jetstream.Msg
		for m := range msgs.Messages() {
			rows = append(rows, m)
		}
		if len(rows) == 0 {
			select {
			case <-time.After(2 * time.Millisecond):
			case <-ctx.Done():
				return 0, ctx.Err()
			}
			continue
		}
		var sb strings.Builder
		argv := make([]any, 0, 3*len(rows))
		sb.WriteString("INSERT INTO " + table + " (subject, msg_id, data) VALUES ")
		for i, m := range rows {
			if i > 0 {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, "($%d,$%d,$%d)", 3*i+1, 3*i+2, 3*i+3)
			argv = append(argv, m.Subject(), m.Headers().Get(jetstream.MsgIDHeader), m.Data())
		}
		if _, err := db.ExecContext(ctx, sb.String(), argv...); err != nil {
			return 0, err
		}
		for _, m := range rows {
			_ = m.Ack()
		}
		got += len(rows)
	}
	return float64(n) / time.Since(start).Seconds(), nil
}
