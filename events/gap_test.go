package events

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// gapLog collects the gaps reported through Hooks.Gap.
type gapLog struct {
	mu   sync.Mutex
	gaps []string
	lost int
}

func (g *gapLog) hook(feed string, first, last uint64, n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.gaps = append(g.gaps, fmt.Sprintf("%s %d-%d %d", feed, first, last, n))
	g.lost += n
}

func (g *gapLog) get() ([]string, int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.gaps...), g.lost
}

// Events removed from a feed's stream before hrsync recorded them are reported,
// whether they went while hrsync was stopped or while it was running behind.
func TestConsumeReportsGaps(t *testing.T) {
	t.Parallel()
	js := runJetStream(t)
	ctx := context.Background()
	// A max age of a second, to let events age out as they would over a long outage.
	short := StreamConfig{Limits: StreamLimits{MaxAge: time.Second}, Duplicates: 500 * time.Millisecond}
	if _, err := EnsureStreams(ctx, js, short, testFeeds(t).Names()); err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, StreamConfig{}.Name("hr"))
	if err != nil {
		t.Fatal(err)
	}
	publish := func(from, to int) {
		for i := from; i <= to; i++ {
			if _, err := Publish(ctx, js, hiredEvent(fmt.Sprintf("w-%d", i), fmt.Sprintf("evt-%d", i)), Binary); err != nil {
				t.Fatal(err)
			}
		}
	}
	// hrsync ran once, then stopped; three events aged out before it ran again.
	logger := slog.New(slog.NewTextHandler(t.Output(), nil))
	first, stop := context.WithCancel(ctx)
	stop()
	if err := Consume(first, js, &Decoder{Feeds: testFeeds(t)}, newFakeRecorder(), ConsumerConfig{Logger: logger}); err != nil {
		t.Fatal(err)
	}
	for _, f := range testFeeds(t).Names() {
		if _, err := js.CreateOrUpdateConsumer(ctx, StreamConfig{}.Name(f), jetstream.ConsumerConfig{Durable: DefaultDurable,
			AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: FeedSubject(f)}); err != nil {
			t.Fatal(err)
		}
	}
	publish(1, 3)
	waitFor(t, 10*time.Second, "the events aged out", func() bool {
		info, err := stream.Info(ctx)
		return err == nil && info.State.Msgs == 0
	})
	// From now on nothing ages out.
	if _, err := EnsureStreams(ctx, js, StreamConfig{}, testFeeds(t).Names()); err != nil {
		t.Fatal(err)
	}
	rec := newFakeRecorder()
	entered, release := make(chan struct{}, 1), make(chan struct{})
	rec.set(func(r *fakeRecorder) { r.entered, r.release = entered, release })
	var gaps gapLog
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- Consume(cctx, js, &Decoder{Feeds: testFeeds(t)}, rec, ConsumerConfig{Batch: 1,
			Logger: logger, Hooks: Hooks{Gap: gaps.hook}})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Consume = %v", err)
		}
	}()
	waitFor(t, 10*time.Second, "the gap found at start", func() bool { _, n := gaps.get(); return n == 3 })

	// Running behind: the store holds the first batch while more arrive; two of
	// them are deleted (as an operator might) before they were delivered.
	publish(4, 4)
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("RecordFacts was not called")
	}
	publish(5, 9) // seq 5 to 9; seq 5 may already be buffered by the client
	for _, seq := range []uint64{7, 8} {
		if err := stream.DeleteMsg(ctx, seq); err != nil {
			t.Fatal(err)
		}
	}
	close(release)
	waitFor(t, 10*time.Second, "every remaining event recorded", func() bool { f, _, _, _ := rec.counts(); return f == 4 })
	waitFor(t, 10*time.Second, "the gap found while running", func() bool { _, n := gaps.get(); return n == 5 })
	got, _ := gaps.get()
	if len(got) != 2 || got[0] != "hr 1-3 3" || got[1] != "hr 7-8 2" {
		t.Errorf("gaps %q, want [hr 1-3 3, hr 7-8 2]", got)
	}
	// The partner's stream lost nothing and reports nothing.
	for _, g := range got {
		if g[:2] != "hr" {
			t.Errorf("gap reported for another feed: %s", g)
		}
	}
}
