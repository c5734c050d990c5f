package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsserver "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hrsync/hrsync/connector"
)

// runJetStream starts an in-process nats-server with JetStream on a random port,
// storing under a temporary directory, and returns a JetStream client for it.
func runJetStream(t testing.TB) jetstream.JetStream {
	t.Helper()
	opts := natsserver.DefaultTestOptions
	opts.Port = -1
	opts.JetStream = true
	opts.StoreDir = t.TempDir()
	srv := natsserver.RunServer(&opts)
	t.Cleanup(srv.Shutdown)
	return connectJetStream(t, srv)
}

func connectJetStream(t testing.TB, srv *server.Server) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(srv.ClientURL())
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

// fakeRecorder is an in-memory Recorder that dedupes on (source, id) like the store.
type fakeRecorder struct {
	mu          sync.Mutex
	facts       map[string]connector.Fact
	dead        []connector.DeadLetter
	recordCalls int
	deadCalls   int
	// failRecord and failDead, when set, are returned by RecordFacts and DeadLetter.
	failRecord error
	failDead   error
	// refuse makes RecordFacts refuse a batch holding such a fact, permanently.
	refuse func(connector.Fact) bool
	// entered, if set, receives once RecordFacts is called; RecordFacts then waits
	// for release to be closed.
	entered chan struct{}
	release chan struct{}
}

func newFakeRecorder() *fakeRecorder { return &fakeRecorder{facts: map[string]connector.Fact{}} }

func (r *fakeRecorder) RecordFacts(ctx context.Context, facts []connector.Fact) (int, error) {
	r.mu.Lock()
	entered, release := r.entered, r.release
	r.entered = nil
	r.mu.Unlock()
	if entered != nil {
		entered <- struct{}{}
		<-release
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recordCalls++
	if r.failRecord != nil {
		return 0, r.failRecord
	}
	for _, f := range facts {
		if r.refuse != nil && r.refuse(f) {
			return 0, connector.Permanent(fmt.Errorf("worker %s: refused", f.WorkerID))
		}
	}
	n := 0
	for _, f := range facts {
		k := f.Source + " " + f.ID
		if _, dup := r.facts[k]; !dup {
			r.facts[k] = f
			n++
		}
	}
	return n, nil
}

func (r *fakeRecorder) DeadLetter(ctx context.Context, d connector.DeadLetter) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deadCalls++
	if r.failDead != nil {
		return 0, r.failDead
	}
	r.dead = append(r.dead, d)
	return int64(len(r.dead)), nil
}

func (r *fakeRecorder) set(fn func(r *fakeRecorder)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fn(r)
}

func (r *fakeRecorder) counts() (facts, dead, recordCalls, deadCalls int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.facts), len(r.dead), r.recordCalls, r.deadCalls
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(timeout)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
	}
}

// consumerBundle is one consumer under test.
type consumerBundle struct {
	js   jetstream.JetStream
	rec  *fakeRecorder
	hook struct {
		sync.Mutex
		consumed, recorded, storeErrors int
		deadLettered                    []string
		committed                       int
	}
	cancel func()       // cancels Consume's context
	wait   func() error // waits for Consume to return
}

// stop cancels Consume and returns its result.
func (b *consumerBundle) stop() error {
	b.cancel()
	return b.wait()
}

