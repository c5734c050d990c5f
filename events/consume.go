package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/hrsync/hrsync/connector"
)

// Recorder is where consumed events go. Implemented by package store.
type Recorder interface {
	// RecordFacts stores facts in one transaction: each fact once per (source, id),
	// appended to its worker's history, and the worker marked due. It returns how
	// many facts were new (duplicates are skipped, not errors). On error nothing is
	// stored. An error marked connector.Permanent means the store refuses one of the
	// facts for good; any other error means "try again later".
	RecordFacts(ctx context.Context, facts []connector.Fact) (int, error)
	// DeadLetter stores a message that cannot be applied and returns its id.
	DeadLetter(ctx context.Context, d connector.DeadLetter) (int64, error)
}

// Hooks let the caller observe the consumer (metrics, waking the converger). All are
// optional; they are called from the feeds' consumer goroutines, concurrently, and
// must not block long.
type Hooks struct {
	// Consumed is called for every message received, with the feed its subject
	// names, or "" if that is not a declared feed.
	Consumed func(feed string)
	// Recorded is called after a batch is committed, with the number of new facts.
	Recorded func(n int)
	// DeadLettered is called for every message dead-lettered, with its declared
	// feed (or "") and its reason.
	DeadLettered func(feed, reason string)
	// StoreError is called when the Recorder fails and messages are redelivered later.
	StoreError func(error)
	// AfterCommit is called with the facts of each committed batch (including
	// duplicates the store skipped). The slice is not reused.
	AfterCommit func(facts []connector.Fact)
	// Traced is called, after a batch is committed and only with a Tracer, with
	// each fact and the span context of its recording (docs/tracing.md).
	Traced func(f connector.Fact, sc trace.SpanContext)
	// Bound is called once every feed's durable consumer is bound (created,
	// updated or adopted for ConsumerConfig.Deployment), before anything is consumed.
	Bound func()
	// Gap is called when messages of feed were discarded from its stream before
	// hrsync recorded them (sequences first to last, n of them).
	Gap func(feed string, first, last uint64, n int)
}

// Consumer defaults.
const (
	DefaultDurable  = "hrsync"
	DefaultBatch    = 256
	DefaultMaxWait  = 20 * time.Millisecond
	DefaultNakDelay = 5 * time.Second
	DefaultAckWait  = 30 * time.Second
)

// ConsumerConfig configures Consume. Zero values take the defaults noted on each field.
type ConsumerConfig struct {
	// StreamPrefix names the streams, <StreamPrefix>_<feed>, one per declared feed
	// (see StreamConfig); defaults to HRSYNC.
	StreamPrefix string
	// Durable is the durable consumer's name on every feed's stream; defaults to
	// hrsync. Replicas of the daemon share it and so share the work.
	Durable string
	// Batch is the most messages recorded in one store transaction; defaults to 256.
	Batch int
	// MaxWait is how long a batch waits to fill up after its first message arrived;
	// defaults to 20ms. It bounds the latency that batching adds.
	MaxWait time.Duration
	// NakDelay is how long JetStream waits before redelivering messages that could
	// not be stored; defaults to 5s.
	NakDelay time.Duration
	// AckWait is how long JetStream waits for an ack before redelivering; defaults
	// to 30s. Recording a batch is given at most this long.
	AckWait time.Duration
	// MaxAckPending bounds the messages in flight per feed; defaults to max(1000, 4*Batch).
	MaxAckPending int
	// Deployment is this store's deployment id (store.DeploymentID), written in
	// the metadata of the durable consumers Consume creates; a consumer whose
	// metadata names another deployment is refused (a *DeploymentError). Empty:
	// no check.
	Deployment string
	// Tracer, if set, makes a span of recording each event, a child of the
	// trace context the event carries (the CloudEvents traceparent extension);
	// Hooks.Traced gets it. Nil: no spans.
	Tracer trace.Tracer
	// Logger defaults to discarding.
	Logger *slog.Logger
	Hooks  Hooks
}

