// Package door is the HTTP door for HR systems: POST /v1/events takes
// CloudEvents over HTTP (the CloudEvents HTTP binding, in structured, binary
// and batch mode), checks them exactly as the consumer will, and publishes
// them to their feed's JetStream stream. docs/http-door.md is the user's view.
package door

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/dustin/go-humanize"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/roster"
	"github.com/hrsync/hrsync/events"
)

// Defaults of Limits.
const (
	DefaultMaxBody  = 4 << 20
	DefaultMaxBatch = 1000
	// DefaultPublishTimeout bounds the wait for JetStream's acknowledgements.
	DefaultPublishTimeout = 30 * time.Second
)

// Limits bound one request. Zero fields take the defaults.
type Limits struct {
	// MaxBody is the largest request body in bytes (413 beyond it); each event
	// is also held to the Decoder's MaxDataBytes, as on NATS.
	MaxBody int64
	// MaxBatch is the most events one batch may hold (413 beyond it).
	MaxBatch int
	// PublishTimeout bounds the wait for JetStream to store the events.
	PublishTimeout time.Duration
}

func (l Limits) orDefaults() Limits {
	if l.MaxBody <= 0 {
		l.MaxBody = DefaultMaxBody
	}
	if l.MaxBatch <= 0 {
		l.MaxBatch = DefaultMaxBatch
	}
	if l.PublishTimeout <= 0 {
		l.PublishTimeout = DefaultPublishTimeout
	}
	return l
}

// Door serves POST /v1/events.
//
// A batch is checked whole before anything is published: one bad event, or one
// event of a feed the token may not publish to, refuses the batch, and nothing
// of it is published. Publishing is then per event (JetStream stores messages
// one by one): if NATS fails midway the answer is 503 and says which events were
// stored; resending the whole batch is safe, since each event's Nats-Msg-Id makes
// JetStream drop what it already has (within the stream's duplicate window) and
// the store records a fact once however often it comes.
type Door struct {
	JS      jetstream.JetStream
	Decoder *events.Decoder
	// Tokens say who may publish: a feed's token that feed's events, the admin
	// token any feed's.
	Tokens roster.Tokens
	Limits Limits
	Log    *slog.Logger
	// Tracer, if set, makes a span of each event's publishing (docs/tracing.md):
	// a child of the event's traceparent extension, or of the request's trace
	// when the event carries none, in which case the event is given the span's
	// traceparent, so that the consumer continues the trace.
	Tracer trace.Tracer
}

// Item is the answer about one event.
type Item struct {
	Index     int    `json:"index"`
	ID        string `json:"id,omitempty"`
	Feed      string `json:"feed,omitempty"`
	Stream    string `json:"stream,omitempty"`
	Seq       uint64 `json:"stream_seq,omitempty"`
	Duplicate bool   `json:"duplicate,omitempty"`
	Field     string `json:"field,omitempty"`
	Error     string `json:"error,omitempty"`
}

// Answer is the JSON body of every answer.
type Answer struct {
	Error  string `json:"error,omitempty"`
	Field  string `json:"field,omitempty"`
	Limit  int64  `json:"limit,omitempty"`
	Events []Item `json:"events,omitempty"`
}

// problem is a refusal: its status and answer.
type problem struct {
	status int
	answer Answer
}

