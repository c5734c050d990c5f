package events

import (
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/hrsync/hrsync/connector"
)

// TestDecodeErasureRequested decodes hrsync.worker.erasure_requested.v1: who, why
// and by whom, no profile and no date; every rejection names its field.
func TestDecodeErasureRequested(t *testing.T) {
	t.Parallel()
	dec := &Decoder{Feeds: testFeeds(t)}
	erase := connector.KindErasureRequested
	partner := func(m natsMsg) natsMsg {
		m.subject = Subject("partner-acme", erase)
		return m
	}
	tests := []struct {
		name        string
		msg         natsMsg
		field       string // "" means valid
		requestedBy string // of the valid fact
	}{
		{name: "OK", msg: structuredMsg(t, erase, nil)},
		{name: "OKBinary", msg: binaryMsg(t, erase, nil)},
		{name: "OKRequestedBy", msg: structuredMsg(t, erase, setData("requested_by", "privacy-office@example.com")), requestedBy: "privacy-office@example.com"},
		{name: "OKBinaryRequestedBy", msg: binaryMsg(t, erase, func(_ nats.Header, d map[string]any) { d["requested_by"] = "dpo" }), requestedBy: "dpo"},
		{name: "OKPartnerFeed", msg: partner(structuredMsg(t, erase, setAttr("source", "/feeds/partner-acme")))},

		{name: "ErrReasonMissing", msg: structuredMsg(t, erase, setData("reason", nil)), field: "data.reason"},
		{name: "ErrReasonEmpty", msg: structuredMsg(t, erase, setData("reason", "")), field: "data.reason"},
		{name: "ErrReasonBlank", msg: structuredMsg(t, erase, setData("reason", " \t ")), field: "data.reason"},
		{name: "ErrReasonControl", msg: structuredMsg(t, erase, setData("reason", "DSR\x00-1")), field: "data.reason"},
		{name: "ErrReasonTooLong", msg: structuredMsg(t, erase, setData("reason", strings.Repeat("x", 1025))), field: "data.reason"},
		{name: "ErrReasonNumber", msg: structuredMsg(t, erase, setData("reason", 42)), field: "data.reason"},
		{name: "ErrRequestedByEmpty", msg: structuredMsg(t, erase, setData("requested_by", "")), field: "data.requested_by"},
		{name: "ErrRequestedByNull", msg: structuredMsg(t, erase, setData("requested_by", []any{})), field: "data.requested_by"},
		{name: "ErrRequestedByTooLong", msg: structuredMsg(t, erase, setData("requested_by", strings.Repeat("x", 257))), field: "data.requested_by"},
		{name: "ErrWorkerIDMissing", msg: structuredMsg(t, erase, setData("worker_id", nil)), field: "data.worker_id"},
		{name: "ErrEffective", msg: structuredMsg(t, erase, setData("effective", "2026-12-01")), field: "data.effective"},
		{name: "ErrTimezone", msg: structuredMsg(t, erase, setData("timezone", "Europe/Berlin")), field: "data.timezone"},
		{name: "ErrEmail", msg: structuredMsg(t, erase, setData("email", "ada@example.com")), field: "data.email"},
		{name: "ErrPreviousWorkerID", msg: structuredMsg(t, erase, setData("previous_worker_id", "w-0")), field: "data.previous_worker_id"},
		// The subject, source and feed rules of every worker event.
		{name: "ErrWorkerIDNotSubject", msg: structuredMsg(t, erase, setData("worker_id", "w-2")), field: "data.worker_id"},
		{name: "ErrSourceOtherFeed", msg: structuredMsg(t, erase, setAttr("source", "/feeds/partner-acme")), field: "source"},
		{name: "ErrPartnerSpeaksForHR", msg: partner(structuredMsg(t, erase, nil)), field: "source"},
		{name: "ErrUndeclaredFeed", msg: natsMsg{Subject("partner-zeta", erase), structuredHeader(),
			structuredMsg(t, erase, setAttr("source", "/feeds/partner-zeta")).body}, field: "feed"},
		{name: "ErrOnHiredSubject", msg: natsMsg{Subject("hr", connector.KindHired), structuredHeader(), structuredMsg(t, erase, nil).body}, field: "type"},
		{name: "ErrHiredOnErasureSubject", msg: natsMsg{Subject("hr", erase), structuredHeader(), structuredMsg(t, connector.KindHired, nil).body}, field: "type"},
		{name: "ErrSubjectMissing", msg: structuredMsg(t, erase, setAttr("subject", nil)), field: "subject"},
		{name: "ErrTypeV2", msg: structuredMsg(t, erase, setAttr("type", "hrsync.worker.erasure_requested.v2")), field: "type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := dec.Decode(tt.msg.subject, tt.msg.header, tt.msg.body)
			if tt.field != "" {
				var ve *ValidationError
				if !errors.As(err, &ve) || !connector.IsPermanent(err) {
					t.Fatalf("Decode error = %v, want a permanent *ValidationError on %s", err, tt.field)
				}
				if ve.Field != tt.field {
					t.Errorf("Field = %q, want %q (%v)", ve.Field, tt.field, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			want := connector.Fact{Feed: feedOfSubject(tt.msg.subject), WorkerID: "w-1", Source: "/feeds/" + feedOfSubject(tt.msg.subject),
				ID: "evt-1", Kind: erase, Effective: eventTime, Time: eventTime, Reason: "DSR-2026-0042", RequestedBy: tt.requestedBy}
			if f != want {
				t.Errorf("fact\n got %+v\nwant %+v", f, want)
			}
		})
	}
}

// TestErasureRequestedRoundTrip: an erasure request published with Encode (both
// modes) decodes to the same request, and CheckEvent names a missing reason.
func TestErasureRequestedRoundTrip(t *testing.T) {
	t.Parallel()
	feeds := testFeeds(t)
	dec := &Decoder{Feeds: feeds}
	e := testEvent(connector.KindErasureRequested)
	for _, mode := range []Mode{Structured, Binary} {
		msg, err := Encode(e, mode)
		if err != nil {
			t.Fatal(err)
		}
		if msg.Subject != "hrsync.events.hr.erasure_requested" {
			t.Errorf("Subject = %q", msg.Subject)
		}
		f, err := dec.Decode(msg.Subject, msg.Header, msg.Data)
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		if f.Kind != connector.KindErasureRequested || f.Reason != e.Data.Reason || f.RequestedBy != e.Data.RequestedBy || !f.Effective.Equal(e.Time) {
			t.Errorf("%s: fact %+v", mode, f)
		}
	}
	e.Data.Reason = ""
	var ve *ValidationError
	if err := CheckEvent(e, feeds); !errors.As(err, &ve) || ve.Field != "data.reason" {
		t.Errorf("CheckEvent without a reason = %v; want data.reason", err)
	}
}
