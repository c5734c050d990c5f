package events

import (
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hrsync/hrsync/connector"
)

// natsMsg is a NATS message to decode.
type natsMsg struct {
	subject string
	header  nats.Header
	body    []byte
}

var eventTime = time.Date(2026, 11, 20, 9, 30, 0, 0, time.UTC)

// baseData returns valid data for kind k about worker w-1.
func baseData(k connector.Kind) map[string]any {
	if k == connector.KindErasureRequested {
		return map[string]any{"worker_id": "w-1", "reason": "DSR-2026-0042"}
	}
	d := map[string]any{"worker_id": "w-1", "effective": "2026-12-01"}
	switch k {
	case connector.KindHired:
		d["email"] = "ada@example.com"
		d["given_name"] = "Ada"
	case connector.KindLeft:
		d["reason"] = "retired"
	case connector.KindRehired:
		d["email"] = "ada@example.com"
		d["previous_worker_id"] = "w-0"
	case connector.KindUpdated:
		d["job_title"] = "Engineer"
	}
	return d
}

// baseAttrs returns valid attributes of a kind-k event of feed hr.
func baseAttrs(k connector.Kind) map[string]any {
	return map[string]any{
		"specversion":     "1.0",
		"type":            Type(k),
		"source":          "/feeds/hr",
		"id":              "evt-1",
		"time":            eventTime.Format(time.RFC3339),
		"subject":         "w-1",
		"datacontenttype": "application/json",
	}
}

// structuredMsg builds a structured-mode message of kind k on feed hr; mut may
// change the event (attributes and "data") before it is encoded.
func structuredMsg(t testing.TB, k connector.Kind, mut func(ev map[string]any)) natsMsg {
	t.Helper()
	ev := baseAttrs(k)
	ev["data"] = baseData(k)
	if mut != nil {
		mut(ev)
	}
	body, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return natsMsg{Subject("hr", k), structuredHeader(), body}
}

// binaryMsg builds a binary-mode message of kind k on feed hr; mut may change the
// headers and the data before the data is encoded.
func binaryMsg(t testing.TB, k connector.Kind, mut func(h nats.Header, data map[string]any)) natsMsg {
	t.Helper()
	h := nats.Header{}
	for name, v := range baseAttrs(k) {
		h.Set("ce-"+name, v.(string))
	}
	data := baseData(k)
	if mut != nil {
		mut(h, data)
	}
	body, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	return natsMsg{Subject("hr", k), h, body}
}

func setData(field string, v any) func(map[string]any) {
	return func(ev map[string]any) {
		d := ev["data"].(map[string]any)
		if v == nil {
			delete(d, field)
		} else {
			d[field] = v
		}
	}
}

func setAttr(name string, v any) func(map[string]any) {
	return func(ev map[string]any) {
		if v == nil {
			delete(ev, name)
		} else {
			ev[name] = v
		}
	}
}

