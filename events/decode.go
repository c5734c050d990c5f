package events

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/url"
	"slices"
	"sort"
	"sync"
	"time"
	_ "time/tzdata" // IANA zones even where the host has none (scratch and distroless images)
	"unicode/utf8"

	cejs "github.com/cloudevents/sdk-go/protocol/nats_jetstream/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/hrsync/hrsync/connector"
)

// Decoder turns NATS messages into validated facts. The zero value of MaxDataBytes
// means DefaultMaxDataBytes. A Decoder is safe for concurrent use once set up.
type Decoder struct {
	// Feeds are the declared feeds; a message from any other feed is rejected.
	Feeds connector.Feeds
	// MaxDataBytes limits the message body (structured: the whole event; binary:
	// the data). Zero or less means DefaultMaxDataBytes.
	MaxDataBytes int
}

// Decode checks one message against contract v1 and returns the fact it states.
//
// Every error is a *ValidationError wrapped with connector.Permanent: the message
// is wrong and will stay wrong, so it must be dead-lettered, not redelivered.
// Decode never panics.
func (d *Decoder) Decode(subject string, header nats.Header, data []byte) (connector.Fact, error) {
	f, _, err := d.DecodeTraced(subject, header, data)
	return f, err
}

// EventTrace is the trace context an event carries in the CloudEvents
// distributed-tracing extension: its traceparent and tracestate attributes, as
// given (W3C Trace Context); empty when it carries none.
type EventTrace struct {
	Parent, State string
}

// DecodeTraced is Decode that also returns the event's trace context.
func (d *Decoder) DecodeTraced(subject string, header nats.Header, data []byte) (f connector.Fact, tr EventTrace, err error) {
	defer func() {
		if r := recover(); r != nil {
			f, tr, err = connector.Fact{}, EventTrace{}, invalid("body", "cannot decode: %v", r)
		}
	}()
	f, ce, err := d.decode(subject, header, data)
	if err != nil {
		return connector.Fact{}, EventTrace{}, err
	}
	tr.Parent, _ = ce.Extensions()["traceparent"].(string)
	tr.State, _ = ce.Extensions()["tracestate"].(string)
	return f, tr, nil
}

// decode is Decode, returning the decoded CloudEvent too.
func (d *Decoder) decode(subject string, header nats.Header, data []byte) (connector.Fact, *event.Event, error) {
	feedName, k, err := parseSubject(subject)
	if err != nil {
		return connector.Fact{}, nil, err
	}
	feed, ok := d.Feeds[feedName]
	if !ok {
		return connector.Fact{}, nil, invalid("feed", "undeclared feed %q", feedName)
	}
	limit := d.MaxDataBytes
	if limit <= 0 {
		limit = DefaultMaxDataBytes
	}
	if len(data) > limit {
		return connector.Fact{}, nil, invalid("data", "message body is %d bytes, more than the limit of %d", len(data), limit)
	}

	env, err := readHeaders(header)
	if err != nil {
		return connector.Fact{}, nil, err
	}
	ce, err := decodeCloudEvent(env, data)
	if err != nil {
		return connector.Fact{}, nil, err
	}

	typ, err := parseType(ce.Type())
	if err != nil {
		return connector.Fact{}, nil, err
	}
	if typ != k {
		return connector.Fact{}, nil, invalid("type", "%q does not match the event name %q of NATS subject %q", ce.Type(), k, subject)
	}
	source := feed.Source
	if source == "" {
		source = "/feeds/" + feed.Name
	}
	if ce.Source() != source {
		return connector.Fact{}, nil, invalid("source", "%q is not the source of feed %q (%q)", clip(ce.Source()), feedName, source)
	}

	dd, err := decodeData(k, ce.Data())
	if err != nil {
		return connector.Fact{}, nil, err
	}
	if dd.WorkerID != ce.Subject() {
		return connector.Fact{}, nil, invalid("data.worker_id", "%q does not match the event's subject %q", clip(dd.WorkerID), clip(ce.Subject()))
	}
	eff, err := effectiveOf(k, dd, feed, ce.Time())
	if err != nil {
		return connector.Fact{}, nil, err
	}

	f := connector.Fact{
		Feed:             feedName,
		WorkerID:         dd.WorkerID,
		Source:           ce.Source(),
		ID:               ce.ID(),
		Kind:             k,
		Effective:        eff,
		Time:             ce.Time().UTC(),
		Profile:          dd.Profile(),
		Reason:           dd.Reason,
		RequestedBy:      dd.RequestedBy,
		PreviousWorkerID: dd.PreviousWorkerID,
	}
	if err := f.Validate(); err != nil { // the contract implies it; keep the store safe regardless
		return connector.Fact{}, nil, invalid("body", "%v", err)
	}
	return f, ce, nil
}

// stringAttrs are the context attributes of CloudEvents 1.0 that hrsync reads, in
// the order they are checked.
var stringAttrs = []string{"specversion", "type", "id", "source", "subject", "time", "datacontenttype", "dataschema"}

