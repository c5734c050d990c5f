package app

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Two deployments (two stores) on one stream with one durable name: the second
// refuses to consume, and its /readyz says why, naming both deployments; a
// replica of the first (the same store) consumes beside it. Once the other
// deployment's consumer is removed, the refused one takes the stream over.
func TestStackRefusesAnotherDeployment(t *testing.T) {
	t.Parallel()
	old := refusedRetry
	refusedRetry = 50 * time.Millisecond
	t.Cleanup(func() { refusedRetry = old })
	url := startNATS(t, func(o *server.Options) { o.JetStream, o.StoreDir = true, t.TempDir() })
	dbA := "sqlite://" + filepath.Join(t.TempDir(), "a.db")
	dbB := "sqlite://" + filepath.Join(t.TempDir(), "b.db")
	stops := map[*Stack]func(){}
	run := func(db string) *Stack {
		s, _, err := openTestStackOn(t, db, FileConfig{}, StackConfig{NATSURL: url})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- s.RunLoops(ctx) }()
		stop := func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("RunLoops = %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Error("RunLoops did not return after cancel")
			}
		}
		stops[s] = sync.OnceFunc(stop)
		t.Cleanup(stops[s])
		return s
	}
	readyz := func(s *Stack) (int, string) {
		rec := httptest.NewRecorder()
		s.AdminHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		b, _ := io.ReadAll(rec.Body)
		return rec.Code, string(b)
	}
	isReady := func(s *Stack) func() (bool, string) {
		return func() (bool, string) { c, b := readyz(s); return c == http.StatusOK, b }
	}

	a := run(dbA)
	waitFor(t, 10*time.Second, "deployment A ready", isReady(a))
	replica := run(dbA)
	if replica.Deployment() != a.Deployment() {
		t.Fatalf("a replica on the same store is deployment %s, want %s", replica.Deployment(), a.Deployment())
	}
	waitFor(t, 10*time.Second, "A's replica ready", isReady(replica))

	b := run(dbB)
	if b.Deployment() == a.Deployment() {
		t.Fatalf("two stores, one deployment id %s", a.Deployment())
	}
	waitFor(t, 10*time.Second, "B refused", func() (bool, string) {
		c, body := readyz(b)
		return c == http.StatusServiceUnavailable && strings.Contains(body, "belongs to deployment "+a.Deployment()) &&
			strings.Contains(body, "store is deployment "+b.Deployment()), body
	})
	// A stays ready: B touched nothing.
	if c, body := readyz(a); c != http.StatusOK {
		t.Fatalf("A after B's refusal: %d %s", c, body)
	}

	// A is gone for good and the operator removes its consumer: B takes it over.
	stops[a]()
	stops[replica]()
	if err := a.JetStream().DeleteConsumer(t.Context(), "HRSYNC_hr", "hrsync"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "B ready once A's consumer is gone", isReady(b))
}