func (d *Door) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	lim := d.Limits.orDefaults()
	who, ok := d.Tokens.Caller(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="hrsync"`)
		refuse(w, http.StatusUnauthorized, Answer{Error: "a valid bearer token is required (a feed's token, or the admin token)"})
		return
	}
	tooBig := Answer{Error: fmt.Sprintf("the body is larger than the limit of %s (%d bytes)", humanize.IBytes(uint64(lim.MaxBody)), lim.MaxBody),
		Limit: lim.MaxBody}
	if r.ContentLength > lim.MaxBody {
		refuse(w, http.StatusRequestEntityTooLarge, tooBig)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, lim.MaxBody))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		refuse(w, http.StatusRequestEntityTooLarge, tooBig)
		return
	case err != nil:
		refuse(w, http.StatusBadRequest, Answer{Error: "reading the body: " + err.Error()})
		return
	}
	ces, batch, p := d.decode(r, body, lim)
	if p != nil {
		refuse(w, p.status, p.answer)
		return
	}
	spans := d.startSpans(r.Context(), ces)
	msgs, p := d.check(who, ces, batch)
	if p != nil {
		endSpans(spans, func(int) string { return p.answer.Error })
		if p.status == http.StatusForbidden {
			d.Log.Warn("events refused: the token may not publish to this feed", "caller", who)
		}
		refuse(w, p.status, p.answer)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), lim.PublishTimeout)
	defer cancel()
	items, failed := d.publish(ctx, ces, msgs)
	endSpans(spans, func(i int) string { return items[i].Error })
	if failed > 0 {
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, Answer{Error: fmt.Sprintf("JetStream did not store %d of %d events: "+
			"resend them (or the whole request: what was stored is dropped as a duplicate)", failed, len(items)), Events: items})
		return
	}
	writeJSON(w, http.StatusAccepted, Answer{Events: items})
}

// decode reads the request's events with the CloudEvents SDK's HTTP binding;
// batch says whether it was a batch.
func (d *Door) decode(r *http.Request, body []byte, lim Limits) (ces []event.Event, batch bool, p *problem) {
	ces, p = d.decodeMode(r, body, lim)
	return ces, cehttp.NewMessage(r.Header, nil).ReadEncoding() == binding.EncodingBatch, p
}

func (d *Door) decodeMode(r *http.Request, body []byte, lim Limits) ([]event.Event, *problem) {
	msg := cehttp.NewMessage(r.Header, io.NopCloser(bytes.NewReader(body)))
	switch msg.ReadEncoding() {
	case binding.EncodingStructured, binding.EncodingBinary:
		ce, err := binding.ToEvent(r.Context(), msg)
		if err != nil {
			return nil, invalidItem(-1, "", events.SDKError(err))
		}
		return []event.Event{*ce}, nil
	case binding.EncodingBatch:
		var raw []json.RawMessage
		if err := json.Unmarshal(body, &raw); err != nil {
			return nil, &problem{http.StatusBadRequest, Answer{Field: "body", Error: "a batch is a JSON array of structured CloudEvents: " + err.Error()}}
		}
		switch {
		case len(raw) == 0:
			return nil, &problem{http.StatusBadRequest, Answer{Field: "body", Error: "the batch holds no event"}}
		case len(raw) > lim.MaxBatch:
			return nil, &problem{http.StatusRequestEntityTooLarge, Answer{Error: fmt.Sprintf("the batch holds %d events, more than the limit of %d",
				len(raw), lim.MaxBatch), Limit: int64(lim.MaxBatch)}}
		}
		ces, err := binding.ToEvents(r.Context(), msg, bytes.NewReader(body))
		if err == nil {
			return ces, nil
		}
		// Find the event the SDK refused, to name it.
		for i, item := range raw {
			one := cehttp.NewMessage(http.Header{"Content-Type": {event.ApplicationCloudEventsJSON}}, io.NopCloser(bytes.NewReader(item)))
			if _, err := binding.ToEvent(r.Context(), one); err != nil {
				return nil, invalidItem(i, "", events.SDKError(err))
			}
		}
		return nil, invalidItem(-1, "", events.SDKError(err))
	}
	return nil, &problem{http.StatusUnsupportedMediaType, Answer{Field: "content-type", Error: fmt.Sprintf("%q is not a CloudEvents mode: send "+
		"one event in structured mode (Content-Type: %s), or in binary mode (ce-specversion, ce-id, ... headers, Content-Type: %s), "+
		"or a batch (Content-Type: %s)", r.Header.Get("Content-Type"), event.ApplicationCloudEventsJSON, events.ContentTypeJSON,
		event.ApplicationCloudEventsBatchJSON)}}
}

// check makes sure the caller may publish every event, then checks each as the
// consumer will (events.Decoder.Received) and returns the messages to publish.
// Every event is checked, so that a refusal lists all of a batch's problems.
func (d *Door) check(who string, ces []event.Event, batch bool) ([]*nats.Msg, *problem) {
	index := func(i int) int {
		if batch {
			return i
		}
		return -1
	}
	if who != "admin" {
		mine := strings.TrimPrefix(who, "feed:")
		var items []Item
		for i := range ces {
			if feed, ok := d.Decoder.FeedOfSource(ces[i].Source()); ok && feed != mine {
				items = append(items, Item{Index: i, ID: ces[i].ID(), Feed: feed, Field: "source",
					Error: fmt.Sprintf("source %q is feed %s's: the token of feed %s may publish only feed %s's events", ces[i].Source(), feed, mine, mine)})
			}
		}
		if len(items) > 0 {
			a := Answer{Error: items[0].Error, Field: "source"}
			if batch {
				a.Error = fmt.Sprintf("%d of the batch's %d events are another feed's (the first, at index %d: %s); nothing was published",
					len(items), len(ces), items[0].Index, items[0].Error)
				a.Events = items
			}
			return nil, &problem{http.StatusForbidden, a}
		}
	}
	msgs := make([]*nats.Msg, len(ces))
	var bad []Item
	for i := range ces {
		m, _, err := d.Decoder.Received(&ces[i])
		if err != nil {
			if p := invalidItem(index(i), ces[i].ID(), err); batch {
				bad = append(bad, p.answer.Events...)
			} else {
				return nil, p
			}
			continue
		}
		msgs[i] = m
	}
	if len(bad) > 0 {
		return nil, &problem{http.StatusBadRequest, Answer{Error: fmt.Sprintf("%d of the batch's %d events are invalid (the first, at index %d: %s); nothing was published",
			len(bad), len(ces), bad[0].Index, bad[0].Error), Field: bad[0].Field, Events: bad}}
	}
	return msgs, nil
}

// publish publishes msgs (ces's) and waits for JetStream to store each.
func (d *Door) publish(ctx context.Context, ces []event.Event, msgs []*nats.Msg) ([]Item, int) {
	items := make([]Item, len(msgs))
	futures := make([]jetstream.PubAckFuture, len(msgs))
	failed := 0
	for i, m := range msgs {
		items[i] = Item{Index: i, ID: ces[i].ID(), Feed: feedOf(m.Subject)}
		f, err := d.JS.PublishMsgAsync(m)
		if err != nil {
			items[i].Error, failed = "publish: "+err.Error(), failed+1
			continue
		}
		futures[i] = f
	}
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case ack := <-f.Ok():
			items[i].Stream, items[i].Seq, items[i].Duplicate = ack.Stream, ack.Sequence, ack.Duplicate
		case err := <-f.Err():
			items[i].Error, failed = "publish: "+err.Error(), failed+1
		case <-ctx.Done():
			items[i].Error, failed = "publish: no acknowledgement from JetStream: "+ctx.Err().Error(), failed+1
		}
	}
	if failed > 0 {
		d.Log.Error("http door: JetStream did not store every event", "events", len(msgs), "failed", failed)
	}
	return items, failed
}

// startSpans starts the span of publishing each event (nil without a Tracer),
// and gives an event that carries no trace context the span's.
func (d *Door) startSpans(ctx context.Context, ces []event.Event) []trace.Span {
	if d.Tracer == nil {
		return nil
	}
	spans := make([]trace.Span, len(ces))
	for i := range ces {
		ce := &ces[i]
		tr := events.EventTrace{}
		tr.Parent, _ = ce.Extensions()["traceparent"].(string)
		tr.State, _ = ce.Extensions()["tracestate"].(string)
		parent := ctx
		if tr.Parent != "" {
			parent = events.TraceContext(ctx, tr)
		}
		sctx, span := d.Tracer.Start(parent, "hrsync.http_door", trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(attribute.String("cloudevents.event_id", ce.ID()), attribute.String("cloudevents.event_source", ce.Source()),
				attribute.String("cloudevents.event_type", ce.Type()), attribute.String("cloudevents.event_subject", ce.Subject())))
		if tr.Parent == "" {
			carrier := propagation.MapCarrier{}
			propagation.TraceContext{}.Inject(sctx, carrier)
			for k, v := range carrier {
				ce.SetExtension(k, v)
			}
		}
		spans[i] = span
	}
	return spans
}

// endSpans ends spans, each as failed when failure(i) says why.
func endSpans(spans []trace.Span, failure func(i int) string) {
	for i, s := range spans {
		if why := failure(i); why != "" {
			s.SetStatus(codes.Error, why)
		}
		s.End()
	}
}

// feedOf returns the feed of a subject hrsync.events.<feed>.<name>.
func feedOf(subject string) string {
	rest, _ := strings.CutPrefix(subject, events.SubjectPrefix)
	feed, _, _ := strings.Cut(rest, ".")
	return feed
}

// invalidItem is the 400 of an invalid event: at index i of a batch, or the
// only event (i < 0).
func invalidItem(i int, id string, err error) *problem {
	field, reason := "body", err.Error()
	var ve *events.ValidationError
	if errors.As(err, &ve) {
		field, reason = ve.Field, ve.Reason
	}
	a := Answer{Field: field, Error: fmt.Sprintf("field %q: %s", field, reason)}
	if i >= 0 {
		a.Events = []Item{{Index: i, ID: id, Field: field, Error: a.Error}}
		a.Error = fmt.Sprintf("event %d of the batch: %s; nothing was published", i, a.Error)
	}
	return &problem{http.StatusBadRequest, a}
}

// refuse answers a refusal and closes the connection, reading nothing more of
// the request (as the roster API does, docs/admin-api.md).
func refuse(w http.ResponseWriter, status int, a Answer) {
	w.Header().Set("Connection", "close")
	_ = http.NewResponseController(w).SetReadDeadline(time.Now())
	writeJSON(w, status, a)
}

func writeJSON(w http.ResponseWriter, status int, a Answer) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(a)
}
