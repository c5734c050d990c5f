package events

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hrsync/hrsync/connector"
)

// Stream defaults.
const (
	// DefaultStream is the prefix of the per-feed stream names: the feed hr is kept in
	// the stream HRSYNC_hr.
	DefaultStream     = "HRSYNC"
	DefaultDuplicates = 2 * time.Minute
	// DefaultMaxAge is how long a feed's stream keeps an event: well above any
	// outage hrsync should ride out, well below the erasure deadlines (docs/erasure.md),
	// since a stream holds raw personal data.
	DefaultMaxAge = 7 * 24 * time.Hour
	// DefaultMaxBytes bounds one feed's stream. A feed that reaches it is refused new
	// events (the publisher gets an error) until hrsync has caught up; nothing already
	// stored is ever evicted, and no other feed is affected.
	DefaultMaxBytes = 1 << 30
	// DefaultMaxMsgSize is the largest event a stream accepts (the NATS default payload).
	DefaultMaxMsgSize = 1 << 20
)

// StreamConfig configures the JetStream streams that hold the events: one stream per
// feed, so that a feed can neither shadow another feed's event ids (duplicate
// detection is per stream) nor crowd out its events (limits are per stream, and a
// full stream refuses new messages instead of discarding old ones). Zero values take
// the defaults noted on each field.
type StreamConfig struct {
	// Prefix of the stream names, <Prefix>_<feed>; defaults to HRSYNC.
	Prefix string
	// Limits apply to every feed's stream unless PerFeed says otherwise.
	Limits StreamLimits
	// PerFeed overrides Limits for some feeds; a zero field keeps the default.
	PerFeed map[string]StreamLimits
	// Duplicates is the window in which JetStream drops a message whose Nats-Msg-Id
	// it has already seen in the same feed; defaults to 2 minutes.
	Duplicates time.Duration
	// Replicas defaults to 1; use 3 on a cluster.
	Replicas int
}

// StreamLimits bound one feed's stream. Zero takes the default; -1 means no limit
// (not allowed for MaxBytes of a partner feed, see docs/design.md).
type StreamLimits struct {
	// MaxAge is how long an event is kept; defaults to DefaultMaxAge. An event that
	// ages out before hrsync recorded it is a gap, detected and reported.
	MaxAge time.Duration
	// MaxBytes and MaxMsgs bound the stream; when one is reached new events are
	// refused (discard new), never old ones evicted. MaxBytes defaults to
	// DefaultMaxBytes, MaxMsgs to no limit.
	MaxBytes int64
	MaxMsgs  int64
	// MaxMsgSize is the largest event accepted; defaults to DefaultMaxMsgSize.
	MaxMsgSize int32
}

func (l StreamLimits) over(o StreamLimits) StreamLimits {
	if o.MaxAge != 0 {
		l.MaxAge = o.MaxAge
	}
	if o.MaxBytes != 0 {
		l.MaxBytes = o.MaxBytes
	}
	if o.MaxMsgs != 0 {
		l.MaxMsgs = o.MaxMsgs
	}
	if o.MaxMsgSize != 0 {
		l.MaxMsgSize = o.MaxMsgSize
	}
	return l
}

