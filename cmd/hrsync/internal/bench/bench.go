// Package bench measures hrsync end to end, as "hrsync bench" runs it: N events
// (hires, or a lifecycle mix of hires, leaves, updates and rehires in waves)
// published to JetStream, consumed, recorded in PostgreSQL, converged and carried
// to the LMS, against a baseline measured in the same run on the same machine
// (bare JetStream consume and ack with batched PostgreSQL inserts), and the LMS
// calls they took, counted inside the guard. It also seeds the store and the LMS
// for "hrsync reconcile --bench" and reads the process's peak resident memory.
//
// It is the measuring only. It takes the running hrsync as a Stack (cmd/hrsync
// implements it over its stack, whose LMS is a TimedLMS), the PostgreSQL
// connection of the baseline, and an io.Writer for what it prints; cmd/hrsync
// parses the flags and builds the stack. A benchmark measures wall time, so the
// clock is the real one.
package bench

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime/pprof"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// StreamPrefix keeps the bench's streams apart from a deployment's.
const StreamPrefix = "HRSYNC_BENCH"

// Feed is the one feed the bench's events come from.
const Feed = "hr"

// Stack is the running hrsync that the bench measures. cmd/hrsync implements it
// over its stack.
type Stack interface {
	// JetStream is the stack's JetStream: the bench publishes on it, and the
	// baseline consumes from Stream with it.
	JetStream() jetstream.JetStream
	// Stream is the name of the stream of Feed.
	Stream() string
	// Run runs the consumer and the converger until ctx is done, then lets both
	// finish what they have in flight.
	Run(ctx context.Context) error
}

// Config says what to run.
type Config struct {
	// Events is the number of hire events, in the baseline and end to end.
	Events int
	// Batch is the messages per consume batch of the baseline (the stack's
	// consumer has its own).
	Batch int
	// Schema is the PostgreSQL schema of the baseline's table; the output names it.
	Schema string
	// LMS names the LMS in the output.
	LMS string
	// CPUProfile, if set, is the file to write a CPU profile of the end-to-end run to.
	CPUProfile string
	// JSON ends the output with one JSON line of the Result.
	JSON bool
	// Mix is MixHires (the default) or MixLifecycle.
	Mix string
	// Rate paces the publishing at this many events a second; 0 publishes as fast
	// as possible.
	Rate float64
	// LMSRate names the LMS's rate limit in the output ("" or "unlimited": none);
	// LMSPerMinute is that limit in calls a minute, 0 if none.
	LMSRate      string
	LMSPerMinute float64
	// Replicas is how many stacks Stack runs (for the output).
	Replicas int
	// ExternalNATS says that the stacks use a NATS server outside this process
	// (--nats-url): the CPU of nats-server processes on this machine is counted.
	ExternalNATS bool
}

// Result is what one run measured.
type Result struct {
	Events             int     `json:"events"`
	Seconds            float64 `json:"seconds"`
	EventsPerS         float64 `json:"events_per_s"`
	BaselineEventsPerS float64 `json:"baseline_events_per_s"`
	RatioToBaseline    float64 `json:"ratio_to_baseline"`
	P50Ms              float64 `json:"p50_ms"`
	P99Ms              float64 `json:"p99_ms"`
	LMS                string  `json:"lms"`
	// Mix is the mix of changes; Changes is how many reached the LMS (Events).
	Mix     string `json:"mix"`
	Changes int    `json:"changes"`
	// LMSCalls counts every call to the LMS that the guard let through (each
	// attempt of a retried call), LMSCallsByOp by connector.LMS method.
	LMSCalls          int            `json:"lms_calls"`
	LMSCallsByOp      map[string]int `json:"lms_calls_by_op"`
	LMSCallsPerChange float64        `json:"lms_calls_per_change"`
	// LMSCallsPerChangeByKind is LMSCallsPerChange for each kind of change of a
	// lifecycle mix (hire, leave, update, rehire_same_id, rehire_new_id).
	LMSCallsPerChangeByKind map[string]float64 `json:"lms_calls_per_change_by_kind,omitempty"`
	// SecondsByKind is the time of each wave of a lifecycle mix, from its first
	// publish to its last change in the LMS (Seconds is their sum).
	SecondsByKind map[string]float64 `json:"seconds_by_kind,omitempty"`
	// LMSRate is the LMS's rate limit, LMSMinutesAtRate the minutes of it that
	// LMSCalls take (LMSCalls / calls a minute); 0 without a limit.
	LMSRate          string  `json:"lms_rate,omitempty"`
	LMSMinutesAtRate float64 `json:"lms_minutes_at_rate"`
	PublishRate      float64 `json:"publish_rate,omitempty"`
	// Replicas is how many hrsync stacks shared the stream and the database.
	Replicas int `json:"replicas"`
	// CPUMicrosPerEvent is the CPU time of the end-to-end run per event, in
	// microseconds: of this process (every replica, and the embedded NATS and
	// in-process LMS when used), and of the PostgreSQL server's processes on
	// this machine (-1 when /proc does not show them).
	CPUMicrosPerEvent         float64 `json:"cpu_us_per_event"`
	PostgresCPUMicrosPerEvent float64 `json:"postgres_cpu_us_per_event"`
	// NATSCPUMicrosPerEvent is that of nats-server processes on this machine
	// (an external server or cluster given by --nats-url); -1 when there is none
	// (the embedded server's time is in CPUMicrosPerEvent).
	NATSCPUMicrosPerEvent float64 `json:"nats_cpu_us_per_event"`
}