// setupConsumer starts a server, the stream, and Consume with cfg (Logger and Hooks
// are filled in).
func setupConsumer(t *testing.T, cfg ConsumerConfig) *consumerBundle {
	t.Helper()
	b := &consumerBundle{js: runJetStream(t), rec: newFakeRecorder()}
	ctx := context.Background()
	if _, err := EnsureStreams(ctx, b.js, StreamConfig{}, testFeeds(t).Names()); err != nil {
		t.Fatal(err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.Hooks = Hooks{
		Consumed: func(string) { b.hook.Lock(); b.hook.consumed++; b.hook.Unlock() },
		Recorded: func(n int) { b.hook.Lock(); b.hook.recorded += n; b.hook.Unlock() },
		DeadLettered: func(feed, reason string) {
			b.hook.Lock()
			b.hook.deadLettered = append(b.hook.deadLettered, reason)
			b.hook.Unlock()
		},
		StoreError:  func(error) { b.hook.Lock(); b.hook.storeErrors++; b.hook.Unlock() },
		AfterCommit: func(f []connector.Fact) { b.hook.Lock(); b.hook.committed += len(f); b.hook.Unlock() },
	}
	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	done := make(chan error, 1)
	go func() { done <- Consume(ctx, b.js, &Decoder{Feeds: testFeeds(t)}, b.rec, cfg) }()
	b.cancel = cancel
	b.wait = func() error {
		select {
		case err := <-done:
			return err
		case <-time.After(15 * time.Second):
			return errors.New("Consume did not return after cancel")
		}
	}
	// Consume creates the durable consumers; wait for them so that tests can read their state.
	waitFor(t, 10*time.Second, "the durable consumers", func() bool {
		for _, f := range testFeeds(t).Names() {
			if _, err := b.js.Consumer(ctx, StreamConfig{}.Name(f), DefaultDurable); err != nil {
				return false
			}
		}
		return true
	})
	return b
}

func (b *consumerBundle) publish(t *testing.T, e Event, mode Mode) *jetstream.PubAck {
	t.Helper()
	ack, err := Publish(context.Background(), b.js, e, mode)
	if err != nil {
		t.Fatal(err)
	}
	return ack
}

func (b *consumerBundle) publishRaw(t *testing.T, msg *nats.Msg) {
	t.Helper()
	if _, err := b.js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
}

// settled waits until every feed's consumer has delivered everything and holds no
// unacked message, and returns the info of feed hr's.
func (b *consumerBundle) settled(t *testing.T) *jetstream.ConsumerInfo {
	t.Helper()
	var info *jetstream.ConsumerInfo
	waitFor(t, 10*time.Second, "every message acked or terminated", func() bool {
		for _, f := range []string{"partner-acme", "hr"} {
			c, err := b.js.Consumer(context.Background(), StreamConfig{}.Name(f), DefaultDurable)
			if err != nil {
				return false
			}
			info = c.CachedInfo()
			if info.NumPending != 0 || info.NumAckPending != 0 || info.NumRedelivered != 0 {
				return false
			}
		}
		return true
	})
	return info
}

func hiredEvent(worker, id string) Event {
	return Event{
		Feed: "hr", Kind: connector.KindHired, ID: id, Source: "/feeds/hr", Time: eventTime,
		Data: Data{WorkerID: worker, Email: worker + "@example.com", Effective: "2026-12-01"},
	}
}

func TestConsume(t *testing.T) {
	t.Parallel()

	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		b := setupConsumer(t, ConsumerConfig{Batch: 4})
		b.publish(t, hiredEvent("w-1", "evt-1"), Structured)
		left := hiredEvent("w-1", "evt-2")
		left.Kind, left.Data.Email, left.Data.Reason = connector.KindLeft, "", "moved on"
		b.publish(t, left, Binary)
		b.publish(t, hiredEvent("w-2", "evt-3"), Binary)
		// The same event again: JetStream's duplicate window drops it.
		if ack := b.publish(t, hiredEvent("w-1", "evt-1"), Structured); !ack.Duplicate {
			t.Error("re-publish within the duplicate window was not flagged as a duplicate")
		}
		// The same event with another Nats-Msg-Id gets through; the store dedupes it.
		dup, err := Encode(hiredEvent("w-2", "evt-3"), Structured)
		if err != nil {
			t.Fatal(err)
		}
		dup.Header.Set(jetstream.MsgIDHeader, "resent")
		b.publishRaw(t, dup)
		// Two invalid messages.
		bad := hiredEvent("w-3", "evt-4")
		bad.Data.Effective = "2026-13-01"
		badMsg, _ := Encode(bad, Binary)
		b.publishRaw(t, badMsg)
		b.publishRaw(t, &nats.Msg{Subject: "hrsync.events.partner-acme.hired", Data: []byte(`{"specversion":"1.0"}`)})
		// An undeclared feed has no stream: the publisher is refused, nothing is taken in.
		if _, err := b.js.PublishMsg(context.Background(), &nats.Msg{Subject: "hrsync.events.payroll.hired", Data: []byte(`{}`)}); err == nil {
			t.Error("publishing to an undeclared feed was accepted")
		}

		waitFor(t, 10*time.Second, "3 facts and 2 dead letters", func() bool {
			facts, dead, _, _ := b.rec.counts()
			return facts == 3 && dead == 2
		})
		info := b.settled(t)
		if info.Delivered.Stream != 5 {
			t.Errorf("feed hr's stream holds %d messages, want 5", info.Delivered.Stream)
		}
		if err := b.stop(); err != nil {
			t.Fatalf("Consume = %v, want nil", err)
		}

		b.rec.mu.Lock()
		defer b.rec.mu.Unlock()
		if b.rec.deadCalls != 2 {
			t.Errorf("DeadLetter called %d times, want 2 (terminated messages must not come back)", b.rec.deadCalls)
		}
		byFeed := map[string]connector.DeadLetter{}
		for _, d := range b.rec.dead {
			byFeed[d.Feed] = d
		}
		if d := byFeed["hr"]; d.Reason != `field "data.effective": not an RFC 3339 date or date-time: "2026-13-01"` ||
			d.Subject != "hrsync.events.hr.hired" || len(d.Data) == 0 || !strings.Contains(string(d.Headers), "ce-specversion") {
			t.Errorf("dead letter of the bad date: %+v", d)
		} else if msg, err := ReplayMessage(d); err != nil || msg.Header.Get("ce-id") != "evt-4" {
			t.Errorf("ReplayMessage = %v, %v", msg, err)
		}
		if d := byFeed["partner-acme"]; d.Reason == "" || d.Subject != "hrsync.events.partner-acme.hired" {
			t.Errorf("dead letter of the partner's junk: %+v", d)
		}
		if f := b.rec.facts["/feeds/hr evt-2"]; f.Kind != connector.KindLeft || f.Reason != "moved on" {
			t.Errorf("left fact = %+v", f)
		}

		b.hook.Lock()
		defer b.hook.Unlock()
		if b.hook.consumed != 6 || b.hook.recorded != 3 || b.hook.committed != 4 || len(b.hook.deadLettered) != 2 || b.hook.storeErrors != 0 {
			t.Errorf("hooks: consumed %d, recorded %d, committed %d, dead-lettered %d, store errors %d; want 6, 3, 4, 2, 0",
				b.hook.consumed, b.hook.recorded, b.hook.committed, len(b.hook.deadLettered), b.hook.storeErrors)
		}
	})

	t.Run("StoreDownRedelivers", func(t *testing.T) {
		t.Parallel()
		b := setupConsumer(t, ConsumerConfig{NakDelay: 20 * time.Millisecond})
		b.rec.set(func(r *fakeRecorder) { r.failRecord = errors.New("connection refused") })
		for i := range 5 {
			b.publish(t, hiredEvent(fmt.Sprintf("w-%d", i), fmt.Sprintf("evt-%d", i)), Structured)
		}
		waitFor(t, 10*time.Second, "three failed attempts", func() bool {
			_, _, calls, _ := b.rec.counts()
			return calls >= 3
		})
		if facts, dead, _, _ := b.rec.counts(); facts != 0 || dead != 0 {
			t.Fatalf("%d facts, %d dead letters while the store is down", facts, dead)
		}
		b.rec.set(func(r *fakeRecorder) { r.failRecord = nil })
		waitFor(t, 10*time.Second, "5 facts once the store is back", func() bool {
			facts, _, _, _ := b.rec.counts()
			return facts == 5
		})
		b.settled(t)
		if err := b.stop(); err != nil {
			t.Fatal(err)
		}
		if _, dead, _, _ := b.rec.counts(); dead != 0 {
			t.Errorf("%d dead letters, want none: a store outage is not the message's fault", dead)
		}
		b.hook.Lock()
		defer b.hook.Unlock()
		if b.hook.storeErrors < 2 {
			t.Errorf("StoreError called %d times", b.hook.storeErrors)
		}
	})

	t.Run("DeadLetterFailsRedelivers", func(t *testing.T) {
		t.Parallel()
		b := setupConsumer(t, ConsumerConfig{NakDelay: 20 * time.Millisecond})
		b.rec.set(func(r *fakeRecorder) { r.failDead = errors.New("connection refused") })
		b.publishRaw(t, &nats.Msg{Subject: "hrsync.events.hr.hired", Data: []byte("garbage")})
		waitFor(t, 10*time.Second, "two dead-letter attempts", func() bool {
			_, _, _, calls := b.rec.counts()
			return calls >= 2
		})
		b.rec.set(func(r *fakeRecorder) { r.failDead = nil })
		waitFor(t, 10*time.Second, "the dead letter", func() bool {
			_, dead, _, _ := b.rec.counts()
			return dead == 1
		})
		b.settled(t)
		if err := b.stop(); err != nil {
			t.Fatal(err)
		}
		if _, dead, _, _ := b.rec.counts(); dead != 1 {
			t.Errorf("%d dead letters, want 1", dead)
		}
	})

	t.Run("PermanentStoreErrorIsolatesTheFact", func(t *testing.T) {
		t.Parallel()
		b := setupConsumer(t, ConsumerConfig{MaxWait: time.Second, Batch: 3})
		b.rec.set(func(r *fakeRecorder) { r.refuse = func(f connector.Fact) bool { return f.WorkerID == "w-poison" } })
		b.publish(t, hiredEvent("w-1", "evt-1"), Structured)
		b.publish(t, hiredEvent("w-poison", "evt-2"), Structured)
		b.publish(t, hiredEvent("w-3", "evt-3"), Structured)
		waitFor(t, 10*time.Second, "2 facts and 1 dead letter", func() bool {
			facts, dead, _, _ := b.rec.counts()
			return facts == 2 && dead == 1
		})
		b.settled(t)
		if err := b.stop(); err != nil {
			t.Fatal(err)
		}
		b.rec.mu.Lock()
		defer b.rec.mu.Unlock()
		if d := b.rec.dead[0]; d.Feed != "hr" || !strings.Contains(d.Reason, "w-poison: refused") {
			t.Errorf("dead letter %+v", d)
		}
	})

	t.Run("CancelFinishesTheBatch", func(t *testing.T) {
		t.Parallel()
		b := setupConsumer(t, ConsumerConfig{MaxWait: time.Second, Batch: 2})
		entered, release := make(chan struct{}, 1), make(chan struct{})
		b.rec.set(func(r *fakeRecorder) { r.entered, r.release = entered, release })
		b.publish(t, hiredEvent("w-1", "evt-1"), Structured)
		b.publish(t, hiredEvent("w-2", "evt-2"), Binary)
		select {
		case <-entered:
		case <-time.After(10 * time.Second):
			t.Fatal("RecordFacts was not called")
		}
		b.cancel()
		close(release) // the store answers after the cancellation
		if err := b.wait(); err != nil {
			t.Fatalf("Consume = %v, want nil", err)
		}
		if facts, _, _, _ := b.rec.counts(); facts != 2 {
			t.Fatalf("%d facts recorded, want 2", facts)
		}
		b.settled(t) // acked before Consume returned, so not redelivered
	})

	t.Run("ErrNoStream", func(t *testing.T) {
		t.Parallel()
		js := runJetStream(t)
		err := Consume(context.Background(), js, &Decoder{Feeds: testFeeds(t)}, newFakeRecorder(), ConsumerConfig{StreamPrefix: "NOPE"})
		if err == nil || !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("Consume = %v, want ErrStreamNotFound", err)
		}
	})

	t.Run("CancelledBeforeStart", func(t *testing.T) {
		t.Parallel()
		js := runJetStream(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := Consume(ctx, js, &Decoder{}, newFakeRecorder(), ConsumerConfig{}); err != nil {
			t.Errorf("Consume = %v, want nil", err)
		}
	})
}