func (c StreamConfig) withDefaults() StreamConfig {
	if c.Prefix == "" {
		c.Prefix = DefaultStream
	}
	if c.Duplicates <= 0 {
		c.Duplicates = DefaultDuplicates
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	c.Limits = StreamLimits{MaxAge: DefaultMaxAge, MaxBytes: DefaultMaxBytes, MaxMsgs: -1,
		MaxMsgSize: DefaultMaxMsgSize}.over(c.Limits)
	return c
}

// Name returns the name of feed's stream.
func (c StreamConfig) Name(feed string) string {
	return c.withDefaults().Prefix + "_" + feed
}

// LimitsFor returns the limits of feed's stream, defaults filled in.
func (c StreamConfig) LimitsFor(feed string) StreamLimits {
	c = c.withDefaults()
	return c.Limits.over(c.PerFeed[feed])
}

// Validate reports a configuration that JetStream would refuse or that would break
// isolation, naming the field.
func (c StreamConfig) Validate(feeds []string) error {
	c = c.withDefaults()
	if !validStreamPrefix(c.Prefix) {
		return fmt.Errorf("stream.prefix %q: use letters, digits, - and _ only", c.Prefix)
	}
	for f := range c.PerFeed {
		if !contains(feeds, f) {
			return fmt.Errorf("stream limits for feed %q: no such feed is declared", f)
		}
	}
	for _, f := range feeds {
		l := c.LimitsFor(f)
		if l.MaxAge < 0 {
			return fmt.Errorf("feed %s: stream max_age %s: must be positive (events hold personal data)", f, l.MaxAge)
		}
		if l.MaxBytes < -1 || l.MaxMsgs < -1 || l.MaxMsgSize < -1 {
			return fmt.Errorf("feed %s: stream limits: a limit is positive, or -1 for none", f)
		}
	}
	return nil
}

func validStreamPrefix(p string) bool {
	if p == "" || len(p) > 64 {
		return false
	}
	for _, r := range p {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// ErrStreamOverlap means another stream already captures a feed's subjects, for
// example the single stream HRSYNC of hrsync before one stream per feed.
var ErrStreamOverlap = errors.New("another stream captures the feed's subjects")

// EnsureStreams creates, or updates to c, one stream per feed, with file storage,
// subjects hrsync.events.<feed>.>, discard-new limits and a duplicate window of
// its own. It returns the stream names by feed. A stream of another name that
// already captures a feed's subjects is an error wrapping ErrStreamOverlap that
// says what to do.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, c StreamConfig, feeds []string) (map[string]string, error) {
	if err := c.Validate(feeds); err != nil {
		return nil, err
	}
	c = c.withDefaults()
	names := make(map[string]string, len(feeds))
	for _, f := range feeds {
		if !connector.ValidFeedName(f) {
			return nil, fmt.Errorf("feed %q: not a valid feed name ([a-z0-9-]+)", f)
		}
		name := c.Name(f)
		subject := FeedSubject(f)
		if other, err := js.StreamNameBySubject(ctx, subject); err == nil && other != name {
			return nil, fmt.Errorf("events: stream %s already captures %s: %w. hrsync keeps one stream per "+
				"feed (docs/design.md, feed isolation): stop the publishers, let the previous hrsync drain %s, "+
				"then delete it (nats stream rm %s) and start hrsync again", other, subject, ErrStreamOverlap, other, other)
		}
		l := c.LimitsFor(f)
		_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:        name,
			Description: "hrsync: HR events of feed " + f + " (CloudEvents, contract " + Version + ")",
			Subjects:    []string{subject},
			Retention:   jetstream.LimitsPolicy,
			Discard:     jetstream.DiscardNew,
			Storage:     jetstream.FileStorage,
			MaxAge:      l.MaxAge,
			MaxBytes:    l.MaxBytes,
			MaxMsgs:     l.MaxMsgs,
			MaxMsgSize:  l.MaxMsgSize,
			Duplicates:  c.Duplicates,
			Replicas:    c.Replicas,
		})
		if err != nil {
			return nil, fmt.Errorf("events: ensure stream %s: %w", name, err)
		}
		names[f] = name
	}
	return names, nil
}

// Publish encodes e in the given mode and publishes it, waiting for JetStream's
// acknowledgement. PubAck.Duplicate is true when the feed's stream already had the
// event (same source and id within the duplicate window).
func Publish(ctx context.Context, js jetstream.JetStream, e Event, mode Mode) (*jetstream.PubAck, error) {
	msg, err := Encode(e, mode)
	if err != nil {
		return nil, err
	}
	ack, err := js.PublishMsg(ctx, msg)
	if err != nil {
		return nil, fmt.Errorf("events: publish %s: %w", msg.Subject, err)
	}
	return ack, nil
}
