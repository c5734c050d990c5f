package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/events"
)

// TimedLMS records when each account's create returned, by externalId. The stack
// the bench measures creates its accounts through it.
type TimedLMS struct {
	connector.LMS
	mu      sync.Mutex
	created map[string]time.Time
}

// NewTimedLMS returns lms timed, with room for n accounts.
func NewTimedLMS(lms connector.LMS, n int) *TimedLMS {
	return &TimedLMS{LMS: lms, created: make(map[string]time.Time, n)}
}

// CreateAccount creates a in the LMS and, if it succeeded, records when.
func (t *TimedLMS) CreateAccount(ctx context.Context, a connector.Account) (connector.Account, error) {
	out, err := t.LMS.CreateAccount(ctx, a)
	if err == nil {
		t.mu.Lock()
		t.created[a.ExternalID] = time.Now()
		t.mu.Unlock()
	}
	return out, err
}

// Count returns the number of accounts created so far.
func (t *TimedLMS) Count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.created)
}

// Events returns n hire events of Feed, of workers <prefix>-0000000 onwards.
func Events(n int, prefix string) []events.Event {
	out := make([]events.Event, n)
	now := time.Now().UTC()
	for i := range out {
		w := fmt.Sprintf("%s-%07d", prefix, i)
		out[i] = events.Event{Feed: Feed, Kind: connector.KindHired, ID: w, Source: "/feeds/" + Feed, Time: now,
			Data: events.Data{WorkerID: w, Email: w + "@bench.example", GivenName: "Bench", FamilyName: w,
				Effective: now.Format(time.RFC3339)}}
	}
	return out
}

// PublishAll publishes evs asynchronously and returns each one's publish time, by
// the externalId of its worker's account (<feed>:<worker id>).
func PublishAll(ctx context.Context, js jetstream.JetStream, evs []events.Event) (map[string]time.Time, error) {
	sent := make(map[string]time.Time, len(evs))
	for i, e := range evs {
		msg, err := events.Encode(e, events.Binary)
		if err != nil {
			return nil, err
		}
		sent[e.Feed+":"+e.Data.WorkerID] = time.Now()
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

// pipeline runs s, publishes n events and waits (at most 10 minutes) until timed
// has created their n accounts. It measures from the first publish to the last
// create, and each event's latency from its publish to its account's create.
func pipeline(ctx context.Context, s Stack, timed *TimedLMS, n int) (Result, error) {
	// Worker ids of this run only: a second run against the same NATS server (its
	// duplicate window) or the same LMS (accounts it made) must not meet the first's.
	evs := Events(n, fmt.Sprintf("b%08x", rand.Uint32()))
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(rctx) }()
	start := time.Now()
	sent, err := PublishAll(ctx, s.JetStream(), evs)
	if err != nil {
		cancel()
		<-done
		return Result{}, err
	}
	deadline := time.Now().Add(10 * time.Minute)
	for timed.Count() < n {
		if time.Now().After(deadline) {
			cancel()
			<-done
			return Result{}, fmt.Errorf("only %d of %d accounts created after 10 minutes", timed.Count(), n)
		}
		select {
		case err := <-done:
			return Result{}, fmt.Errorf("pipeline stopped early: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		return Result{}, err
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
	return Result{Events: n, Seconds: secs, EventsPerS: float64(n) / secs,
		P50Ms: Percentile(lat, 0.50), P99Ms: Percentile(lat, 0.99)}, nil
}

// Percentile returns the p-quantile (0 to 1) of sorted, 0 if it is empty.
func Percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}
