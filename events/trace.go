package events

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/hrsync/hrsync/connector"
)

// TraceContext returns ctx carrying the remote span context of tr (the event's
// traceparent and tracestate, W3C Trace Context), or ctx as it is when tr holds
// none or an invalid one.
func TraceContext(ctx context.Context, tr EventTrace) context.Context {
	if tr.Parent == "" {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": tr.Parent, "tracestate": tr.State})
}

// EventAttributes are the span attributes of an event (OpenTelemetry's
// semantic conventions for CloudEvents), with hrsync's feed and worker.
func EventAttributes(f connector.Fact, typ string) []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.String("cloudevents.event_id", f.ID), attribute.String("cloudevents.event_source", f.Source),
		attribute.String("cloudevents.event_type", typ), attribute.String("cloudevents.event_subject", f.WorkerID),
		attribute.String("hrsync.feed", f.Feed), attribute.String("hrsync.worker_id", f.WorkerID),
	}
}

// recordSpan starts the span of recording message m: a child of the event's
// trace context when it carries one, else a root. It is a no-op without a tracer.
func (c *consumer) recordSpan(m jetstream.Msg, f connector.Fact, tr EventTrace, decodeErr error) trace.Span {
	if c.cfg.Tracer == nil {
		return noop.Span{}
	}
	attrs := []attribute.KeyValue{attribute.String("messaging.system", "nats"),
		attribute.String("messaging.destination.name", m.Subject()), attribute.String("messaging.operation.type", "process")}
	if md, err := m.Metadata(); err == nil {
		attrs = append(attrs, attribute.Int64("hrsync.stream_seq", int64(md.Sequence.Stream)))
	}
	if decodeErr == nil {
		attrs = append(attrs, EventAttributes(f, Type(f.Kind))...)
	}
	_, span := c.cfg.Tracer.Start(TraceContext(context.Background(), tr), "hrsync.record",
		trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...))
	return span
}

// endSpans ends spans, as failed with err when it is not nil.
func endSpans(spans []trace.Span, err error) {
	for _, s := range spans {
		if err != nil {
			s.RecordError(err)
			s.SetStatus(codes.Error, err.Error())
		}
		s.End()
	}
}
