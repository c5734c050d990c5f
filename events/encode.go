package events

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"time"

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
	u, err := url.Parse(e.Source)
	if err != nil {
		return nil, fmt.Errorf("encode %s event %q: source %q is not a URI-reference", e.Kind, e.ID, e.Source)
	}
	if mode == Binary && u.String() == e.Source && !hasControl(e.ID+e.Source+e.Data.WorkerID) {
		return encodeBinary(e)
	}
	return encodeSDK(e, mode)
}

// encodeBinary is Encode in binary mode without the CloudEvents SDK, for a source
// that the SDK would write as given and attributes without control characters
// (which the SDK may alter, and the contract refuses). It writes what the SDK writes (the attribute
// headers, escaped as Encode escapes them, and the data as JSON) at a fraction of
// the cost; TestEncodeBinaryMatchesSDK holds it to that.
func encodeBinary(e Event) (*nats.Msg, error) {
	data, err := json.Marshal(e.Data)
	if err != nil {
		return nil, fmt.Errorf("encode %s event %q: data: %w", e.Kind, e.ID, err)
	}
	msg := &nats.Msg{Subject: e.Subject(), Data: data, Header: make(nats.Header, 8)}
	set := func(name, v string) { msg.Header[name] = []string{escapeHeaderValue(v)} }
	set(headerPrefix+"specversion", event.CloudEventsVersionV1)
	set(headerPrefix+"id", e.ID)
	set(headerPrefix+"source", e.Source)
	set(headerPrefix+"type", Type(e.Kind))
	set(headerPrefix+"subject", e.Data.WorkerID)
	set(headerPrefix+"time", e.Time.Format(time.RFC3339Nano))
	set(headerPrefix+"datacontenttype", ContentTypeJSON)
	msgID := e.Source + " " + e.ID
	if hasControl(msgID) {
		msgID = escapeHeaderValue(msgID)
	}
	msg.Header[jetstream.MsgIDHeader] = []string{msgID}
	return msg, nil
}

// encodeSDK is Encode through the CloudEvents SDK.
func encodeSDK(e Event, mode Mode) (*nats.Msg, error) {
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
