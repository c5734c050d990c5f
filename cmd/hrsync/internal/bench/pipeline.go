package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/events"
)

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

// PublishAll publishes evs asynchronously, as fast as it can, and returns each
// one's publish time, by the externalId of its worker's account (<feed>:<worker id>).
func PublishAll(ctx context.Context, js jetstream.JetStream, evs []events.Event) (map[string]time.Time, error) {
	return publishPaced(ctx, js, evs, 0)
}

// publishPaced is PublishAll at rate events a second (0: as fast as it can): event
// i goes out i/rate seconds after the first, so that the latency measured is not
// time spent queueing behind a burst.
func publishPaced(ctx context.Context, js jetstream.JetStream, evs []events.Event, rate float64) (map[string]time.Time, error) {
	sent := make(map[string]time.Time, len(evs))
	start := time.Now()
	for i, e := range evs {
		msg, err := events.Encode(e, events.Binary)
		if err != nil {
			return nil, err
		}
		if rate > 0 {
			if d := time.Until(start.Add(time.Duration(float64(i) / rate * float64(time.Second)))); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
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

// measured is what the phases of one run measured together.
type measured struct {
	changes int
	seconds float64                   // the phases' time, each from its first publish to its last change
	lat     []float64                 // each change's latency, publish to LMS, in ms
	calls   map[string]map[string]int // by phase kind, by op
	secs    map[string]float64        // by phase kind
}

// pipeline runs s, and through it the phases of mix (n changes in all), each
// published at rate events a second (0: as fast as possible) and awaited (at most
// 10 minutes) until timed has seen all its changes reach the LMS. It measures each
// phase from its first publish to its last change, and each change's latency from
// its publish to its LMS write.
func pipeline(ctx context.Context, s Stack, timed *TimedLMS, n int, mix string, rate float64) (Result, error) {
	// Worker ids of this run only: a second run against the same NATS server (its
	// duplicate window) or the same LMS (accounts it made) must not meet the first's.
	phases, err := Phases(mix, n, fmt.Sprintf("b%08x", rand.Uint32()), time.Now().UTC())
	if err != nil {
		return Result{}, err
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(rctx) }()
	stop := func(err error) (Result, error) {
		cancel()
		<-done
		return Result{}, err
	}
	m := measured{calls: map[string]map[string]int{}, secs: map[string]float64{}}
	for _, ph := range phases {
		before := timed.Calls()
		timed.phase(len(ph.Events), ph.Done)
		secs, lat, err := runPhase(ctx, s, timed, ph, rate, done)
		if err != nil {
			return stop(err)
		}
		// The calls of this phase's changes: wait until the converger is quiet, so
		// that the calls after a change's write count with its phase.
		quiet(ctx, timed)
		m.changes += len(ph.Events)
		m.seconds += secs
		m.secs[ph.Kind] = secs
		m.lat = append(m.lat, lat...)
		m.calls[ph.Kind] = diff(timed.Calls(), before)
	}
	cancel()
	if err := <-done; err != nil {
		return Result{}, err
	}
	slices.Sort(m.lat)
	res := Result{Events: n, Mix: mix, Changes: m.changes, Seconds: m.seconds, EventsPerS: float64(m.changes) / m.seconds,
		P50Ms: Percentile(m.lat, 0.50), P99Ms: Percentile(m.lat, 0.99), LMSCallsByOp: map[string]int{}}
	if len(phases) > 1 {
		res.LMSCallsPerChangeByKind, res.SecondsByKind = map[string]float64{}, m.secs
	}
	for _, ph := range phases {
		k := 0
		for op, c := range m.calls[ph.Kind] {
			res.LMSCallsByOp[op] += c
			k += c
		}
		res.LMSCalls += k
		if res.LMSCallsPerChangeByKind != nil {
			res.LMSCallsPerChangeByKind[ph.Kind] = float64(k) / float64(len(ph.Events))
		}
	}
	res.LMSCallsPerChange = float64(res.LMSCalls) / float64(res.Changes)
	return res, nil
}

// runPhase publishes ph's events and waits until timed has seen each change.
func runPhase(ctx context.Context, s Stack, timed *TimedLMS, ph Phase, rate float64, stopped <-chan error) (float64, []float64, error) {
	start := time.Now()
	sent, err := publishPaced(ctx, s.JetStream(), ph.Events, rate)
	if err != nil {
		return 0, nil, err
	}
	want := len(ph.Events)
	deadline := time.Now().Add(10 * time.Minute)
	for timed.Count() < want {
		if time.Now().After(deadline) {
			return 0, nil, fmt.Errorf("%s: only %d of %d changes reached the LMS after 10 minutes", ph.Kind, timed.Count(), want)
		}
		select {
		case err := <-stopped:
			return 0, nil, fmt.Errorf("pipeline stopped early: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	var last time.Time
	lat := make([]float64, 0, want)
	timed.mu.Lock()
	for ext, at := range timed.times {
		if at.After(last) {
			last = at
		}
		if p, ok := sent[ext]; ok {
			lat = append(lat, float64(at.Sub(p).Microseconds())/1000)
		}
	}
	timed.mu.Unlock()
	return last.Sub(start).Seconds(), lat, nil
}

// quiet waits (at most 10s) until timed has seen no call for 300ms: the
// converger has finished what the phase started.
func quiet(ctx context.Context, timed *TimedLMS) {
	total := func() int {
		n := 0
		for _, c := range timed.Calls() {
			n += c
		}
		return n
	}
	last, since := total(), time.Now()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil; {
		time.Sleep(50 * time.Millisecond)
		if n := total(); n != last {
			last, since = n, time.Now()
		} else if time.Since(since) >= 300*time.Millisecond {
			return
		}
	}
}

// diff returns after minus before, by op, without the zeros.
func diff(after, before map[string]int) map[string]int {
	out := map[string]int{}
	for op, c := range after {
		if d := c - before[op]; d != 0 {
			out[op] = d
		}
	}
	return out
}

// Percentile returns the p-quantile (0 to 1) of sorted, 0 if it is empty.
func Percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}
