package events

import (
	"encoding/json"
	"errors"
	"sort"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hrsync/hrsync/connector"
)

// FeedOfSource returns the declared feed whose CloudEvents source is source
// (connector.Feed.Source, or /feeds/<name> when unset).
func (d *Decoder) FeedOfSource(source string) (string, bool) {
	for _, name := range d.Feeds.Names() {
		f := d.Feeds[name]
		want := f.Source
		if want == "" {
			want = "/feeds/" + f.Name
		}
		if source == want {
			return name, true
		}
	}
	return "", false
}

// Received turns a CloudEvent that arrived by another way than NATS (the HTTP
// door, docs/http-door.md) into the message its feed's stream will keep, and
// checks that message with Decode: exactly the checks the consumer will make,
// on exactly the bytes it will read. The message is in structured mode on
// hrsync.events.<feed>.<name>, its feed found by the event's source and its
// name by its type; its Nats-Msg-Id is "<source> <id>", as Encode sets it, so
// that JetStream drops a resend however it came. Extensions (traceparent) are
// kept. The error is a permanent *ValidationError naming the field.
func (d *Decoder) Received(ce *event.Event) (*nats.Msg, connector.Fact, error) {
	feed, ok := d.FeedOfSource(ce.Source())
	if !ok {
		if ce.Source() == "" {
			return nil, connector.Fact{}, invalid("source", "required")
		}
		return nil, connector.Fact{}, invalid("source", "%q is the source of no configured feed", clip(ce.Source()))
	}
	k, err := parseType(ce.Type())
	if err != nil {
		return nil, connector.Fact{}, err
	}
	body, err := json.Marshal(ce)
	if err != nil {
		return nil, connector.Fact{}, invalid("body", "cannot render as a structured CloudEvent: %v", err)
	}
	msg := nats.NewMsg(Subject(feed, k))
	msg.Data = body
	msg.Header.Set(headerContentType, ContentTypeStructured)
	msgID := ce.Source() + " " + ce.ID()
	if hasControl(msgID) {
		msgID = escapeHeaderValue(msgID)
	}
	msg.Header.Set(jetstream.MsgIDHeader, msgID)
	f, err := d.Decode(msg.Subject, msg.Header, msg.Data)
	if err != nil {
		return nil, connector.Fact{}, err
	}
	return msg, f, nil
}

// SDKError turns an error of the CloudEvents SDK's decoder into a permanent
// *ValidationError naming the first attribute it names (or "body").
func SDKError(err error) error {
	field := "body"
	var sdkErr event.ValidationError
	if errors.As(err, &sdkErr) && len(sdkErr) > 0 {
		keys := make([]string, 0, len(sdkErr))
		for k := range sdkErr {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		field = keys[0]
	}
	return invalid(field, "not a CloudEvent: %v", err)
}
