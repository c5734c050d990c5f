package events

import (
	"bytes"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
)

// TestEncodeBinaryMatchesSDK checks that Encode's binary mode writes the message
// the CloudEvents SDK writes, header for header and byte for byte.
func TestEncodeBinaryMatchesSDK(t *testing.T) {
	t.Parallel()
	var es []Event
	for _, k := range connector.Kinds {
		es = append(es, testEvent(k))
	}
	e := testEvent(connector.KindRehired)
	e.Data.WorkerID = "wörker-1\u0085"
	e.Data.PreviousWorkerID = "w-0"
	e.Data.FamilyName = `Lovelace "Byron" 100% <&> ` + "\u2028\t"
	e.ID = "id with spaces %41 \"q\" é\x01"
	e.Source = "/feeds/hr?x=1#f"
	e.Time = time.Date(2026, 11, 20, 10, 30, 0, 123456789, time.FixedZone("", 3600))
	es = append(es, e)
	e.Time = time.Date(2026, 11, 20, 10, 30, 0, 0, time.UTC)
	e.Source = "https://hr.example.com/feeds/hr"
	es = append(es, e)
	for _, e := range es {
		got, err := Encode(e, Binary)
		if err != nil {
			t.Fatal(err)
		}
		want, err := encodeSDK(e, Binary)
		if err != nil {
			t.Fatal(err)
		}
		if got.Subject != want.Subject || !bytes.Equal(got.Data, want.Data) {
			t.Errorf("%+v:\n got %s %s\nwant %s %s", e, got.Subject, got.Data, want.Subject, want.Data)
		}
		keys := slices.Sorted(maps.Keys(want.Header))
		if gk := slices.Sorted(maps.Keys(got.Header)); !slices.Equal(gk, keys) {
			t.Errorf("%+v: headers %v, want %v", e, gk, keys)
		}
		for _, k := range keys {
			if !slices.Equal(got.Header[k], want.Header[k]) {
				t.Errorf("%+v: header %s = %q, want %q", e, k, got.Header[k], want.Header[k])
			}
		}
	}
}
