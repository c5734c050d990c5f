package events

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hrsync/hrsync/connector"
)

// headerText renders h as "name: value" lines, the fuzzer's view of headers.
func headerText(h nats.Header) string {
	var b strings.Builder
	for k, vs := range h {
		for _, v := range vs {
			b.WriteString(k + ": " + v + "\n")
		}
	}
	return b.String()
}

// parseHeaderText is the inverse of headerText; lines without ": " become keys
// with no values, which a nats.Header can hold too.
func parseHeaderText(s string) nats.Header {
	if s == "" {
		return nil
	}
	h := nats.Header{}
	for _, line := range strings.Split(s, "\n") {
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			h[k] = []string{}
			continue
		}
		h[k] = append(h[k], v)
	}
	return h
}

// FuzzDecode checks that Decode never panics, that every rejection is a permanent
// *ValidationError with a field and a reason, and that every accepted message
// yields a valid fact with UTC times.
func FuzzDecode(f *testing.F) {
	for name, tc := range fixtureCases {
		body, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(tc.subject, headerText(structuredHeader()), body)
	}
	for _, k := range connector.Kinds {
		for _, mode := range []Mode{Structured, Binary} {
			msg, err := Encode(testEvent(k), mode)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(msg.Subject, headerText(msg.Header), msg.Data)
		}
	}
	f.Add("hrsync.events.hr.hired", "", []byte(`{"data_base64":1,"specversion":"1.0"}`))
	f.Add("hrsync.events.hr.hired", "ce-specversion: 1.0\nce-id\n", []byte(`{}`))

	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		f.Fatal(err)
	}
	hr := connector.DefaultFeed("hr", connector.FeedHR)
	hr.Location = berlin
	feeds, err := connector.NewFeeds(hr, connector.DefaultFeed("partner-acme", connector.FeedPartner))
	if err != nil {
		f.Fatal(err)
	}
	dec := &Decoder{Feeds: feeds, MaxDataBytes: 16 << 10}

	f.Fuzz(func(t *testing.T, subject, header string, body []byte) {
		fact, err := dec.Decode(subject, parseHeaderText(header), body)
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error %v (%T) is not a *ValidationError", err, err)
			}
			if ve.Field == "" || ve.Reason == "" {
				t.Fatalf("empty field or reason: %#v", ve)
			}
			if !connector.IsPermanent(err) {
				t.Fatalf("error %v is not permanent", err)
			}
			return
		}
		if err := fact.Validate(); err != nil {
			t.Fatalf("accepted an invalid fact %+v: %v", fact, err)
		}
		if fact.Effective.Location() != time.UTC || fact.Time.Location() != time.UTC {
			t.Fatalf("times not in UTC: %+v", fact)
		}
		if fact.Source != feeds[fact.Feed].Source || Subject(fact.Feed, fact.Kind) != subject {
			t.Fatalf("fact %+v does not match subject %q", fact, subject)
		}
	})
}