// decodeCloudEvent lets the CloudEvents SDK decode the message and checks the
// attributes, naming the one that is wrong.
//
// Binary-mode attributes are checked before the SDK sees them. A structured-mode
// event is decoded by the SDK first (one pass over the JSON on the happy path);
// only if the SDK refuses it is the JSON read again to find the field to blame.
func decodeCloudEvent(env envelope, body []byte) (*event.Event, error) {
	msg := &nats.Msg{Data: body}
	if env.mode == Binary {
		if err := checkAttrs(env.attrs); err != nil {
			return nil, err
		}
		msg.Header = make(nats.Header, len(env.attrs))
		for name, v := range env.attrs {
			msg.Header.Set(headerPrefix+name, v)
		}
	} else if !utf8.Valid(body) {
		return nil, utf8Error("body", body)
	}
	ce, err := toEvent(msg)
	if err != nil {
		if env.mode == Structured {
			attrs, aerr := structuredAttrs(body)
			if aerr == nil {
				aerr = checkAttrs(attrs)
			}
			if aerr != nil {
				return nil, aerr
			}
		}
		field := "body"
		if env.mode == Binary {
			field = "headers"
		}
		var sdkErr event.ValidationError
		if errors.As(err, &sdkErr) && len(sdkErr) > 0 {
			keys := make([]string, 0, len(sdkErr))
			for k := range sdkErr {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			field = keys[0]
		}
		return nil, invalid(field, "not a CloudEvent in %s mode: %v", env.mode, err)
	}
	if env.mode == Structured {
		if ce.DataBase64 {
			return nil, invalid("data_base64", "not supported: send data as a JSON object in data")
		}
		if err := checkAttrs(eventAttrs(ce)); err != nil {
			return nil, err
		}
	}
	if ce.SpecVersion() != event.CloudEventsVersionV1 || ce.Time().IsZero() || ce.DataBase64 {
		return nil, invalid("body", "not a CloudEvents 1.0 event with time and JSON data")
	}
	return ce, nil
}

// toEvent runs the SDK's decoder, turning a panic in it into an error.
func toEvent(msg *nats.Msg) (ce *event.Event, err error) {
	defer func() {
		if r := recover(); r != nil {
			ce, err = nil, fmt.Errorf("%v", r)
		}
	}()
	return binding.ToEvent(context.Background(), cejs.NewMessage(msg))
}

// eventAttrs returns the string attributes of a decoded event, as checkAttrs reads them.
func eventAttrs(ce *event.Event) map[string]string {
	attrs := map[string]string{
		"specversion":     ce.SpecVersion(),
		"type":            ce.Type(),
		"id":              ce.ID(),
		"source":          ce.Source(),
		"subject":         ce.Subject(),
		"datacontenttype": ce.DataContentType(),
		"dataschema":      ce.DataSchema(),
	}
	if t := ce.Time(); !t.IsZero() {
		attrs["time"] = t.Format(time.RFC3339Nano)
	}
	return attrs
}

// structuredAttrs reads the string attributes of a structured-mode event that the
// SDK refused, so that the wrong one is reported by name.
func structuredAttrs(body []byte) (map[string]string, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil || raw == nil {
		return nil, invalid("body", "not a structured CloudEvent (a JSON object): %s", jsonProblem(err))
	}
	attrs := make(map[string]string, len(stringAttrs))
	names := make([]string, 0, len(raw))
	for name := range raw {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		v := raw[name]
		switch {
		case name == "data":
		case name == "data_base64":
			return nil, invalid("data_base64", "not supported: send data as a JSON object in data")
		case slices.Contains(stringAttrs, name):
			if string(v) == "null" { // the JSON format: null means absent
				continue
			}
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return nil, invalid(name, "must be a string, not %s", jsonKind(v))
			}
			attrs[name] = s
		case !validAttrName(name):
			return nil, invalid(orField(clip(name), "body"), "%q is not a CloudEvents attribute: names are lower-case letters and digits (is it a data field outside data?)", clip(name))
		default: // an extension; hrsync ignores extensions but the SDK must be able to hold them
			switch jsonKind(v) {
			case "string", "boolean", "null":
			case "number":
				var n int32
				if json.Unmarshal(v, &n) != nil {
					return nil, invalid(name, "extension attribute: a number must be a 32-bit integer")
				}
			default:
				return nil, invalid(name, "extension attribute: must be a string, integer or boolean, not %s", jsonKind(v))
			}
		}
	}
	return attrs, nil
}

