package app

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/door"
	"github.com/hrsync/hrsync/cmd/hrsync/internal/roster"
	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/events"
)

// hireEvent is a CloudEvent of a hire of worker in feed hr.
func hireEvent(worker, id string) event.Event {
	e := event.New(event.CloudEventsVersionV1)
	e.SetID(id)
	e.SetSource("/feeds/hr")
	e.SetType(events.Type(connector.KindHired))
	e.SetSubject(worker)
	e.SetTime(time.Now().UTC())
	_ = e.SetData(events.ContentTypeJSON, map[string]string{"worker_id": worker, "email": worker + "@example.com", "effective": "2026-01-01"})
	return e
}

// One event, from the HTTP door to the LMS call, is one trace: the admin
// port's server span, the door's span, the consumer's recording, the
// converge, and the SCIM requests to the LMS (otelhttp), each the child of
// the one before. An event that arrives on NATS with a traceparent extension
// continues the producer's trace the same way.
func TestTraceFromDoorToLMS(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })

	lms := httptest.NewServer(sandbox.New().Handler("sandbox-token"))
	t.Cleanup(lms.Close)
	url := startNATS(t, func(o *server.Options) { o.JetStream, o.StoreDir = true, t.TempDir() })
	feeds, err := connector.NewFeeds(connector.DefaultFeed("hr", connector.FeedHR))
	if err != nil {
		t.Fatal(err)
	}
	set, err := SettingsFor("sqlite://"+filepath.Join(t.TempDir(), "hrsync.db"), feeds, FileConfig{})
	if err != nil {
		t.Fatal(err)
	}
	set.LMS = LMSSettings{Type: "scim", URL: lms.URL + sandbox.BasePath, Token: "sandbox-token"}
	const token = "hr-door-token"
	sum := sha256.Sum256([]byte(token))
	set.Rosters = map[string]roster.Config{"hr": {UploadTokenSHA256: hex.EncodeToString(sum[:])}}
	s, err := NewStack(t.Context(), set, Options{Migrate: true, TracerProvider: tp, Log: slog.New(slog.NewTextHandler(t.Output(), nil))},
		StackConfig{NATSURL: url, ManageStream: true, Durable: "hrsync"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	s.Door = s.NewDoor("", door.Limits{})
	admin := httptest.NewServer(s.AdminHandler())
	t.Cleanup(admin.Close)
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(t.Context())
	go func() { done <- s.RunLoops(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("RunLoops did not return after cancel")
		}
	})
	waitFor(t, 10*time.Second, "ready", func() (bool, string) {
		if err := s.ready(ctx); err != nil {
			return false, err.Error()
		}
		return true, ""
	})

	// Through the HTTP door, in structured mode, without any trace context.
	body, _ := json.Marshal(hireEvent("w-http", "evt-http"))
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, admin.URL+"/v1/events", bytes.NewReader(body))
	req.Header.Set("Content-Type", event.ApplicationCloudEventsJSON)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/events: %s", resp.Status)
	}
	chain := waitChain(t, exp, "evt-http", []string{"POST /v1/events", "hrsync.http_door", "hrsync.record", "hrsync.converge", "lms "})
	if chain[0].Parent.IsValid() {
		t.Errorf("the server span has parent %v; the request carried no trace context", chain[0].Parent)
	}

	// On NATS, with the CloudEvents distributed-tracing extension: the
	// producer's trace goes on.
	producer := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	e := hireEvent("w-nats", "evt-nats")
	e.SetExtension("traceparent", producer)
	data, _ := json.Marshal(e)
	msg := nats.NewMsg(events.Subject("hr", connector.KindHired))
	msg.Data = data
	msg.Header.Set("content-type", events.ContentTypeStructured)
	if _, err := s.JetStream().PublishMsg(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	chain = waitChain(t, exp, "evt-nats", []string{"hrsync.record", "hrsync.converge", "lms "})
	if got := chain[0].Parent; got.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || got.SpanID().String() != "00f067aa0ba902b7" {
		t.Errorf("the recording's parent is %s/%s; want the event's traceparent %s", got.TraceID(), got.SpanID(), producer)
	}
}

// waitChain waits for the spans of the event id, in the order of names (a name
// ending in a space is a prefix), each the parent of the next, all in one trace,
// and returns them. The last may be any of several (the LMS calls): all of
// them must be children of the one before.
func waitChain(t *testing.T, exp *tracetest.InMemoryExporter, id string, names []string) []tracetest.SpanStub {
	t.Helper()
	var chain []tracetest.SpanStub
	waitFor(t, 15*time.Second, "the trace of "+id, func() (bool, string) {
		spans := exp.GetSpans()
		byID := map[trace.SpanID]tracetest.SpanStub{}
		for _, s := range spans {
			byID[s.SpanContext.SpanID()] = s
		}
		// Start from an LMS call and walk up its parents.
		for _, s := range spans {
			if !strings.HasPrefix(s.Name, names[len(names)-1]) {
				continue
			}
			up := []tracetest.SpanStub{s}
			for cur := s; cur.Parent.IsValid(); {
				p, ok := byID[cur.Parent.SpanID()]
				if !ok {
					break
				}
				up = append([]tracetest.SpanStub{p}, up...)
				cur = p
			}
			if len(up) < len(names) {
				continue
			}
			up = up[len(up)-len(names):]
			ok, hasID := true, false
			for i, n := range names {
				ok = ok && (up[i].Name == n || strings.HasSuffix(n, " ") && strings.HasPrefix(up[i].Name, n))
				ok = ok && up[i].SpanContext.TraceID() == s.SpanContext.TraceID()
				for _, a := range up[i].Attributes {
					if string(a.Key) == "cloudevents.event_id" && a.Value.AsString() == id {
						hasID = true
					}
				}
			}
			if ok && hasID {
				chain = up
				return true, ""
			}
		}
		var got []string
		for _, s := range spans {
			got = append(got, fmt.Sprintf("%s(%s<-%s)", s.Name, s.SpanContext.SpanID(), s.Parent.SpanID()))
		}
		return false, "spans: " + strings.Join(got, " ")
	})
	return chain
}

// Tracing is off unless the standard variables name an OTLP endpoint, and a
// protocol or exporter hrsync does not build in is refused, naming the variable.
func TestTracingFromEnv(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		on   bool
		err  string
	}{
		{"Unset", nil, false, ""},
		{"Endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, true, ""},
		{"TracesEndpoint", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, true, ""},
		{"Disabled", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"}, false, ""},
		{"ExporterNone", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER": "none"}, false, ""},
		{"ExporterZipkin", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER": "zipkin"}, false, "OTEL_TRACES_EXPORTER=zipkin"},
		{"GRPC", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, false, "OTEL_EXPORTER_OTLP_PROTOCOL=grpc"},
		{"TracesProtocolWins", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
			"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp, err := TracingFromEnv(t.Context(), func(k string) string { return tc.env[k] }, "test")
			if tp != nil {
				_ = tp.Shutdown(t.Context())
			}
			if (tp != nil) != tc.on || (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
				t.Errorf("provider %v, err %v; want on=%v and an error naming %q", tp != nil, err, tc.on, tc.err)
			}
		})
	}
}
