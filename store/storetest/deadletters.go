package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
)

// DeadLetterRetentionStore is what the dead-letter retention cases exercise beyond
// Store. *store.DB implements it.
type DeadLetterRetentionStore interface {
	PruneDeadLetters(ctx context.Context, before time.Time) (int, error)
}

var _ DeadLetterRetentionStore = (*store.DB)(nil)

// deadLetterTests check that a dead letter's body is capped (the default
// cap) with its size and hash recorded, and that pruning drops the raw message
// of old rows only, keeps everything else, and is idempotent.
var deadLetterTests = []subTest{
	{"DeadLetterCap", testDeadLetterCap},
	{"DeadLetterPrune", testDeadLetterPrune},
}

func testDeadLetterCap(t *testing.T, b *testBundle) {
	big := bytes.Repeat([]byte("0123456789abcdef"), (store.DefaultDeadLetterMaxBody+1000)/16)
	sum := sha256.Sum256(big)
	id, err := b.s.DeadLetter(b.ctx, connector.DeadLetter{At: day(1), Feed: "partner-acme", Subject: "hrsync.events.partner-acme.hired",
		Headers: []byte(`{"Ce-Id":["1"]}`), Data: big, Reason: `field "data": message body is too big`})
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.s.GetDeadLetter(b.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Data) != store.DefaultDeadLetterMaxBody || !bytes.Equal(got.Data, big[:store.DefaultDeadLetterMaxBody]) || !got.Truncated ||
		got.DataBytes != int64(len(big)) || got.DataSHA256 != hex.EncodeToString(sum[:]) || string(got.Headers) != `{"Ce-Id":["1"]}` {
		t.Fatalf("capped dead letter: %d bytes kept, truncated %v, size %d, sha256 %s; want %d, true, %d, %x",
			len(got.Data), got.Truncated, got.DataBytes, got.DataSHA256, store.DefaultDeadLetterMaxBody, len(big), sum)
	}

	small := []byte(`{"specversion":"1.0"}`)
	sum = sha256.Sum256(small)
	id, err = b.s.DeadLetter(b.ctx, connector.DeadLetter{At: day(1), Subject: "hrsync.events.hr.hired", Data: small, Reason: "bad"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.s.GetDeadLetter(b.ctx, id); err != nil || string(got.Data) != string(small) || got.Truncated ||
		got.DataBytes != int64(len(small)) || got.DataSHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("small dead letter = %+v, %v; want it whole with its size and hash", got, err)
	}
}

func testDeadLetterPrune(t *testing.T, b *testBundle) {
	ps, ok := b.s.(DeadLetterRetentionStore)
	if !ok {
		t.Fatalf("%T does not implement storetest.DeadLetterRetentionStore", b.s)
	}
	old := connector.DeadLetter{At: day(1), Feed: "hr", Subject: "hrsync.events.hr.hired", Headers: []byte(`{"Ce-Id":["1"]}`),
		Data: []byte(`{"id":"1"}`), Reason: "old", Stream: "HRSYNC", StreamSeq: 7}
	recent := connector.DeadLetter{At: day(40), Feed: "hr", Subject: "hrsync.events.hr.left", Headers: []byte(`{"Ce-Id":["2"]}`),
		Data: []byte(`{"id":"2"}`), Reason: "recent"}
	oldID, err := b.s.DeadLetter(b.ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	recentID, err := b.s.DeadLetter(b.ctx, recent)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := b.s.GetDeadLetter(b.ctx, oldID)

	n, err := ps.PruneDeadLetters(b.ctx, day(10))
	if err != nil || n != 1 {
		t.Fatalf("PruneDeadLetters = %d, %v; want 1", n, err)
	}
	got, err := b.s.GetDeadLetter(b.ctx, oldID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Data != nil || got.Headers != nil || got.PrunedAt == nil {
		t.Fatalf("pruned dead letter kept its message: %+v", got)
	}
	if !got.At.Equal(old.At) || got.Feed != old.Feed || got.Subject != old.Subject || got.Reason != old.Reason ||
		got.Stream != old.Stream || got.StreamSeq != old.StreamSeq || got.DataBytes != before.DataBytes ||
		got.DataSHA256 != before.DataSHA256 || got.DataSHA256 == "" {
		t.Fatalf("pruned dead letter = %+v, want the row of %+v without its message", got, before)
	}
	if got, err := b.s.GetDeadLetter(b.ctx, recentID); err != nil || string(got.Data) != string(recent.Data) ||
		string(got.Headers) != string(recent.Headers) || got.PrunedAt != nil {
		t.Fatalf("recent dead letter = %+v, %v; want it whole", got, err)
	}
	// Still listed, and still counted until replayed.
	if ds, err := b.s.ListDeadLetters(b.ctx, store.DeadLetterFilter{}); err != nil || len(ds) != 2 {
		t.Fatalf("ListDeadLetters = %d rows, %v; want 2", len(ds), err)
	}
	prunedAt := *got.PrunedAt
	if n, err := ps.PruneDeadLetters(b.ctx, day(10)); err != nil || n != 0 {
		t.Fatalf("second PruneDeadLetters = %d, %v; want 0", n, err)
	}
	if got, _ := b.s.GetDeadLetter(b.ctx, oldID); got.PrunedAt == nil || !got.PrunedAt.Equal(prunedAt) {
		t.Fatalf("a second prune moved pruned_at: %v, want %v", got.PrunedAt, prunedAt)
	}
	// A redelivery of the pruned message is still recognised as stored.
	if id, err := b.s.DeadLetter(b.ctx, old); err != nil || id != oldID {
		t.Fatalf("DeadLetter(redelivery of a pruned message) = %d, %v; want %d", id, err, oldID)
	}
}
