package app

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/events"
)

// scrape returns the value of each series of /metrics whose line starts with one
// of prefixes (name and labels as Prometheus writes them).
func scrape(t *testing.T, s *Stack) string {
	t.Helper()
	rec := httptest.NewRecorder()
	s.AdminHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

// metricValue returns the value of the series line that starts with series.
func metricValue(text, series string) (float64, bool) {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(text)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	return v, err == nil
}

// The series an operator alerts on are exported, and move: build info, the due
// backlog and its age (events recorded, converger not running), the consumer's
// pending messages (consumer stopped, events published), the erasure key, and
// the last successful reconciliation.
func TestOpsMetrics(t *testing.T) {
	t.Parallel()
	url := startNATS(t, func(o *server.Options) { o.JetStream, o.StoreDir = true, t.TempDir() })
	s, _, err := openTestStack(t, FileConfig{}, StackConfig{NATSURL: url})
	if err != nil {
		t.Fatal(err)
	}
	s.App().Metrics().SetBuildInfo("v9.9.9-test")
	text := scrape(t, s)
	for _, want := range []string{`hrsync_build_info{goversion="go`, `version="v9.9.9-test"} 1`, "hrsync_holds_open 0",
		"hrsync_workers_due 0", "hrsync_workers_oldest_due_age_seconds 0", "hrsync_erasure_key_usable 1", "hrsync_store_up 1",
		"hrsync_reconcile_last_success_timestamp_seconds 0"} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(text, "hrsync_jetstream_consumer_pending{") {
		t.Error("consumer pending exported before the consumer exists")
	}

	publish := func(ids ...string) {
		t.Helper()
		for _, id := range ids {
			e := events.Event{Feed: "hr", Kind: connector.KindHired, ID: id, Source: "/feeds/hr", Time: time.Now().UTC(),
				Data: events.Data{WorkerID: "w-" + id, Email: id + "@example.com", Effective: "2026-01-01"}}
			if _, err := events.Publish(t.Context(), s.JetStream(), e, events.Structured); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Consume only (no converger): the facts are recorded and their workers stay due.
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Consume(ctx) }()
	publish("e1", "e2", "e3")
	waitFor(t, 10*time.Second, "3 workers due", func() (bool, string) {
		v, _ := metricValue(scrape(t, s), "hrsync_workers_due")
		return v == 3, "hrsync_workers_due " + strconv.FormatFloat(v, 'f', -1, 64)
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	publish("e4", "e5")
	text = scrape(t, s)
	if v, ok := metricValue(text, `hrsync_jetstream_consumer_pending{feed="hr"}`); !ok || v != 2 {
		t.Errorf("consumer pending = %v (%v); want 2 events published while the consumer was stopped", v, ok)
	}
	if v, ok := metricValue(text, "hrsync_workers_oldest_due_age_seconds"); !ok || v < 0 {
		t.Errorf("oldest due age = %v (%v)", v, ok)
	}

	stop, err := s.ScheduleReconcile(t.Context(), 50*time.Millisecond, false, "")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	waitFor(t, 10*time.Second, "a successful reconciliation", func() (bool, string) {
		v, _ := metricValue(scrape(t, s), "hrsync_reconcile_last_success_timestamp_seconds")
		return v > 0, "still 0"
	})
}