// Run measures the baseline on db (in cfg.Schema) and then hrsync end to end on s,
// whose LMS is timed, and prints both to w. The stream of s is purged between the
// two; s must not be running.
func Run(ctx context.Context, cfg Config, s Stack, timed *TimedLMS, db *sql.DB, w io.Writer) (Result, error) {
	js := s.JetStream()
	stream, err := js.Stream(ctx, s.Stream())
	if err != nil {
		return Result{}, err
	}
	fmt.Fprintf(w, "hrsync bench: %d events, PostgreSQL schema %s, LMS: %s\n", cfg.Events, cfg.Schema, cfg.LMS)

	// Baseline: the same events, bare consume+ack with batched inserts.
	base, err := Baseline(ctx, js, s.Stream(), db, cfg.Schema, cfg.Events, cfg.Batch)
	if err != nil {
		return Result{}, fmt.Errorf("baseline: %w", err)
	}
	if err := stream.Purge(ctx); err != nil {
		return Result{}, err
	}
	fmt.Fprintf(w, "  baseline (JetStream consume+ack, batched INSERT): %8.0f events/s\n", base)

	// The real path.
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			return Result{}, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return Result{}, err
		}
		defer pprof.StopCPUProfile()
	}
	mix := cfg.Mix
	if mix == "" {
		mix = MixHires
	}
	before := sampleCPU()
	res, err := pipeline(ctx, s, timed, cfg.Events, mix, cfg.Rate)
	if err != nil {
		return Result{}, err
	}
	after := sampleCPU()
	res.CPUMicrosPerEvent = cpuPerEvent(before.self, after.self, res.Changes)
	res.PostgresCPUMicrosPerEvent = cpuPerEvent(before.postgres, after.postgres, res.Changes)
	res.NATSCPUMicrosPerEvent = -1
	if cfg.ExternalNATS {
		res.NATSCPUMicrosPerEvent = cpuPerEvent(before.nats, after.nats, res.Changes)
	}
	res.Replicas = max(cfg.Replicas, 1)
	res.PublishRate = cfg.Rate
	if cfg.LMSPerMinute > 0 {
		res.LMSRate = cfg.LMSRate
		res.LMSMinutesAtRate = float64(res.LMSCalls) / cfg.LMSPerMinute
	}
	res.BaselineEventsPerS = base
	res.RatioToBaseline = res.EventsPerS / base
	res.LMS = cfg.LMS
	fmt.Fprintf(w, "  hrsync end to end (publish → LMS account):       %8.0f events/s (%.0f%% of baseline)\n", res.EventsPerS, 100*res.RatioToBaseline)
	fmt.Fprintf(w, "  latency publish → LMS: p50 %.1f ms, p99 %.1f ms\n", res.P50Ms, res.P99Ms)
	fmt.Fprintf(w, "  CPU per event: %s in hrsync (%d replica(s) in this process), %s in PostgreSQL",
		micros(res.CPUMicrosPerEvent), res.Replicas, micros(res.PostgresCPUMicrosPerEvent))
	if res.NATSCPUMicrosPerEvent >= 0 {
		fmt.Fprintf(w, ", %s in nats-server", micros(res.NATSCPUMicrosPerEvent))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  LMS calls: %d for %d changes (%s), %.2f a change: %s\n", res.LMSCalls, res.Changes, res.Mix,
		res.LMSCallsPerChange, byOp(res.LMSCallsByOp))
	for _, k := range []string{ChangeHire, ChangeLeave, ChangeUpdate, ChangeRehireSame, ChangeRehireNewID} {
		if v, ok := res.LMSCallsPerChangeByKind[k]; ok {
			fmt.Fprintf(w, "    %-15s %.2f calls a change, wave of %.2fs\n", k, v, res.SecondsByKind[k])
		}
	}
	if res.LMSRate != "" {
		fmt.Fprintf(w, "  LMS time at %s: %.1f minutes\n", res.LMSRate, res.LMSMinutesAtRate)
	}
	if cfg.JSON {
		line, _ := json.Marshal(res)
		fmt.Fprintln(w, string(line))
	}
	return res, nil
}

// micros formats a CPU cost in microseconds, or "unknown".
func micros(v float64) string {
	if v < 0 {
		return "unknown"
	}
	return fmt.Sprintf("%.0f µs", v)
}

// byOp formats calls by op, ops sorted: "CreateAccount 3, FindAccounts 9".
func byOp(calls map[string]int) string {
	ops := slices.Sorted(maps.Keys(calls))
	parts := make([]string, len(ops))
	for i, op := range ops {
		parts[i] = fmt.Sprintf("%s %d", op, calls[op])
	}
	return strings.Join(parts, ", ")
}