func TestDecode(t *testing.T) {
	t.Parallel()
	dec := &Decoder{Feeds: testFeeds(t)}
	berlinMidnight := time.Date(2026, 11, 30, 23, 0, 0, 0, time.UTC) // 2026-12-01 in Europe/Berlin

	for _, k := range connector.Kinds {
		for _, mode := range []Mode{Structured, Binary} {
			t.Run("OK/"+string(k)+"/"+mode.String(), func(t *testing.T) {
				t.Parallel()
				var m natsMsg
				if mode == Structured {
					m = structuredMsg(t, k, nil)
				} else {
					m = binaryMsg(t, k, nil)
				}
				f, err := dec.Decode(m.subject, m.header, m.body)
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				want := connector.Fact{
					Feed: "hr", WorkerID: "w-1", Source: "/feeds/hr", ID: "evt-1", Kind: k,
					Effective: berlinMidnight, Time: eventTime,
				}
				switch k {
				case connector.KindHired:
					want.Profile = connector.Profile{Email: "ada@example.com", GivenName: "Ada"}
				case connector.KindLeft:
					want.Reason = "retired"
				case connector.KindRehired:
					want.Profile.Email = "ada@example.com"
					want.PreviousWorkerID = "w-0"
				case connector.KindUpdated:
					want.Profile.JobTitle = "Engineer"
				case connector.KindErasureRequested:
					want.Reason, want.Effective = "DSR-2026-0042", eventTime // in force from the event's time
				}
				if f != want {
					t.Errorf("fact\n got %+v\nwant %+v", f, want)
				}
			})
		}
	}

	hired := connector.KindHired
	tests := []struct {
		name  string
		msg   natsMsg
		dec   *Decoder // nil: dec
		field string   // "" means valid
	}{
		// The message as a whole.
		{name: "ErrNotJSON", msg: natsMsg{"hrsync.events.hr.hired", structuredHeader(), []byte("hired w-1")}, field: "body"},
		{name: "ErrJSONArray", msg: natsMsg{"hrsync.events.hr.hired", nil, []byte(`[{"id":"1"}]`)}, field: "body"},
		{name: "ErrEmptyBody", msg: natsMsg{"hrsync.events.hr.hired", nil, nil}, field: "body"},
		{name: "ErrInvalidUTF8", msg: natsMsg{"hrsync.events.hr.hired", nil, []byte("{\"id\":\"\xff\"}")}, field: "id"},
		{name: "ErrTooBig", msg: structuredMsg(t, hired, setData("job_title", strings.Repeat("x", 200))), dec: &Decoder{Feeds: testFeeds(t), MaxDataBytes: 256}, field: "data"},
		{name: "ErrTooBigDefault", msg: structuredMsg(t, hired, setData("job_title", strings.Repeat("x", 70_000))), field: "data"},
		{name: "ErrBatchContentType", msg: func() natsMsg {
			m := structuredMsg(t, hired, nil)
			m.header = nats.Header{"Content-Type": {"application/cloudevents-batch+json"}}
			return m
		}(), field: "content-type"},
		{name: "ErrPlainJSONNoHeaders", msg: func() natsMsg {
			m := structuredMsg(t, hired, nil)
			m.header = nats.Header{"Content-Type": {"application/json"}}
			return m
		}(), field: "specversion"},
		{name: "StructuredWithoutContentType", msg: func() natsMsg {
			m := structuredMsg(t, hired, nil)
			m.header = nil
			return m
		}()},
		{name: "StructuredContentTypeAnyCase", msg: func() natsMsg {
			m := structuredMsg(t, hired, nil)
			m.header = nats.Header{"Content-Type": {"application/cloudevents+json; charset=utf-8"}}
			return m
		}()},

		// The NATS subject and the feed.
		{name: "ErrSubjectNotOurs", msg: natsMsg{"orders.created", nil, structuredMsg(t, hired, nil).body}, field: "nats.subject"},
		{name: "ErrSubjectUnknownName", msg: natsMsg{"hrsync.events.hr.fired", nil, structuredMsg(t, hired, nil).body}, field: "nats.subject"},
		{name: "ErrSubjectExtraToken", msg: natsMsg{"hrsync.events.hr.hired.now", nil, structuredMsg(t, hired, nil).body}, field: "nats.subject"},
		{name: "ErrSubjectBadFeedName", msg: natsMsg{"hrsync.events.HR.hired", nil, structuredMsg(t, hired, nil).body}, field: "nats.subject"},
		{name: "ErrUndeclaredFeed", msg: natsMsg{"hrsync.events.partner-zeta.hired", nil, structuredMsg(t, hired, setAttr("source", "/feeds/partner-zeta")).body}, field: "feed"},

		// Attributes.
		{name: "ErrSpecversionMissing", msg: structuredMsg(t, hired, setAttr("specversion", nil)), field: "specversion"},
		{name: "ErrSpecversion2", msg: structuredMsg(t, hired, setAttr("specversion", "2.0")), field: "specversion"},
		{name: "ErrIDMissing", msg: structuredMsg(t, hired, setAttr("id", nil)), field: "id"},
		{name: "ErrIDEmpty", msg: structuredMsg(t, hired, setAttr("id", "")), field: "id"},
		{name: "ErrIDNumber", msg: structuredMsg(t, hired, setAttr("id", 42)), field: "id"},
		{name: "ErrIDControl", msg: structuredMsg(t, hired, setAttr("id", "evt\n1")), field: "id"},
		{name: "ErrSourceMissing", msg: structuredMsg(t, hired, setAttr("source", nil)), field: "source"},
		{name: "ErrSourceOtherFeed", msg: structuredMsg(t, hired, setAttr("source", "/feeds/partner-acme")), field: "source"},
		{name: "ErrSourceNotURI", msg: structuredMsg(t, hired, setAttr("source", "%zz")), field: "source"},
		{name: "ErrTypeMissing", msg: structuredMsg(t, hired, setAttr("type", nil)), field: "type"},
		{name: "ErrTypeV2", msg: structuredMsg(t, hired, setAttr("type", "hrsync.worker.hired.v2")), field: "type"},
		{name: "ErrTypeUnknown", msg: structuredMsg(t, hired, setAttr("type", "hrsync.worker.promoted.v1")), field: "type"},
		{name: "ErrTypeSubjectMismatch", msg: structuredMsg(t, hired, setAttr("type", Type(connector.KindLeft))), field: "type"},
		{name: "ErrSubjectMissing", msg: structuredMsg(t, hired, setAttr("subject", nil)), field: "subject"},
		{name: "ErrTimeMissing", msg: structuredMsg(t, hired, setAttr("time", nil)), field: "time"},
		{name: "ErrTimeNotRFC3339", msg: structuredMsg(t, hired, setAttr("time", "2026-11-20 09:30")), field: "time"},
		{name: "ErrDataContentTypeXML", msg: structuredMsg(t, hired, setAttr("datacontenttype", "application/xml")), field: "datacontenttype"},
		{name: "DataContentTypeCharset", msg: structuredMsg(t, hired, setAttr("datacontenttype", "application/json; charset=utf-8"))},
		{name: "ErrDataSchemaRelative", msg: structuredMsg(t, hired, setAttr("dataschema", "hired.v1.json")), field: "dataschema"},
		{name: "DataSchemaAbsolute", msg: structuredMsg(t, hired, setAttr("dataschema", SchemaID(hired)))},
		{name: "ExtensionIgnored", msg: structuredMsg(t, hired, setAttr("traceparent", "00-abc-def-01"))},
		{name: "ErrExtensionObject", msg: structuredMsg(t, hired, setAttr("trace", map[string]any{"a": 1})), field: "trace"},
		{name: "ErrDataFieldAtTopLevel", msg: structuredMsg(t, hired, setAttr("given_name", "Ada")), field: "given_name"},
		{name: "ErrDataBase64", msg: structuredMsg(t, hired, func(ev map[string]any) { delete(ev, "data"); ev["data_base64"] = "e30=" }), field: "data_base64"},

		// Data.
		{name: "ErrDataMissing", msg: structuredMsg(t, hired, setAttr("data", nil)), field: "data"},
		{name: "ErrDataString", msg: structuredMsg(t, hired, setAttr("data", "w-1")), field: "data"},
		{name: "ErrWorkerIDMissing", msg: structuredMsg(t, hired, setData("worker_id", nil)), field: "data.worker_id"},
		{name: "ErrWorkerIDNotSubject", msg: structuredMsg(t, hired, setData("worker_id", "w-2")), field: "data.worker_id"},
		{name: "ErrWorkerIDSpace", msg: structuredMsg(t, hired, func(ev map[string]any) { ev["subject"] = "w 1"; setData("worker_id", "w 1")(ev) }), field: "data.worker_id"},
		{name: "ErrEffectiveMissing", msg: structuredMsg(t, hired, setData("effective", nil)), field: "data.effective"},
		{name: "ErrEffectiveMonth13", msg: structuredMsg(t, hired, setData("effective", "2026-13-01")), field: "data.effective"},
		{name: "ErrEffectiveFeb30", msg: structuredMsg(t, hired, setData("effective", "2026-02-30")), field: "data.effective"},
		{name: "ErrEffectiveNoOffset", msg: structuredMsg(t, hired, setData("effective", "2026-12-01T18:00:00")), field: "data.effective"},
		{name: "ErrEffectiveGerman", msg: structuredMsg(t, hired, setData("effective", "01.12.2026")), field: "data.effective"},
		{name: "ErrEffectiveNumber", msg: structuredMsg(t, hired, setData("effective", 20261201)), field: "data.effective"},
		{name: "ErrTimezoneUnknown", msg: structuredMsg(t, hired, setData("timezone", "Europe/Atlantis")), field: "data.timezone"},
		{name: "ErrTimezoneLocal", msg: structuredMsg(t, hired, setData("timezone", "Local")), field: "data.timezone"},
		{name: "ErrTimezonePath", msg: structuredMsg(t, hired, setData("timezone", "../../etc/passwd")), field: "data.timezone"},
		{name: "ErrEmailMissingHired", msg: structuredMsg(t, hired, setData("email", nil)), field: "data.email"},
		{name: "ErrEmailMissingRehired", msg: structuredMsg(t, connector.KindRehired, setData("email", nil)), field: "data.email"},
		{name: "EmailOptionalLeft", msg: structuredMsg(t, connector.KindLeft, setData("email", nil))},
		{name: "ErrEmailNoAt", msg: structuredMsg(t, hired, setData("email", "ada.example.com")), field: "data.email"},
		{name: "ErrEmailDisplayName", msg: structuredMsg(t, hired, setData("email", "Ada <ada@example.com>")), field: "data.email"},
		{name: "ErrEmptyField", msg: structuredMsg(t, hired, setData("family_name", "")), field: "data.family_name"},
		{name: "ErrNullField", msg: structuredMsg(t, hired, func(ev map[string]any) { ev["data"].(map[string]any)["org_unit"] = nil }), field: "data.org_unit"},
		{name: "ErrUnknownField", msg: structuredMsg(t, hired, setData("nickname", "Ada")), field: "data.nickname"},
		{name: "ErrReasonOnHired", msg: structuredMsg(t, hired, setData("reason", "x")), field: "data.reason"},
		{name: "ErrPreviousIDOnLeft", msg: structuredMsg(t, connector.KindLeft, setData("previous_worker_id", "w-0")), field: "data.previous_worker_id"},
		{name: "ErrLocale", msg: structuredMsg(t, hired, setData("locale", "English")), field: "data.locale"},
		{name: "ErrTooLong", msg: structuredMsg(t, hired, setData("given_name", strings.Repeat("a", 257))), field: "data.given_name"},

		// Binary mode.
		{name: "BinaryHeaderNamesAnyCase", msg: binaryMsg(t, hired, func(h nats.Header, _ map[string]any) {
			for k, v := range maps.Clone(h) {
				delete(h, k)
				h["Ce-"+strings.ToUpper(k[3:4])+k[4:]] = v
			}
		})},
		{name: "BinaryPercentEncoded", msg: binaryMsg(t, hired, func(h nats.Header, d map[string]any) {
			h.Set("ce-subject", "w-%C3%B6")
			d["worker_id"] = "w-ö"
		})},
		{name: "BinaryQuoted", msg: binaryMsg(t, hired, func(h nats.Header, _ map[string]any) { h.Set("ce-id", `"evt-1"`) })},
		{name: "BinaryContentTypeHeader", msg: binaryMsg(t, hired, func(h nats.Header, _ map[string]any) {
			h.Del("ce-datacontenttype")
			h.Set("Content-Type", "application/json")
		})},
		{name: "BinaryNoDataContentType", msg: binaryMsg(t, hired, func(h nats.Header, _ map[string]any) { h.Del("ce-datacontenttype") })},
		{name: "ErrBinaryNoSpecversion", msg: binaryMsg(t, hired, func(h nats.Header, _ map[string]any) { h.Del("ce-specversion") }), field: "specversion"},
		{name: "ErrBinarySpecversion03", msg: binaryMsg(t, hired, func(h nats.Header, _ map[string]any) { h.Set("ce-specversion", "0.3") }), field: "specversion"},
		{name: "ErrBinaryBadPercent", msg: binaryMsg(t, hired, func(h nats.Header, _ map[string]any) { h.Set("ce-id", "evt%2") }), field: "id"},
		{name: "ErrBinaryOverlong", msg: binaryMsg(t, hired, func(h nats.Header, _ map[string]any) { h.Set("ce-id", "evt%C0%A0") }), field: "id"},
		{name: "ErrBinaryDuplicateHeader", msg: binaryMsg(t, hired, func(h nats.Header, _ map[string]any) { h.Set("Ce-Id", "evt-2") }), field: "id"},
		{name: "ErrBinaryTwoValues", msg: binaryMsg(t, hired, func(h nats.Header, _ map[string]any) { h.Add("ce-id", "evt-2") }), field: "id"},
		{name: "BinaryEmptyValueList", msg: binaryMsg(t, hired, func(h nats.Header, _ map[string]any) { h["ce-foo"] = []string{} })},
		{name: "ErrBinaryBadAttrName", msg: binaryMsg(t, hired, func(h nats.Header, _ map[string]any) { h.Set("ce-trace_id", "1") }), field: "trace_id"},
		{name: "ErrBinaryTime", msg: binaryMsg(t, hired, func(h nats.Header, _ map[string]any) { h.Set("ce-time", "yesterday") }), field: "time"},
		{name: "ErrBinaryContentTypeConflict", msg: binaryMsg(t, hired, func(h nats.Header, _ map[string]any) { h.Set("content-type", "text/plain") }), field: "datacontenttype"},
		{name: "ErrBinaryXML", msg: binaryMsg(t, hired, func(h nats.Header, _ map[string]any) { h.Set("ce-datacontenttype", "application/xml") }), field: "datacontenttype"},
		{name: "ErrBinaryWorkerID", msg: binaryMsg(t, hired, func(_ nats.Header, d map[string]any) { d["worker_id"] = "w-2" }), field: "data.worker_id"},
		{name: "ErrBinaryEmptyBody", msg: func() natsMsg { m := binaryMsg(t, hired, nil); m.body = nil; return m }(), field: "data"},
		{name: "ErrBinaryBodyNotJSON", msg: func() natsMsg { m := binaryMsg(t, hired, nil); m.body = []byte("worker_id=w-1"); return m }(), field: "data"},
		{name: "ErrBinaryBadEffective", msg: binaryMsg(t, hired, func(_ nats.Header, d map[string]any) { d["effective"] = "2026-12-32" }), field: "data.effective"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := dec
			if tt.dec != nil {
				d = tt.dec
			}
			f, err := d.Decode(tt.msg.subject, tt.msg.header, tt.msg.body)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if err := f.Validate(); err != nil {
					t.Fatalf("fact: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Decode accepted it: %+v", f)
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error %v (%T) is not a *ValidationError", err, err)
			}
			if !connector.IsPermanent(err) {
				t.Errorf("error %v is not permanent", err)
			}
			if ve.Field != tt.field || ve.Reason == "" {
				t.Errorf("Field = %q, want %q (%v)", ve.Field, tt.field, err)
			}
			t.Log(err)
		})
	}
}