// checkAttrs checks the context attributes both modes carry.
func checkAttrs(attrs map[string]string) error {
	for _, name := range stringAttrs {
		v, ok := attrs[name]
		switch name {
		case "specversion":
			if !ok || v == "" {
				return invalid(name, "required")
			}
			if v != event.CloudEventsVersionV1 {
				return invalid(name, "%q is not supported: want %s", clip(v), event.CloudEventsVersionV1)
			}
		case "type", "id", "source", "subject":
			if !ok || v == "" {
				return invalid(name, "required")
			}
			if p := badText(v, false); p != "" { // control characters, and bidi or invisible ones: the id and subject are stored
				return invalid(name, "%s", p)
			}
			if name == "type" {
				if _, err := parseType(v); err != nil {
					return err
				}
			}
			if name == "source" {
				if _, err := url.Parse(v); err != nil {
					return invalid(name, "not a URI-reference: %q", clip(v))
				}
			}
		case "time":
			if !ok || v == "" {
				return invalid(name, "required")
			}
			if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
				return invalid(name, "not an RFC 3339 timestamp: %q", clip(v))
			}
		case "datacontenttype":
			if !ok || v == "" {
				continue
			}
			if mt, _, err := mime.ParseMediaType(v); err != nil || mt != ContentTypeJSON {
				return invalid(name, "%q is not supported: data must be %s", clip(v), ContentTypeJSON)
			}
		case "dataschema":
			if !ok || v == "" {
				continue
			}
			if u, err := url.Parse(v); err != nil || !u.IsAbs() {
				return invalid(name, "not an absolute URI: %q", clip(v))
			}
		}
	}
	return nil
}

// decodeData validates the data of a kind-k event against its schema and decodes it.
// Data that quickData proves valid skips the schema pass.
func decodeData(k connector.Kind, data []byte) (Data, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return Data{}, invalid("data", "required")
	}
	if !utf8.Valid(data) {
		return Data{}, utf8Error("data", data)
	}
	if d, ok := quickData(k, data); ok {
		return d, nil
	}
	return schemaData(k, data)
}

// schemaData is decodeData's schema pass, for data that is valid UTF-8 and not blank.
func schemaData(k connector.Kind, data []byte) (Data, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return Data{}, invalid("data", "not JSON: %s", jsonProblem(err))
	}
	if err := validateSchema(k, doc); err != nil {
		return Data{}, err
	}
	// The schema admits only an object of strings with known names.
	obj, _ := doc.(map[string]any)
	str := func(name string) string { s, _ := obj[name].(string); return s }
	return Data{
		WorkerID:         str("worker_id"),
		Email:            str("email"),
		GivenName:        str("given_name"),
		FamilyName:       str("family_name"),
		EmployeeNumber:   str("employee_number"),
		OrgUnit:          str("org_unit"),
		JobTitle:         str("job_title"),
		ManagerID:        str("manager_id"),
		Locale:           str("locale"),
		Effective:        str("effective"),
		Timezone:         str("timezone"),
		Reason:           str("reason"),
		RequestedBy:      str("requested_by"),
		PreviousWorkerID: str("previous_worker_id"),
		ExpectedReturn:   str("expected_return"),
	}, nil
}

// effectiveOf returns when a fact of kind k with data dd from feed takes effect:
// data.effective, a bare date starting in data.timezone or the feed's zone. An
// erasure request states no date; it is in force from the event's time.
func effectiveOf(k connector.Kind, dd Data, feed connector.Feed, at time.Time) (time.Time, error) {
	if k == connector.KindErasureRequested {
		return at.UTC(), nil
	}
	loc := feed.Location
	if loc == nil {
		loc = time.UTC
	}
	if dd.Timezone != "" {
		var err error
		if loc, err = loadLocation(dd.Timezone); err != nil {
			return time.Time{}, err
		}
	}
	return parseEffective(dd.Effective, loc)
}

// parseEffective reads an RFC 3339 full-date (midnight in loc) or date-time and
// returns the instant in UTC.
func parseEffective(s string, loc *time.Location) (time.Time, error) {
	if len(s) == len(time.DateOnly) {
		if t, err := time.ParseInLocation(time.DateOnly, s, loc); err == nil {
			return t.UTC(), nil
		}
	} else if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, invalid("data.effective", "not an RFC 3339 date or date-time: %q", clip(s))
}

// locations caches time zones by name: time.LoadLocation reads a file every time.
var locations sync.Map

// loadLocation resolves an IANA zone name; "Local" is refused because it would
// mean a different thing on every host.
func loadLocation(name string) (*time.Location, error) {
	if l, ok := locations.Load(name); ok {
		return l.(*time.Location), nil
	}
	l, err := time.LoadLocation(name)
	if err != nil || name == "Local" || name == "" {
		return nil, invalid("data.timezone", "not an IANA time zone name: %q", clip(name))
	}
	locations.Store(name, l)
	return l, nil
}

// orField returns field, or def if field is empty.
func orField(field, def string) string {
	if field == "" {
		return def
	}
	return field
}

// hasControl reports whether s contains a character CloudEvents forbids in
// attribute values (U+0000-U+001F, U+007F-U+009F).
func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) {
			return true
		}
	}
	return false
}

// jsonKind names the JSON type of a raw value.
func jsonKind(v json.RawMessage) string {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return "nothing"
	}
	switch v[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

// jsonProblem describes a JSON syntax error briefly.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	switch {
	case err == nil:
		return "got null"
	case errors.As(err, &se):
		return fmt.Sprintf("%v at byte %d", se, se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return "got " + te.Value
	}
	return err.Error()
}
