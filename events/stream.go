package events

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Stream defaults.
const (
	DefaultStream     = "HRSYNC"
	DefaultDuplicates = 2 * time.Minute
)

// StreamConfig configures the JetStream stream that holds the events. Zero values
// take the defaults noted on each field.
type StreamConfig struct {
	// Name defaults to HRSYNC.
	Name string
	// Subjects default to hrsync.events.>.
	Subjects []string
	// MaxAge, MaxBytes and MaxMsgs limit the stream; zero means no limit. When a limit
	// is hit the oldest messages go, so set them well above the longest backlog the
	// consumer may build up during an outage.
	MaxAge   time.Duration
	MaxBytes int64
	MaxMsgs  int64
	// Duplicates is the window in which JetStream drops a message whose Nats-Msg-Id
	// it has already seen; defaults to 2 minutes.
	Duplicates time.Duration
	// Replicas defaults to 1; use 3 on a cluster.
	Replicas int
}

func (c StreamConfig) withDefaults() StreamConfig {
	if c.Name == "" {
		c.Name = DefaultStream
	}
	if len(c.Subjects) == 0 {
		c.Subjects = []string{SubjectWildcard}
	}
	if c.Duplicates <= 0 {
		c.Duplicates = DefaultDuplicates
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = -1
	}
	if c.MaxMsgs <= 0 {
		c.MaxMsgs = -1
	}
	return c
}

// EnsureStream creates the stream, or updates it to c, with file storage.
func EnsureStream(ctx context.Context, js jetstream.JetStream, c StreamConfig) (jetstream.Stream, error) {
	c = c.withDefaults()
	s, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        c.Name,
		Description: "hrsync: HR events (CloudEvents, contract " + Version + ")",
		Subjects:    c.Subjects,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		Storage:     jetstream.FileStorage,
		MaxAge:      c.MaxAge,
		MaxBytes:    c.MaxBytes,
		MaxMsgs:     c.MaxMsgs,
		Duplicates:  c.Duplicates,
		Replicas:    c.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("events: ensure stream %s: %w", c.Name, err)
	}
	return s, nil
}

// Publish encodes e in the given mode and publishes it, waiting for JetStream's
// acknowledgement. PubAck.Duplicate is true when the stream already had the event
// (same source and id within the duplicate window).
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
