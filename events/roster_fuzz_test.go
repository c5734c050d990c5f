package events

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/hrsync/hrsync/connector"
)

// FuzzParseRoster checks that ParseRoster never panics; that every rejection is a
// *RosterErrors whose problems have a reason and a line ≥ 1, or line 0 for the file
// as a whole; and that every accepted file yields rows with a worker id and
// events that pass CheckEvent (one of each kind per input), in both modes.
//
//	go test -run '^$' -fuzz FuzzParseRoster -fuzztime 20s -fuzzminimizetime 1s ./events/
//
// A short -fuzzminimizetime matters here: the package's test binary is large (it
// embeds a NATS server), and the default minute of minimising each new input
// stalls a short run.
func FuzzParseRoster(f *testing.F) {
	b := setupRoster(f)
	for _, name := range []string{"partner-acme-snapshot.csv", "partner-acme-delta.csv"} {
		data := readSample(f, name)
		f.Add(data, false)
		f.Add(data, true)
	}
	for _, s := range []string{
		"", "\uFEFF", "worker_id,email\n", "worker_id,email\nw1,a@example.com\n",
		"worker_id;email;action\nw1;a@example.com;add\nw2;;remove\n",
		"worker_id,email,given_name\nw1,a@example.com,\"Ada\n",
		"worker_id,email\nw1,a@example.com\nw1,b@example.com\n",
		"worker_id,email,family_name\nw1,a@example.com,M\xfcller\n",
		"worker_id,email,effective,timezone\nw1,a@example.com,2026-12-01T18:00:00+01:00,Europe/Berlin\n",
		"worker_id,email,previous_worker_id,reason,locale\nw2,a@example.com,w1,gone,de-DE\n",
		"\"worker_id\",\"email\"\r\n\"w1\",\"a\"\"b@example.com\"\r\n",
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	current := []Member{
		{WorkerID: "w1", Active: true, Profile: connector.Profile{Email: "a@example.com"}},
		{WorkerID: "w2"},
		{WorkerID: "A-1001", Active: true},
		{WorkerID: "A-1004"},
	}

	f.Fuzz(func(t *testing.T, data []byte, delta bool) {
		mode := RosterSnapshot
		if delta {
			mode = RosterDelta
		}
		r, err := ParseRoster(bytes.NewReader(data), b.mapping, RosterOptions{Mode: mode, MaxErrors: 10})
		if err != nil {
			var re *RosterErrors
			if !errors.As(err, &re) {
				t.Fatalf("error %v (%T) is not a *RosterErrors", err, err)
			}
			if re.Total < len(re.Errors) || len(re.Errors) == 0 || len(re.Errors) > 10 {
				t.Fatalf("%d errors kept of %d", len(re.Errors), re.Total)
			}
			for _, e := range re.Errors {
				if e.Line < 0 || e.Reason == "" || !utf8.ValidString(e.Error()) {
					t.Fatalf("bad problem %#v", e)
				}
				if e.Line == 0 && e.Field != "" {
					t.Fatalf("file-level problem with a field %#v", e)
				}
			}
			return
		}
		if len(r.Rows) == 0 {
			t.Fatal("accepted a roster without rows")
		}
		seen := map[string]bool{}
		for _, row := range r.Rows {
			if row.Line < 2 || row.WorkerID == "" || seen[row.WorkerID] || strings.TrimSpace(row.WorkerID) != row.WorkerID {
				t.Fatalf("bad row %+v", row)
			}
			seen[row.WorkerID] = true
		}
		evs, _, err := r.Events(b.feed, current, b.upload)
		if err != nil {
			var re *RosterErrors
			if !errors.As(err, &re) {
				t.Fatalf("Events: %v (%T)", err, err)
			}
			return
		}
		// CheckEvent is slow under coverage instrumentation: check one event of
		// each kind per input (the unit tests check every event).
		checked := map[connector.Kind]bool{}
		for _, e := range evs {
			if checked[e.Kind] {
				continue
			}
			checked[e.Kind] = true
			if err := CheckEvent(e, b.feeds); err != nil {
				t.Fatalf("event %+v breaks the contract: %v", e, err)
			}
		}
	})
}