func TestEnsureStreams(t *testing.T) {
	t.Parallel()
	js := runJetStream(t)
	ctx := context.Background()
	names, err := EnsureStreams(ctx, js, StreamConfig{}, []string{"hr", "partner-acme"})
	if err != nil {
		t.Fatal(err)
	}
	if names["hr"] != "HRSYNC_hr" || names["partner-acme"] != "HRSYNC_partner-acme" {
		t.Fatalf("stream names %v", names)
	}
	s, err := js.Stream(ctx, "HRSYNC_partner-acme")
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	if len(cfg.Subjects) != 1 || cfg.Subjects[0] != "hrsync.events.partner-acme.>" ||
		cfg.Storage != jetstream.FileStorage || cfg.Duplicates != 2*time.Minute || cfg.Replicas != 1 ||
		cfg.Discard != jetstream.DiscardNew || cfg.MaxAge != DefaultMaxAge || cfg.MaxBytes != DefaultMaxBytes ||
		cfg.MaxMsgSize != DefaultMaxMsgSize {
		t.Errorf("stream config %+v", cfg)
	}
	// Updating in place with new limits, one feed its own.
	_, err = EnsureStreams(ctx, js, StreamConfig{Limits: StreamLimits{MaxAge: 72 * time.Hour, MaxBytes: 1 << 20},
		PerFeed: map[string]StreamLimits{"partner-acme": {MaxBytes: 1 << 16}}, Duplicates: 10 * time.Minute}, []string{"hr", "partner-acme"})
	if err != nil {
		t.Fatal(err)
	}
	for feed, wantBytes := range map[string]int64{"hr": 1 << 20, "partner-acme": 1 << 16} {
		s, err := js.Stream(ctx, StreamConfig{}.Name(feed))
		if err != nil {
			t.Fatal(err)
		}
		if cfg := s.CachedInfo().Config; cfg.MaxAge != 72*time.Hour || cfg.MaxBytes != wantBytes || cfg.Duplicates != 10*time.Minute {
			t.Errorf("%s: updated stream config %+v", feed, cfg)
		}
	}
	// Limits for a feed that is not declared are a typo, named.
	if _, err := EnsureStreams(ctx, js, StreamConfig{PerFeed: map[string]StreamLimits{"partner-acmee": {}}}, []string{"hr"}); err == nil ||
		!strings.Contains(err.Error(), `"partner-acmee"`) {
		t.Errorf("limits of an undeclared feed: %v", err)
	}
}