func TestDecodeEffective(t *testing.T) {
	t.Parallel()
	dec := &Decoder{Feeds: testFeeds(t)}
	utc := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	tests := []struct {
		name      string
		feed      string
		effective string
		timezone  string
		want      time.Time
	}{
		{"DateInFeedZoneWinter", "hr", "2026-12-07", "", utc("2026-12-06T23:00:00Z")},
		{"DateInFeedZoneSummer", "hr", "2026-07-07", "", utc("2026-07-06T22:00:00Z")},
		{"DateDefaultsToUTC", "partner-acme", "2026-12-07", "", utc("2026-12-07T00:00:00Z")},
		{"DateTimeKeepsOffset", "hr", "2026-12-01T18:00:00+01:00", "", utc("2026-12-01T17:00:00Z")},
		{"DateTimeUTC", "hr", "2026-12-01T18:00:00Z", "", utc("2026-12-01T18:00:00Z")},
		{"DateTimeFraction", "hr", "2026-12-01T18:00:00.5-05:00", "", utc("2026-12-01T23:00:00.5Z")},
		{"TimezoneOverridesFeed", "hr", "2026-12-07", "America/New_York", utc("2026-12-07T05:00:00Z")},
		{"TimezoneOverridesUTCFeed", "partner-acme", "2026-12-07", "Asia/Tokyo", utc("2026-12-06T15:00:00Z")},
		{"OffsetBeatsTimezone", "hr", "2026-12-01T18:00:00+01:00", "Asia/Tokyo", utc("2026-12-01T17:00:00Z")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			data := map[string]any{"worker_id": "w-1", "email": "a@example.com", "effective": tt.effective}
			if tt.timezone != "" {
				data["timezone"] = tt.timezone
			}
			ev := baseAttrs(connector.KindHired)
			ev["source"] = "/feeds/" + tt.feed
			ev["data"] = data
			body, _ := json.Marshal(ev)
			f, err := dec.Decode(Subject(tt.feed, connector.KindHired), structuredHeader(), body)
			if err != nil {
				t.Fatal(err)
			}
			if !f.Effective.Equal(tt.want) || f.Effective.Location() != time.UTC {
				t.Errorf("Effective = %v, want %v in UTC", f.Effective, tt.want)
			}
		})
	}
}

