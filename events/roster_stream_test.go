package events

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/hrsync/hrsync/connector"
)

// TestStreamRosterMatchesParseAndEvents: StreamRoster, which keeps no rows, emits
// the same events in the same order, the same summary and the same errors as
// ParseRoster followed by Roster.Events, on valid and invalid files of both modes.
func TestStreamRosterMatchesParseAndEvents(t *testing.T) {
	t.Parallel()
	b := setupRoster(t)
	big, bigCurrent := rosterFile(3000)
	current := []Member{
		{WorkerID: "w1", Active: true, Profile: connector.Profile{Email: "a@example.com"}},
		{WorkerID: "w2"},
		{WorkerID: "w3", Active: true},
		{WorkerID: "A-1001", Active: true},
		{WorkerID: "A-1004"},
	}
	tests := []struct {
		name    string
		mode    RosterMode
		data    []byte
		current []Member
	}{
		{"SnapshotSample", RosterSnapshot, readSample(t, "partner-acme-snapshot.csv"), current},
		{"DeltaSample", RosterDelta, readSample(t, "partner-acme-delta.csv"), current},
		{"Snapshot3000", RosterSnapshot, big, bigCurrent},
		{"DeltaRemoves", RosterDelta, []byte("worker_id;email;action\nw1;;remove\nw2;;remove\nw9;;remove\nw4;d@example.com;add\n"), current},
		{"ErrDuplicate", RosterSnapshot, []byte("worker_id,email\nw4,a@example.com\nw4,b@example.com\n"), current},
		{"ErrEmailRequired", RosterSnapshot, []byte("worker_id,email\nw1,a@example.com\nw4,\nw5,\n"), current},
		{"ErrParseBeforeEvents", RosterSnapshot, []byte("worker_id,email\nw4,\nw5,bob@\n"), current},
		{"ErrQuote", RosterSnapshot, []byte("worker_id,email\nw4,\"a@example.com\nw5,b@example.com\n"), current},
		{"ErrEmpty", RosterDelta, nil, current},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			wantEvs, wantSum, wantErr := func() ([]Event, RosterSummary, error) {
				r, err := ParseRoster(bytes.NewReader(tt.data), b.mapping, RosterOptions{Mode: tt.mode})
				if err != nil {
					return nil, RosterSummary{}, err
				}
				up := b.upload
				up.SHA256 = r.SHA256
				return r.Events(b.feed, tt.current, up)
			}()
			var got []Event
			ro, sum, err := StreamRoster(bytes.NewReader(tt.data), b.mapping, RosterOptions{Mode: tt.mode}, b.feed, tt.current,
				b.upload, func(e Event) error { got = append(got, e); return nil })
			if fmt.Sprint(err) != fmt.Sprint(wantErr) {
				t.Fatalf("error:\n%v\nwant:\n%v", err, wantErr)
			}
			if wantErr != nil {
				var re *RosterErrors
				if errors.As(wantErr, &re) && !errors.As(err, &re) {
					t.Fatalf("error %T is not a *RosterErrors", err)
				}
				return
			}
			if !reflect.DeepEqual(got, wantEvs) {
				t.Fatalf("%d events, want %d; first difference at %d", len(got), len(wantEvs), firstDiff(got, wantEvs))
			}
			if !reflect.DeepEqual(sum, wantSum) {
				t.Fatalf("summary %+v\nwant    %+v", sum, wantSum)
			}
			if ro.Rows != nil || ro.SHA256 != sum.SHA256 || ro.Bytes != int64(len(tt.data)) {
				t.Fatalf("roster: %d rows kept, sha %s (summary %s), %d bytes", len(ro.Rows), ro.SHA256, sum.SHA256, ro.Bytes)
			}
		})
	}
}

// TestStreamRosterEmitError: an error from emit stops the read and comes back
// as it is.
func TestStreamRosterEmitError(t *testing.T) {
	t.Parallel()
	b := setupRoster(t)
	data, current := rosterFile(1000)
	stop := errors.New("spool full")
	calls := 0
	_, _, err := StreamRoster(bytes.NewReader(data), b.mapping, RosterOptions{Mode: RosterSnapshot}, b.feed, current, b.upload,
		func(Event) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("err %v after %d calls; want the emit error after 1", err, calls)
	}
}

func firstDiff(a, b []Event) int {
	for i := range min(len(a), len(b)) {
		if !reflect.DeepEqual(a[i], b[i]) {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestParseRosterUnclosedQuote: a quote that is never closed makes one record of
// the rest of the file; the reader stops after maxRecordBytes instead of holding
// it all, and names the line the record starts on.
func TestParseRosterUnclosedQuote(t *testing.T) {
	t.Parallel()
	b := setupRoster(t)
	var buf bytes.Buffer
	buf.WriteString("worker_id,email\nw1,a@example.com\nw2,\"b@example.com\n")
	for buf.Len() < 3*maxRecordBytes {
		buf.WriteString("more text of a field that never ends\n")
	}
	size := buf.Len()
	cr := &countingReader{r: &buf, h: sha256.New()}
	_, err := ParseRoster(cr, b.mapping, RosterOptions{Mode: RosterSnapshot})
	var re *RosterErrors
	if !errors.As(err, &re) || len(re.Errors) != 1 || re.Errors[0].Line != 3 || !strings.Contains(re.Errors[0].Reason, "is a quote not closed") {
		t.Fatalf("error %v, want one problem on line 3: a quote not closed", err)
	}
	if cr.n > 2*maxRecordBytes || cr.n >= int64(size) {
		t.Fatalf("read %d of %d bytes, want about %d", cr.n, size, maxRecordBytes)
	}
}