func (c ConsumerConfig) withDefaults() ConsumerConfig {
	if c.StreamPrefix == "" {
		c.StreamPrefix = DefaultStream
	}
	if c.Durable == "" {
		c.Durable = DefaultDurable
	}
	if c.Batch <= 0 {
		c.Batch = DefaultBatch
	}
	if c.MaxWait <= 0 {
		c.MaxWait = DefaultMaxWait
	}
	if c.NakDelay <= 0 {
		c.NakDelay = DefaultNakDelay
	}
	if c.AckWait <= 0 {
		c.AckWait = DefaultAckWait
	}
	if c.MaxAckPending <= 0 {
		c.MaxAckPending = max(1000, 4*c.Batch)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// drainTimeout bounds how long a shutdown waits for the messages already buffered.
const drainTimeout = 5 * time.Second

// Consume records the events of every declared feed until ctx is cancelled.
//
// Each feed has a stream of its own (StreamConfig), and Consume runs one durable pull
// consumer per feed's stream, side by side, so that a feed that floods its stream
// delays only itself. For each feed, batch by batch:
//   - decodes every message; one that breaks the contract is dead-lettered with its
//     reason and terminated, so it is never redelivered (if the dead letter cannot
//     be stored, the message is nak'ed instead, never terminated); servers older
//     than TermReasonServerVersion get a termination without a reason, which is
//     the only one they understand;
//   - records the valid facts with one RecordFacts call and acks them only after it
//     returned; if it fails, every message of the batch is nak'ed with NakDelay and
//     comes back later. Nothing is acked before it is durable;
//   - checks that no message was discarded from the stream before it was delivered
//     (a gap: the stream's max age passed while hrsync was behind, or an operator
//     purged it); a gap is logged as an error and reported to Hooks.Gap.
//
// Every feed's consumer is bound before any is consumed from: if one belongs to
// another deployment (see ConsumerConfig.Deployment), Consume returns a
// *DeploymentError and consumes nothing; if one cannot be bound at all, a
// *BindError.
//
// When ctx is cancelled Consume finishes the batches in hand, records the messages
// already buffered, and returns nil. It returns an error if a consumer cannot be set
// up or a subscription fails; the other feeds' consumers are then stopped too.
func Consume(ctx context.Context, js jetstream.JetStream, dec *Decoder, rec Recorder, cfg ConsumerConfig) error {
	if dec == nil || rec == nil {
		return errors.New("events: consume: a Decoder and a Recorder are required")
	}
	cfg = cfg.withDefaults()
	feeds := make([]string, 0, len(dec.Feeds))
	for f := range dec.Feeds {
		feeds = append(feeds, f)
	}
	sort.Strings(feeds)
	if len(feeds) == 0 {
		if ctx.Err() != nil {
			return nil
		}
		return errors.New("events: consume: no feed is declared")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	conses := make([]jetstream.Consumer, len(feeds))
	for i, f := range feeds {
		stream := StreamConfig{Prefix: cfg.StreamPrefix}.Name(f)
		cons, err := bindConsumer(ctx, js, stream, cfg.Deployment, jetstream.ConsumerConfig{
			Durable:       cfg.Durable,
			Description:   "hrsync: records HR events of feed " + f,
			AckPolicy:     jetstream.AckExplicitPolicy,
			DeliverPolicy: jetstream.DeliverAllPolicy,
			FilterSubject: FeedSubject(f),
			AckWait:       cfg.AckWait,
			MaxAckPending: cfg.MaxAckPending,
			MaxDeliver:    -1,
		}, cfg.Logger)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var de *DeploymentError
			if errors.As(err, &de) {
				return err
			}
			return &BindError{Stream: stream, Durable: cfg.Durable, Err: err}
		}
		conses[i] = cons
	}
	if h := cfg.Hooks.Bound; h != nil {
		h()
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for i, f := range feeds {
		stream := StreamConfig{Prefix: cfg.StreamPrefix}.Name(f)
		wg.Go(func() {
			err := consumeStream(ctx, js, conses[i], dec, rec, cfg, f, stream)
			if err != nil && ctx.Err() == nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				cancel()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// consumeStream runs cons, the durable consumer of one feed's stream.
func consumeStream(ctx context.Context, js jetstream.JetStream, cons jetstream.Consumer, dec *Decoder, rec Recorder, cfg ConsumerConfig, feed, stream string) error {
	it, err := cons.Messages(jetstream.PullMaxMessages(cfg.Batch))
	if err != nil {
		return fmt.Errorf("events: consumer %s on stream %s: %w", cfg.Durable, stream, err)
	}
	defer it.Stop()

	c := &consumer{cfg: cfg, dec: dec, rec: rec, log: cfg.Logger.With("feed", feed, "stream", stream),
		js: js, feed: feed, stream: stream}
	c.startGapCheck(ctx, cons)
	c.log.Info("consuming", "durable", cfg.Durable, "batch", cfg.Batch)
	for {
		batch, err := c.collect(ctx, it)
		if len(batch) > 0 {
			c.process(ctx, batch)
			c.checkGaps(ctx, batch)
		}
		if err == nil {
			continue
		}
		if errors.Is(err, jetstream.ErrNoHeartbeat) && !c.draining {
			// The pull request went unanswered for two heartbeats: it was parked
			// on a server that is gone, or on a consumer leader that changed (a
			// node of a cluster died). The iterator pulls again by itself; ending
			// the consumer here would stop the daemon (issue #15, found by
			// TestClusterFaults).
			c.log.Warn("no heartbeat from JetStream for the pull request (a server gone, or a new consumer leader); pulling again", "err", err)
			continue
		}
		if c.draining && errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			// Push the last acks out before the caller closes the connection.
			if ferr := js.Conn().FlushTimeout(drainTimeout); ferr != nil {
				c.log.Warn("flushing acks", "err", ferr)
			}
			c.log.Info("consumer stopped", "durable", cfg.Durable)
			return nil
		}
		return fmt.Errorf("events: consumer %s on stream %s: %w", cfg.Durable, stream, err)
	}
}

type consumer struct {
	cfg      ConsumerConfig
	dec      *Decoder
	rec      Recorder
	log      *slog.Logger
	draining bool

	js           jetstream.JetStream
	feed, stream string
	// last is the highest stream sequence this consumer has seen delivered for the
	// first time; a later first delivery beyond last+1 is checked for a gap.
	last uint64
}

// collect returns the next batch: it waits for one message (until ctx is done),
// then takes what else arrives within MaxWait, up to Batch messages. Once ctx is
// done it drains the iterator: it returns the buffered messages, then
// ErrMsgIteratorClosed.
func (c *consumer) collect(ctx context.Context, it jetstream.MessagesContext) ([]jetstream.Msg, error) {
	var first jetstream.Msg
	var err error
	if !c.draining {
		first, err = it.Next(jetstream.NextContext(ctx))
		if err != nil && ctx.Err() != nil {
			c.draining = true
			it.Drain()
		}
	}
	if c.draining && first == nil {
		first, err = it.Next(jetstream.NextMaxWait(drainTimeout))
		if errors.Is(err, nats.ErrTimeout) {
			it.Stop()
			err = jetstream.ErrMsgIteratorClosed
		}
	}
	if err != nil {
		return nil, err
	}
	batch := make([]jetstream.Msg, 1, c.cfg.Batch)
	batch[0] = first
	deadline := time.Now().Add(c.cfg.MaxWait)
	for len(batch) < c.cfg.Batch {
		wait := time.Until(deadline)
		if wait <= 0 {
			break
		}
		m, err := it.Next(jetstream.NextMaxWait(wait))
		if errors.Is(err, nats.ErrTimeout) {
			break
		}
		if err != nil {
			return batch, err
		}
		batch = append(batch, m)
	}
	return batch, nil
}

// process decodes, records and settles one batch. It runs to the end even when the
// consumer's ctx is cancelled, bounded by AckWait, after which JetStream would
// redeliver the batch anyway.
func (c *consumer) process(ctx context.Context, batch []jetstream.Msg) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.AckWait)
	defer cancel()
	facts := make([]connector.Fact, 0, len(batch))
	msgs := make([]jetstream.Msg, 0, len(batch))
	spans := make([]trace.Span, 0, len(batch))
	for _, m := range batch {
		feed := feedOfSubject(m.Subject())
		if h := c.cfg.Hooks.Consumed; h != nil {
			h(c.declared(feed))
		}
		f, tr, err := c.dec.DecodeTraced(m.Subject(), m.Headers(), m.Data())
		span := c.recordSpan(m, f, tr, err)
		if err != nil {
			c.deadLetter(ctx, m, feed, err.Error())
			endSpans([]trace.Span{span}, errDeadLettered)
			continue
		}
		facts = append(facts, f)
		msgs = append(msgs, m)
		spans = append(spans, span)
	}
	if len(facts) == 0 {
		return
	}
	n, err := c.rec.RecordFacts(ctx, facts)
	switch {
	case err == nil:
		for _, m := range msgs {
			c.ack(m)
		}
		c.committed(n, facts, spans)
	case connector.IsPermanent(err):
		// One fact spoils the batch: record them one by one and dead-letter the
		// ones the store refuses, so that a single bad fact cannot stall the stream.
		c.log.Warn("store refused a batch; recording its facts one by one", "facts", len(facts), "err", err)
		c.oneByOne(ctx, msgs, facts, spans)
	default:
		c.storeFailed(msgs, err)
		endSpans(spans, err)
	}
}

// errDeadLettered is the status of the span of an event that was dead-lettered.
var errDeadLettered = errors.New("dead-lettered: the event breaks the contract")

func (c *consumer) oneByOne(ctx context.Context, msgs []jetstream.Msg, facts []connector.Fact, spans []trace.Span) {
	total := 0
	done := make([]connector.Fact, 0, len(facts))
	doneSpans := make([]trace.Span, 0, len(facts))
	for i, f := range facts {
		n, err := c.rec.RecordFacts(ctx, facts[i:i+1])
		switch {
		case err == nil:
			c.ack(msgs[i])
			total += n
			done = append(done, f)
			doneSpans = append(doneSpans, spans[i])
		case connector.IsPermanent(err):
			c.deadLetter(ctx, msgs[i], f.Feed, "store refused the fact: "+err.Error())
			endSpans(spans[i:i+1], errDeadLettered)
		default:
			c.storeFailed(msgs[i:i+1], err)
			endSpans(spans[i:i+1], err)
		}
	}
	if len(done) > 0 {
		c.committed(total, done, doneSpans)
	}
}

func (c *consumer) committed(n int, facts []connector.Fact, spans []trace.Span) {
	if h := c.cfg.Hooks.Traced; h != nil && c.cfg.Tracer != nil {
		for i, f := range facts {
			h(f, spans[i].SpanContext())
		}
	}
	endSpans(spans, nil)
	c.log.Debug("recorded batch", "facts", len(facts), "new", n)
	if h := c.cfg.Hooks.Recorded; h != nil {
		h(n)
	}
	if h := c.cfg.Hooks.AfterCommit; h != nil {
		h(facts)
	}
}

func (c *consumer) storeFailed(msgs []jetstream.Msg, err error) {
	c.log.Error("recording facts failed; redelivering", "messages", len(msgs), "nak_delay", c.cfg.NakDelay, "err", err)
	if h := c.cfg.Hooks.StoreError; h != nil {
		h(err)
	}
	for _, m := range msgs {
		c.nak(m)
	}
}

// deadLetter stores m with reason and terminates it. If the store fails, m is
// nak'ed, so that it is dead-lettered on a later delivery; it is never dropped.
func (c *consumer) deadLetter(ctx context.Context, m jetstream.Msg, feed, reason string) {
	var seq uint64
	var stream string
	if md, err := m.Metadata(); err == nil {
		seq, stream = md.Sequence.Stream, md.Stream
	}
	id, err := c.rec.DeadLetter(ctx, connector.DeadLetter{
		At:        time.Now().UTC(),
		Feed:      feed,
		Subject:   m.Subject(),
		Headers:   HeadersJSON(m.Headers()),
		Data:      m.Data(),
		Reason:    reason,
		Stream:    stream,
		StreamSeq: seq,
	})
	if err != nil {
		// The reason may quote the message's data (an invalid email): DEBUG only.
		c.log.Error("dead-lettering failed; redelivering", "subject", m.Subject(), "stream_seq", seq, "err", err)
		c.log.Debug("dead-letter reason", "subject", m.Subject(), "stream_seq", seq, "reason", reason)
		if h := c.cfg.Hooks.StoreError; h != nil {
			h(err)
		}
		c.nak(m)
		return
	}
	c.log.Warn("dead-lettered", "dead_letter_id", id, "subject", m.Subject(), "stream_seq", seq)
	c.log.Debug("dead-letter reason", "dead_letter_id", id, "reason", reason)
	if h := c.cfg.Hooks.DeadLettered; h != nil {
		h(c.declared(feed), reason)
	}
	c.term(m, seq, fmt.Sprintf("hrsync: dead letter %d", id))
}

// term terminates m so that it is never redelivered. JetStream publishes the
// reason in its termination advisory, so it names the dead letter, never the
// decoding error, which may quote personal data. A server older than
// TermReasonServerVersion does not understand a termination with a reason and
// would redeliver m after AckWait, forever, so it gets a plain termination. The
// version is the connected server's now: after a reconnect it may be another.
func (c *consumer) term(m jetstream.Msg, seq uint64, reason string) {
	var err error
	if v := c.js.Conn().ConnectedServerVersion(); UnderstandsTermReason(v) {
		err = m.TermWithReason(reason)
	} else {
		c.log.Debug("terminating without a reason: the server does not understand one",
			"server_version", v, "needs", TermReasonServerVersion, "stream_seq", seq)
		err = m.Term()
	}
	if err != nil {
		c.log.Warn("terminating message failed; it will be redelivered and dead-lettered again", "stream_seq", seq, "err", err)
	}
}

// declared returns feed if it is declared, else "": hooks feed metrics labels, which
// must not take whatever a subject says.
func (c *consumer) declared(feed string) string {
	if _, ok := c.dec.Feeds[feed]; ok {
		return feed
	}
	return ""
}

// ack acknowledges m. A lost ack only means a redelivery, which the store dedupes,
// so a plain (not double) ack is enough.
func (c *consumer) ack(m jetstream.Msg) {
	if err := m.Ack(); err != nil {
		c.log.Warn("ack failed; the message will be redelivered", "subject", m.Subject(), "err", err)
	}
}

func (c *consumer) nak(m jetstream.Msg) {
	if err := m.NakWithDelay(c.cfg.NakDelay); err != nil {
		c.log.Warn("nak failed; the message will be redelivered after AckWait", "subject", m.Subject(), "err", err)
	}
}