func testEvent(k connector.Kind) Event {
	if k == connector.KindErasureRequested {
		return Event{Feed: "hr", Kind: k, ID: "evt-1", Source: "/feeds/hr", Time: eventTime,
			Data: Data{WorkerID: "w-1", Reason: "DSR-2026-0042", RequestedBy: "privacy-office@example.com"}}
	}
	return Event{
		Feed: "hr", Kind: k, ID: "evt-1", Source: "/feeds/hr", Time: eventTime,
		Data: Data{WorkerID: "w-1", Email: "ada@example.com", GivenName: "Ada", Effective: "2026-12-01T09:00:00Z"},
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	t.Parallel()
	dec := &Decoder{Feeds: testFeeds(t)}
	for _, mode := range []Mode{Structured, Binary} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			e := testEvent(connector.KindRehired)
			e.Data.WorkerID = "wörker-1" // non-ASCII: percent-encoded in binary mode
			e.Data.PreviousWorkerID = "w-0"
			e.Data.FamilyName = `Lovelace "Byron" 100%`
			e.Time = time.Date(2026, 11, 20, 10, 30, 0, 123456789, time.FixedZone("", 3600))
			msg, err := Encode(e, mode)
			if err != nil {
				t.Fatal(err)
			}
			if msg.Subject != "hrsync.events.hr.rehired" {
				t.Errorf("Subject = %q", msg.Subject)
			}
			if got := msg.Header.Get(jetstream.MsgIDHeader); got != "/feeds/hr evt-1" {
				t.Errorf("Nats-Msg-Id = %q", got)
			}
			switch mode {
			case Structured:
				if ct := msg.Header.Get("content-type"); ct != ContentTypeStructured {
					t.Errorf("content-type = %q", ct)
				}
			case Binary:
				if msg.Header.Get("ce-specversion") != "1.0" || msg.Header.Get("ce-type") != Type(connector.KindRehired) {
					t.Errorf("headers = %v", msg.Header)
				}
				for k, vs := range msg.Header {
					for _, v := range vs {
						for _, c := range []byte(v) {
							if c < 0x21 && k != jetstream.MsgIDHeader || c > 0x7e {
								t.Errorf("header %s = %q is not percent-encoded", k, v)
							}
						}
					}
				}
			}
			f, err := dec.Decode(msg.Subject, msg.Header, msg.Data)
			if err != nil {
				t.Fatalf("Decode(Encode(e)): %v\nheaders %v\nbody %s", err, msg.Header, msg.Data)
			}
			want := connector.Fact{
				Feed: "hr", WorkerID: e.Data.WorkerID, Source: "/feeds/hr", ID: "evt-1", Kind: connector.KindRehired,
				Effective: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC), Time: e.Time.UTC(),
				Profile:          connector.Profile{Email: "ada@example.com", GivenName: "Ada", FamilyName: e.Data.FamilyName},
				PreviousWorkerID: "w-0",
			}
			if f != want {
				t.Errorf("fact\n got %+v\nwant %+v", f, want)
			}
		})
	}
}

