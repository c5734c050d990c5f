package app

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/hrsync/hrsync/connector"
)

// TracerName is the instrumentation scope of hrsync's own spans.
const TracerName = "github.com/hrsync/hrsync"

// Tracing (docs/tracing.md): one trace follows an event from where it enters
// (the HTTP door, or NATS with the CloudEvents traceparent extension) through
// recording and converging to every LMS call. Propagation is W3C Trace Context
// only, set explicitly: the global propagator (a no-op unless set) is not used.
var propagator = propagation.TraceContext{}

// TracingFromEnv returns a TracerProvider that exports spans over OTLP as the
// standard OTEL_* environment variables say, and the function that flushes and
// stops it; a nil provider means tracing is off: OTEL_SDK_DISABLED=true,
// OTEL_TRACES_EXPORTER=none, or no OTLP endpoint set (neither
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT nor OTEL_EXPORTER_OTLP_ENDPOINT). The
// exporter reads the other OTEL_EXPORTER_OTLP_* variables itself (headers,
// timeout, certificates, compression), the SDK OTEL_TRACES_SAMPLER and
// OTEL_BSP_*, and the resource OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
// Only the http/protobuf protocol is built in; another is refused, naming the
// variable.
func TracingFromEnv(ctx context.Context, getenv func(string) string, version string) (*sdktrace.TracerProvider, error) {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return nil, nil
	}
	switch exp := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); exp {
	case "", "otlp":
	case "none":
		return nil, nil
	default:
		return nil, fmt.Errorf("OTEL_TRACES_EXPORTER=%s: hrsync exports traces over OTLP only (otlp, or none to turn tracing off)", exp)
	}
	if getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" {
		return nil, nil
	}
	for _, v := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if p := strings.TrimSpace(getenv(v)); p != "" {
			if p != "http/protobuf" {
				return nil, fmt.Errorf("%s=%s: hrsync exports OTLP over http/protobuf only (point it at the collector's HTTP port, 4318 by default)", v, p)
			}
			break // the traces-specific variable wins
		}
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	// The defaults first: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override them.
	res, err := resource.New(ctx, resource.WithTelemetrySDK(),
		resource.WithAttributes(attribute.String("service.name", "hrsync"), attribute.String("service.version", version)),
		resource.WithFromEnv())
	if err != nil {
		return nil, fmt.Errorf("tracing: resource (OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME): %w", err)
	}
	return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res)), nil
}

// tracing is what the app traces with: a tracer of TracerName, and the
// transport wrapper that makes a client span of every LMS request.
type tracing struct {
	tp     trace.TracerProvider
	tracer trace.Tracer
	// on says a provider was given; off, nothing is wrapped.
	on bool
}

func newTracing(tp trace.TracerProvider) tracing {
	if tp == nil {
		tp = noop.NewTracerProvider()
		return tracing{tp: tp, tracer: tp.Tracer(TracerName)}
	}
	return tracing{tp: tp, tracer: tp.Tracer(TracerName), on: true}
}

// transport wraps an LMS client's transport with otelhttp: a client span per
// request, and the trace context in its traceparent header. Nil when off.
func (t tracing) transport() func(http.RoundTripper) http.RoundTripper {
	if !t.on {
		return nil
	}
	return func(rt http.RoundTripper) http.RoundTripper {
		return otelhttp.NewTransport(rt, otelhttp.WithTracerProvider(t.tp), otelhttp.WithPropagators(propagator),
			otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return "lms " + r.Method }))
	}
}

// handler wraps the admin handler with otelhttp: a server span per request,
// continuing the caller's trace from its traceparent header. h as it is when off.
func (t tracing) handler(h http.Handler) http.Handler {
	if !t.on {
		return h
	}
	return otelhttp.NewHandler(h, "hrsync admin", otelhttp.WithTracerProvider(t.tp), otelhttp.WithPropagators(propagator),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " " + r.URL.Path }))
}

// workerTraces remembers, per worker, the span that recorded its latest fact,
// so that converging it continues that event's trace. It is bounded: past
// maxWorkerTraces workers the oldest entries are forgotten (their converge
// starts a trace of its own, with the worker's attributes).
type workerTraces struct {
	mu    sync.Mutex
	m     map[connector.WorkerKey]trace.SpanContext
	order []connector.WorkerKey
}

const maxWorkerTraces = 100_000

func (w *workerTraces) put(k connector.WorkerKey, sc trace.SpanContext) {
	if !sc.IsValid() {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		w.m = map[connector.WorkerKey]trace.SpanContext{}
	}
	if _, ok := w.m[k]; !ok {
		w.order = append(w.order, k)
	}
	w.m[k] = sc
	for len(w.m) > maxWorkerTraces && len(w.order) > 0 {
		delete(w.m, w.order[0])
		w.order = w.order[1:]
	}
	// Taken keys stay in order until their turn: drop them once they are most of it.
	if len(w.order) > 2*len(w.m)+1024 {
		kept := w.order[:0]
		seen := make(map[connector.WorkerKey]bool, len(w.m))
		for _, o := range w.order {
			if _, ok := w.m[o]; ok && !seen[o] {
				seen[o] = true
				kept = append(kept, o)
			}
		}
		w.order = kept
	}
}

// take returns and forgets the worker's span context.
func (w *workerTraces) take(k connector.WorkerKey) (trace.SpanContext, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	sc, ok := w.m[k]
	if ok {
		delete(w.m, k) // its entry in order is skipped when its turn comes
	}
	return sc, ok
}
