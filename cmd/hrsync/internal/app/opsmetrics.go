package app

import (
	"context"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The series an operator alerts on (docs/metrics.md, deploy/prometheus/alerts.yaml)
// that are read when Prometheus scrapes, not counted as things happen: the store's
// holds and due backlog, the JetStream consumers' pending messages, and whether
// the erasure key is usable. Reading them at scrape time needs no loop, and a
// scrape shows the state now, whichever replica answers.
var (
	opsHoldsOpen = prometheus.NewDesc("hrsync_holds_open",
		"Safeguard holds waiting for a person's decision (hrsync holds). Nothing of a held burst runs until then.", nil, nil)
	opsDue = prometheus.NewDesc("hrsync_workers_due",
		"Workers due for converging now (the backlog), leased or not.", nil, nil)
	opsOldestDue = prometheus.NewDesc("hrsync_workers_oldest_due_age_seconds",
		"How long the longest-waiting due worker has been due (0 when none is due).", nil, nil)
	opsPending = prometheus.NewDesc("hrsync_jetstream_consumer_pending",
		"Messages in the feed's stream not yet delivered to hrsync's durable consumer.", []string{"feed"}, nil)
	opsAckPending = prometheus.NewDesc("hrsync_jetstream_consumer_ack_pending",
		"Messages delivered to hrsync's durable consumer and not yet acknowledged.", []string{"feed"}, nil)
	opsErasureKey = prometheus.NewDesc("hrsync_erasure_key_usable",
		"1 when this process holds the key of every erasure tombstone (it can record facts), 0 when not (docs/erasure.md).", nil, nil)
	opsStoreUp = prometheus.NewDesc("hrsync_store_up",
		"1 when this scrape could read the store's gauges, 0 when not (then hrsync_holds_open and the due series are absent).", nil, nil)
)

// opsTimeout bounds what one scrape spends on the store and on JetStream.
const opsTimeout = 3 * time.Second

// opsCollector reads the stack's scrape-time series.
type opsCollector struct{ s *Stack }

var opsDescs = []*prometheus.Desc{opsHoldsOpen, opsDue, opsOldestDue, opsPending, opsAckPending, opsErasureKey, opsStoreUp}

func (c opsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range opsDescs {
		ch <- d
	}
}

func (c opsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), opsTimeout)
	defer cancel()
	s := c.s
	now := s.now()
	if g, err := s.db.Gauges(ctx, now); err != nil {
		s.log.Warn("metrics: reading the store's gauges", "err", err)
		ch <- prometheus.MustNewConstMetric(opsStoreUp, prometheus.GaugeValue, 0)
	} else {
		ch <- prometheus.MustNewConstMetric(opsStoreUp, prometheus.GaugeValue, 1)
		ch <- prometheus.MustNewConstMetric(opsHoldsOpen, prometheus.GaugeValue, float64(g.OpenHolds))
		ch <- prometheus.MustNewConstMetric(opsDue, prometheus.GaugeValue, float64(g.Due))
		age := 0.0
		if !g.OldestDue.IsZero() {
			age = max(0, now.Sub(g.OldestDue).Seconds())
		}
		ch <- prometheus.MustNewConstMetric(opsOldestDue, prometheus.GaugeValue, age)
	}
	usable := 1.0
	if s.db.ErasureKeyProblem(ctx) != nil {
		usable = 0
	}
	ch <- prometheus.MustNewConstMetric(opsErasureKey, prometheus.GaugeValue, usable)
	for _, f := range s.app.set.Feeds.Names() {
		cons, err := s.js.Consumer(ctx, s.app.set.Stream.Name(f), s.durable())
		if err != nil {
			continue // not created yet, or NATS is away: absent, and /readyz says why
		}
		info, err := cons.Info(ctx)
		if err != nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(opsPending, prometheus.GaugeValue, float64(info.NumPending), f)
		ch <- prometheus.MustNewConstMetric(opsAckPending, prometheus.GaugeValue, float64(info.NumAckPending), f)
	}
}

// buildInfo is hrsync_build_info's labels: version as versionString gives it
// (SetBuildInfo), the Go version and the VCS revision.
func newBuildInfo() *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hrsync_build_info",
		Help: "Always 1; its labels say which hrsync runs: version, Go version, VCS revision."},
		[]string{"version", "goversion", "revision"})
}

// SetBuildInfo sets hrsync_build_info's version label (hrsync version's answer).
func (m *Metrics) SetBuildInfo(version string) {
	rev := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				rev = s.Value
			}
		}
		if version == "" {
			version = bi.Main.Version
		}
	}
	if version == "" {
		version = "unknown"
	}
	m.buildInfo.Reset()
	m.buildInfo.WithLabelValues(version, runtime.Version(), rev).Set(1)
}
