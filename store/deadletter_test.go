package store_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/events"
)

// TestDeadLetterMaxBody checks that a configured cap applies to the body and the
// headers, and that such a dead letter refuses to be replayed.
func TestDeadLetterMaxBody(t *testing.T) {
	t.Parallel()
	db := mustOpen(t, sqliteURL(t))
	db.DeadLetterMaxBody = 16
	body := bytes.Repeat([]byte("x"), 100)
	id, err := db.DeadLetter(t.Context(), connector.DeadLetter{Subject: "hrsync.events.hr.hired",
		Headers: []byte(`{"Ce-Id":["a-long-event-id"]}`), Data: body, Reason: "too big"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := db.GetDeadLetter(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Data) != string(body[:16]) || string(got.Headers) != `{"Ce-Id":["a-lon` || !got.Truncated || got.DataBytes != 100 {
		t.Fatalf("dead letter = %+v; want 16 bytes of each, truncated, size 100", got)
	}
	if _, err := events.ReplayMessage(got); err == nil {
		t.Fatal("ReplayMessage rebuilt a truncated message")
	}
	if n, err := db.PruneDeadLetters(t.Context(), time.Now().Add(time.Hour)); err != nil || n != 1 {
		t.Fatalf("PruneDeadLetters = %d, %v", n, err)
	}
	got, _ = db.GetDeadLetter(t.Context(), id)
	if _, err := events.ReplayMessage(got); err == nil {
		t.Fatal("ReplayMessage rebuilt a pruned message")
	}
}
