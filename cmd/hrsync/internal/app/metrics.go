package app

import (
	"strings"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/guard"
	"github.com/hrsync/hrsync/events"
)

// metrics are the daemon's Prometheus series. Each is fed by a hook of the events
// consumer or the converger, so neither package imports Prometheus.
type Metrics struct {
	reg           *prometheus.Registry
	consumed      *prometheus.CounterVec
	recorded      prometheus.Counter
	deadLettered  *prometheus.CounterVec
	storeErrors   prometheus.Counter
	gapEvents     *prometheus.CounterVec
	actions       *prometheus.CounterVec
	convergeTime  prometheus.Histogram
	convergeFails prometheus.Counter
	reviews       prometheus.Counter
	// The LMS guard's series: calls by outcome, quarantine state, rate-limit waits.
	lmsCalls       *prometheus.CounterVec
	lmsQuarantined prometheus.Gauge
	lmsRateWait    prometheus.Counter
	// mirrorPlans counts first plans made from the account mirror, by whether
	// they went out without a read (served) or the account was read (read).
	mirrorPlans *prometheus.CounterVec
	// buildInfo is hrsync_build_info; reconciled the time of the last
	// scheduled reconciliation pass that ended without error.
	buildInfo  *prometheus.GaugeVec
	reconciled prometheus.Gauge
}

func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		consumed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hrsync_events_consumed_total", Help: "Messages consumed from JetStream, by feed.",
		}, []string{"feed"}),
		recorded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hrsync_facts_recorded_total", Help: "New facts recorded (duplicates not counted).",
		}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hrsync_dead_letters_total", Help: "Messages dead-lettered as bad input, by feed.",
		}, []string{"feed"}),
		gapEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hrsync_stream_gap_events_total",
			Help: "Events removed from a feed's stream (max age, purge) before hrsync recorded them, by feed. Any increase means lost facts: alert on it.",
		}, []string{"feed"}),
		storeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hrsync_store_errors_total", Help: "Batches that could not be recorded and were redelivered.",
		}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hrsync_lms_actions_total", Help: "LMS actions, by kind and outcome.",
		}, []string{"action", "outcome"}),
		convergeTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hrsync_converge_duration_seconds", Help: "Time to converge one worker, LMS calls included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		convergeFails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hrsync_converge_failures_total", Help: "Converge attempts that failed and will be retried.",
		}),
		reviews: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hrsync_review_items_total", Help: "Review items raised: hrsync refused to guess.",
		}),
		lmsCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hrsync_lms_calls_total", Help: "LMS call attempts, by operation (create_account, find_accounts, set_active, ...) and outcome: ok, an error kind (unavailable, rate_limited, auth, not_found, ...), quarantined (failed fast) or canceled.",
		}, []string{"op", "outcome"}),
		lmsQuarantined: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hrsync_lms_quarantined", Help: "1 while the LMS is quarantined (calls fail fast, converging pauses), else 0.",
		}),
		lmsRateWait: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hrsync_lms_rate_wait_seconds_total", Help: "Time LMS calls spent waiting for the client-side rate limit (--lms-rate).",
		}),
		mirrorPlans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hrsync_lms_mirror_plans_total",
			Help: "First plans of a converge made from the account mirror's copy (lms.mirror): result served (carried out with no read before the write) or read (the copy could have been stale for that plan, so the account was read).",
		}, []string{"result"}),
		buildInfo: newBuildInfo(),
		reconciled: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hrsync_reconcile_last_success_timestamp_seconds",
			Help: "Unix time at which this process's last scheduled reconciliation pass (--reconcile-every) ended without error; 0: none yet.",
		}),
	}
	m.SetBuildInfo("")
	m.reg.MustRegister(m.buildInfo, m.reconciled, m.consumed, m.recorded, m.deadLettered, m.storeErrors, m.gapEvents, m.actions,
		m.convergeTime, m.convergeFails, m.reviews, m.lmsCalls, m.lmsQuarantined, m.lmsRateWait, m.mirrorPlans,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// eventHooks feeds the consumer's counters.
func (m *Metrics) eventHooks(h events.Hooks) events.Hooks {
	h.Consumed = func(feed string) { m.consumed.WithLabelValues(feed).Inc() }
	h.Recorded = func(n int) { m.recorded.Add(float64(n)) }
	h.DeadLettered = func(feed, _ string) { m.deadLettered.WithLabelValues(feed).Inc() }
	h.StoreError = func(error) { m.storeErrors.Inc() }
	next := h.Gap
	h.Gap = func(feed string, first, last uint64, n int) {
		m.gapEvents.WithLabelValues(feed).Add(float64(n))
		if next != nil {
			next(feed, first, last, n)
		}
	}
	return h
}

// convergerHooks feeds the converger's counters, chaining to next where set.
func (m *Metrics) convergerHooks(next connector.ConvergerHooks) connector.ConvergerHooks {
	return connector.ConvergerHooks{
		Trace: next.Trace,
		Action: func(k connector.ActionKind, o connector.Outcome) {
			m.actions.WithLabelValues(string(k), string(o)).Inc()
			if next.Action != nil {
				next.Action(k, o)
			}
		},
		Converged: func(w connector.WorkerKey, d time.Duration, err error) {
			m.convergeTime.Observe(d.Seconds())
			if err != nil {
				m.convergeFails.Inc()
			}
			if next.Converged != nil {
				next.Converged(w, d, err)
			}
		},
		Review: func(r connector.Review) {
			m.reviews.Inc()
			if next.Review != nil {
				next.Review(r)
			}
		},
		Mirror: func(served bool) {
			result := "read"
			if served {
				result = "served"
			}
			m.mirrorPlans.WithLabelValues(result).Inc()
			if next.Mirror != nil {
				next.Mirror(served)
			}
		},
	}
}

// guardHooks feeds the LMS guard's series.
func (m *Metrics) guardHooks() guard.Hooks {
	return guard.Hooks{
		Call: func(op, outcome string) { m.lmsCalls.WithLabelValues(snakeCase(op), outcome).Inc() },
		Quarantine: func(quarantined bool) {
			if quarantined {
				m.lmsQuarantined.Set(1)
			} else {
				m.lmsQuarantined.Set(0)
			}
		},
		RateWait: func(d time.Duration) { m.lmsRateWait.Add(d.Seconds()) },
	}
}

// snakeCase turns an LMS operation's name (CreateAccount) into a metric label
// value (create_account).
func snakeCase(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}