// The single stream of earlier versions captures every feed's subjects: hrsync
// refuses to start beside it and says what to do.
func TestEnsureStreamsRefusesTheSharedStream(t *testing.T) {
	t.Parallel()
	js := runJetStream(t)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "HRSYNC", Subjects: []string{SubjectWildcard}}); err != nil {
		t.Fatal(err)
	}
	_, err := EnsureStreams(ctx, js, StreamConfig{}, []string{"hr"})
	if !errors.Is(err, ErrStreamOverlap) || !strings.Contains(err.Error(), "nats stream rm HRSYNC") {
		t.Errorf("EnsureStreams beside the shared stream = %v", err)
	}
}

// BenchmarkConsume measures the consumer alone (decode, batch, ack) against an
// in-process server and an in-memory recorder; the events are published first.
func BenchmarkConsume(b *testing.B) {
	for _, mode := range []Mode{Structured, Binary} {
		b.Run(mode.String(), func(b *testing.B) {
			js := runJetStream(b)
			ctx := context.Background()
			if _, err := EnsureStreams(ctx, js, StreamConfig{}, testFeeds(b).Names()); err != nil {
				b.Fatal(err)
			}
			for i := range b.N {
				e := hiredEvent(fmt.Sprintf("w-%d", i), fmt.Sprintf("evt-%d", i))
				e.Data.GivenName, e.Data.FamilyName, e.Data.JobTitle = "Ada", "Lovelace", "Analyst"
				msg, err := Encode(e, mode)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := js.PublishMsgAsync(msg); err != nil {
					b.Fatal(err)
				}
			}
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(time.Minute):
				b.Fatal("publishing timed out")
			}

			rec := newFakeRecorder()
			var mu sync.Mutex
			got := 0
			all := make(chan struct{})
			cctx, cancel := context.WithCancel(ctx)
			defer cancel()
			done := make(chan error, 1)
			b.ResetTimer()
			start := time.Now()
			go func() {
				done <- Consume(cctx, js, &Decoder{Feeds: testFeeds(b)}, rec, ConsumerConfig{Hooks: Hooks{
					AfterCommit: func(f []connector.Fact) {
						mu.Lock()
						defer mu.Unlock()
						if got += len(f); got == b.N {
							close(all)
						}
					},
				}})
			}()
			select {
			case <-all:
			case err := <-done:
				b.Fatalf("Consume returned early: %v", err)
			case <-time.After(5 * time.Minute):
				b.Fatal("timed out")
			}
			elapsed := time.Since(start)
			b.StopTimer()
			cancel()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
		})
	}
}

// BenchmarkDecode measures the CPU cost of decoding one event.
func BenchmarkDecode(b *testing.B) {
	dec := &Decoder{Feeds: testFeeds(b)}
	for _, mode := range []Mode{Structured, Binary} {
		b.Run(mode.String(), func(b *testing.B) {
			e := hiredEvent("w-1", "evt-1")
			e.Data.GivenName, e.Data.FamilyName, e.Data.JobTitle = "Ada", "Lovelace", "Analyst"
			msg, err := Encode(e, mode)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := dec.Decode(msg.Subject, msg.Header, msg.Data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