func TestCheckEvent(t *testing.T) {
	t.Parallel()
	feeds := testFeeds(t)
	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		for _, k := range connector.Kinds {
			e := testEvent(k)
			if k == connector.KindLeft || k == connector.KindUpdated {
				e.Data.Email = ""
			}
			if err := CheckEvent(e, feeds); err != nil {
				t.Errorf("%s: %v", k, err)
			}
		}
	})
	t.Run("ErrSameAsDaemon", func(t *testing.T) {
		t.Parallel()
		e := testEvent(connector.KindHired)
		e.Data.Effective = "2026-13-01"
		err := CheckEvent(e, feeds)
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Field != "data.effective" {
			t.Fatalf("CheckEvent = %v, want field data.effective", err)
		}
		const want = `field "data.effective": not an RFC 3339 date or date-time: "2026-13-01"`
		if err.Error() != want {
			t.Errorf("error = %q, want %q", err, want)
		}
		// The daemon sees the same message whichever mode the publisher picks.
		msg, _ := Encode(e, Binary)
		_, derr := (&Decoder{Feeds: feeds}).Decode(msg.Subject, msg.Header, msg.Data)
		if derr == nil || derr.Error() != err.Error() {
			t.Errorf("daemon says %v, CheckEvent says %v", derr, err)
		}
	})
	t.Run("ErrUndeclaredFeed", func(t *testing.T) {
		t.Parallel()
		e := testEvent(connector.KindHired)
		e.Feed, e.Source = "payroll", "/feeds/payroll"
		var ve *ValidationError
		if err := CheckEvent(e, feeds); !errors.As(err, &ve) || ve.Field != "feed" {
			t.Errorf("CheckEvent = %v, want field feed", err)
		}
	})
	t.Run("ErrSourceNotURI", func(t *testing.T) {
		t.Parallel()
		e := testEvent(connector.KindHired)
		e.Source = "%zz"
		var ve *ValidationError
		if err := CheckEvent(e, feeds); !errors.As(err, &ve) || ve.Field != "source" {
			t.Errorf("CheckEvent = %v, want field source", err)
		}
		if _, err := Encode(e, Binary); err == nil {
			t.Error("Encode accepted a source that is not a URI-reference")
		}
	})
	t.Run("ErrBadFeedName", func(t *testing.T) {
		t.Parallel()
		e := testEvent(connector.KindHired)
		e.Feed = "HR team"
		var ve *ValidationError
		if err := CheckEvent(e, feeds); !errors.As(err, &ve) || ve.Field != "nats.subject" {
			t.Errorf("CheckEvent = %v, want field nats.subject", err)
		}
	})
}

