package events

import (
	"bytes"
	"context"
	"fmt"
	"net/url"

	cejs "github.com/cloudevents/sdk-go/protocol/nats_jetstream/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hrsync/hrsync/connector"
)

// Encode renders e as a NATS message on e.Subject() in the given content mode. It
// sets Nats-Msg-Id to "<source> <id>", so that JetStream drops a re-publish within
// the stream's duplicate window.
//
// Encode does not validate e against the contract; CheckEvent does.
func Encode(e Event, mode Mode) (*nats.Msg, error) {
	if _, err := url.Parse(e.Source); err != nil {
		return nil, fmt.Errorf("encode %s event %q: source %q is not a URI-reference", e.Kind, e.ID, e.Source)
	}
	ce := event.New(event.CloudEventsVersionV1)
	ce.SetID(e.ID)
	ce.SetSource(e.Source)
	ce.SetType(Type(e.Kind))
	ce.SetSubject(e.Data.WorkerID)
	ce.SetTime(e.Time)
	if err := ce.SetData(ContentTypeJSON, e.Data); err != nil {
		return nil, fmt.Errorf("encode %s event %q: data: %w", e.Kind, e.ID, err)
	}

	ctx := context.Background()
	switch mode {
	case Structured:
		ctx = binding.WithForceStructured(ctx)
	case Binary:
		ctx = binding.WithForceBinary(ctx)
	default:
		return nil, fmt.Errorf("encode %s event %q: unknown content mode %v", e.Kind, e.ID, mode)
	}
	var body bytes.Buffer
	h, err := cejs.WriteMsg(ctx, (*binding.EventMessage)(&ce), &body)
	if err != nil {
		return nil, fmt.Errorf("encode %s event %q: %w", e.Kind, e.ID, err)
	}

	msg := nats.NewMsg(e.Subject())
	msg.Data = body.Bytes()
	if mode == Structured {
		msg.Header.Set(headerContentType, ContentTypeStructured)
	} else {
		for k, vs := range h {
			for _, v := range vs {
				msg.Header.Add(k, escapeHeaderValue(v))
			}
		}
	}
	msgID := e.Source + " " + e.ID
	if hasControl(msgID) {
		msgID = escapeHeaderValue(msgID)
	}
	msg.Header.Set(jetstream.MsgIDHeader, msgID)
	return msg, nil
}

// CheckEvent validates e exactly as the daemon will: it encodes e and decodes the
// message with a Decoder for feeds. The error, if any, is the one the daemon would
// dead-letter the event with (a permanent *ValidationError).
func CheckEvent(e Event, feeds connector.Feeds) error {
	if _, err := url.Parse(e.Source); err != nil {
		return invalid("source", "not a URI-reference: %q", clip(e.Source))
	}
	msg, err := Encode(e, Structured)
	if err != nil {
		return invalid("body", "%v", err)
	}
	dec := Decoder{Feeds: feeds}
	_, err = dec.Decode(msg.Subject, msg.Header, msg.Data)
	return err
}