func TestReplayMessage(t *testing.T) {
	t.Parallel()
	dec := &Decoder{Feeds: testFeeds(t)}
	for _, mode := range []Mode{Structured, Binary} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			e := testEvent(connector.KindHired)
			e.Source = "/feeds/old-name"
			msg, err := Encode(e, mode)
			if err != nil {
				t.Fatal(err)
			}
			_, derr := dec.Decode(msg.Subject, msg.Header, msg.Data)
			if derr == nil {
				t.Fatal("want a rejection")
			}
			d := connector.DeadLetter{ID: 7, Feed: "hr", Subject: msg.Subject, Headers: HeadersJSON(msg.Header), Data: msg.Data, Reason: derr.Error()}
			replay, err := ReplayMessage(d)
			if err != nil {
				t.Fatal(err)
			}
			if _, rerr := dec.Decode(replay.Subject, replay.Header, replay.Data); rerr == nil || rerr.Error() != d.Reason {
				t.Errorf("replay before the fix: %v, want %s", rerr, d.Reason)
			}
			// The operator fixes the feed's source; the replay now decodes.
			feeds := testFeeds(t)
			hr := feeds["hr"]
			hr.Source = "/feeds/old-name"
			feeds["hr"] = hr
			if _, err := (&Decoder{Feeds: feeds}).Decode(replay.Subject, replay.Header, replay.Data); err != nil {
				t.Errorf("replay after the fix: %v", err)
			}
		})
	}
	t.Run("NoHeaders", func(t *testing.T) {
		t.Parallel()
		if HeadersJSON(nil) != nil {
			t.Error("HeadersJSON(nil) != nil")
		}
		m, err := ReplayMessage(connector.DeadLetter{Subject: "x", Data: []byte("y")})
		if err != nil || m.Header != nil || m.Subject != "x" || string(m.Data) != "y" {
			t.Errorf("ReplayMessage = %+v, %v", m, err)
		}
	})
	t.Run("ErrBadHeaders", func(t *testing.T) {
		t.Parallel()
		if _, err := ReplayMessage(connector.DeadLetter{Headers: []byte("{")}); err == nil {
			t.Error("want an error")
		}
	})
}

func TestHeaderEscaping(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "plain", "Euro € 😀", `quote " percent % space`, "tab\tnewline\n", "\x7f\u0080"} {
		enc := escapeHeaderValue(s)
		for _, c := range []byte(enc) {
			if c < 0x21 || c > 0x7e || c == '"' {
				t.Errorf("escape(%q) = %q has %q", s, enc, c)
			}
		}
		dec, err := unescapeHeaderValue(enc)
		if err != nil || dec != s {
			t.Errorf("unescape(escape(%q)) = %q, %v", s, dec, err)
		}
	}
	if got := escapeHeaderValue("Euro € 😀"); got != "Euro%20%E2%82%AC%20%F0%9F%98%80" {
		t.Errorf("escape = %q (the binding's own example)", got)
	}
	if got, err := unescapeHeaderValue("%e2%82%ac"); err != nil || got != "€" {
		t.Errorf("lower-case hex: %q, %v", got, err)
	}
}
