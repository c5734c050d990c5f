package store_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
	"github.com/hrsync/hrsync/store/pgtest"
)

// hireOf is a hire fact of worker, with a unique event id.
func hireOf(worker string, n int) []connector.Fact {
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	return []connector.Fact{{Feed: "hr", WorkerID: worker, Source: "/feeds/hr", ID: fmt.Sprintf("hire-%s-%d", worker, n),
		Kind: connector.KindHired, Effective: t0, Time: t0, Profile: connector.Profile{Email: worker + "@example.com"}}}
}

func TestErasureKeysSQLite(t *testing.T) {
	t.Parallel()
	testErasureKeys(t, func(t *testing.T) string { return sqliteURL(t) })
}

func TestErasureKeysPostgres(t *testing.T) {
	t.Parallel()
	testErasureKeys(t, func(t *testing.T) string { return pgtest.URL(t) })
}

func testErasureKeys(t *testing.T, newURL func(t *testing.T) string) {
	// A handle that started with key A while the store had no tombstone; another
	// process then erases a worker with key B. The first handle must not record
	// the erased person's facts as if nothing happened (it cannot see B's
	// tombstone): it refuses to record, temporarily, and says which key is missing.
	t.Run("ErasedWithAnotherKeyIsNotMissed", func(t *testing.T) {
		t.Parallel()
		url := newURL(t)
		ctx := t.Context()
		daemon, eraser := mustOpen(t, url), mustOpen(t, url)
		if err := daemon.UseErasureKey(ctx, []byte("key-A")); err != nil {
			t.Fatal(err)
		}
		if err := eraser.UseErasureKey(ctx, []byte("key-B")); err != nil {
			t.Fatal(err)
		}
		if _, err := eraser.Erase(ctx, store.Erasure{Worker: connector.WorkerKey{Feed: "hr", WorkerID: "gone-1"}, Reason: "DSR-1", By: "dpo"}); err != nil {
			t.Fatal(err)
		}
		n, err := daemon.RecordFacts(ctx, hireOf("gone-1", 1))
		if err == nil || connector.IsPermanent(err) || !strings.Contains(err.Error(), "HRSYNC_ERASURE_KEY") ||
			!strings.Contains(err.Error(), connector.ErasureKeyCheck([]byte("key-B"))) {
			t.Fatalf("RecordFacts of the erased worker by a handle with another key = %d, %v; want a temporary refusal naming the missing key", n, err)
		}
		if facts, _ := daemon.Facts(ctx, connector.WorkerKey{Feed: "hr", WorkerID: "gone-1"}); len(facts) != 0 {
			t.Fatalf("the erased worker came back: %v", facts)
		}
	})

	// Rotation: tombstones made with key A; a handle with current key B and old
	// key A still refuses the erased person and records everyone else; new
	// tombstones are made with B; B alone is refused at start while A's
	// tombstones are live, and accepted once the person is erased again with B
	// and A is declared lost.
	t.Run("Rotation", func(t *testing.T) {
		t.Parallel()
		url := newURL(t)
		ctx := t.Context()
		keyA, keyB := []byte("key-A"), []byte("key-B")
		fpA, fpB := connector.ErasureKeyCheck(keyA), connector.ErasureKeyCheck(keyB)
		old := mustOpen(t, url)
		if err := old.UseErasureKeys(ctx, keyA); err != nil {
			t.Fatal(err)
		}
		gone := connector.WorkerKey{Feed: "hr", WorkerID: "gone-a"}
		if _, err := old.RecordFacts(ctx, hireOf(gone.WorkerID, 0)); err != nil {
			t.Fatal(err)
		}
		if _, err := old.Erase(ctx, store.Erasure{Worker: gone, Reason: "DSR-A", By: "dpo"}); err != nil {
			t.Fatal(err)
		}

		db := mustOpen(t, url)
		var ke *store.ErasureKeyError
		err := db.UseErasureKeys(ctx, keyB)
		if !errors.As(err, &ke) || len(ke.Missing) != 1 || ke.Missing[0].Fingerprint != fpA || ke.Missing[0].Tombstones != 1 ||
			!strings.Contains(err.Error(), "HRSYNC_ERASURE_KEYS_OLD") {
			t.Fatalf("UseErasureKeys(B) with A's tombstones = %v; want an *ErasureKeyError naming A's fingerprint", err)
		}
		if err := db.UseErasureKeys(ctx, nil, keyA); err == nil || !strings.Contains(err.Error(), "HRSYNC_ERASURE_KEY") {
			t.Fatalf("UseErasureKeys(no current, old A) = %v; want an error naming the current key", err)
		}
		if err := db.UseErasureKeys(ctx, keyB, keyA); err != nil {
			t.Fatalf("UseErasureKeys(B, old A): %v", err)
		}
		var ee *store.ErasedError
		if _, err := db.RecordFacts(ctx, hireOf(gone.WorkerID, 1)); !errors.As(err, &ee) || !connector.IsPermanent(err) {
			t.Fatalf("hire of the person erased with old key A = %v; want a permanent *ErasedError", err)
		}
		if n, err := db.RecordFacts(ctx, hireOf("fresh-1", 1)); err != nil || n != 1 {
			t.Fatalf("hire of a worker never erased = %d, %v; want it recorded", n, err)
		}
		subj, err := db.ErasureSubject(ctx, gone)
		if err != nil || !subj.Erased {
			t.Fatalf("ErasureSubject of the person erased with A, by a handle with B and old A = %+v, %v; want Erased", subj, err)
		}

		// New tombstones use the current key B. Erasing the person again with B
		// is how a tombstone moves to the new key (it holds no worker id to re-key).
		other := connector.WorkerKey{Feed: "hr", WorkerID: "gone-b"}
		if _, err := db.RecordFacts(ctx, hireOf(other.WorkerID, 1)); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Erase(ctx, store.Erasure{Worker: other, Reason: "DSR-B", By: "dpo"}); err != nil {
			t.Fatal(err)
		}
		if rep, err := db.Erase(ctx, store.Erasure{Worker: gone, Reason: "DSR-A (new key)", By: "dpo"}); err != nil || !rep.AlreadyErased {
			t.Fatalf("erasing again with B = %+v, %v; want AlreadyErased", rep, err)
		}
		keys, err := db.ErasureKeys(ctx)
		if err != nil || len(keys) != 2 {
			t.Fatalf("ErasureKeys = %+v, %v; want A and B", keys, err)
		}
		for _, k := range keys {
			want := map[string]int{fpA: 1, fpB: 2}[k.Fingerprint]
			if k.Tombstones != want || !k.Held || !k.Lost.IsZero() {
				t.Fatalf("ErasureKeys = %+v; want A with 1 tombstone, B with 2, both held", keys)
			}
		}

		// Retire A: declared lost (every person it names was erased again with B).
		if n, err := old.ForgetErasureKey(ctx, store.ForgetKey{Fingerprint: fpA, By: "dpo", Reason: "rotated"}); err == nil || n != 0 {
			t.Fatalf("ForgetErasureKey of a key the handle holds = %d, %v; want a refusal", n, err)
		}
		b := mustOpen(t, url)
		if n, err := b.ForgetErasureKey(ctx, store.ForgetKey{Fingerprint: fpA, By: "dpo", Reason: "rotated to B"}); err != nil || n != 1 {
			t.Fatalf("ForgetErasureKey(A) = %d, %v; want 1 tombstone released", n, err)
		}
		if err := b.UseErasureKeys(ctx, keyB); err != nil {
			t.Fatalf("UseErasureKeys(B) once A is retired: %v", err)
		}
		for _, w := range []string{gone.WorkerID, other.WorkerID} {
			if _, err := b.RecordFacts(ctx, hireOf(w, 2)); !errors.As(err, &ee) {
				t.Fatalf("hire of %s with key B alone = %v; want a permanent *ErasedError", w, err)
			}
		}
		if n, err := b.RecordFacts(ctx, hireOf("fresh-2", 2)); err != nil || n != 1 {
			t.Fatalf("hire of a worker never erased, key B alone = %d, %v", n, err)
		}
	})

	// A lost key: the store holds tombstones of key A and nobody has A any more.
	// Without a way out the store can record no fact ever again. A person declares
	// A lost: the tombstones stay (the erasures happened), the audit says who and
	// why, a handle without A records facts again; the price, asserted here, is
	// that the erased person is no longer recognised.
	t.Run("LostKey", func(t *testing.T) {
		t.Parallel()
		url := newURL(t)
		ctx := t.Context()
		keyA := []byte("key-A")
		fpA := connector.ErasureKeyCheck(keyA)
		a := mustOpen(t, url)
		if err := a.UseErasureKeys(ctx, keyA); err != nil {
			t.Fatal(err)
		}
		gone := connector.WorkerKey{Feed: "hr", WorkerID: "gone-1"}
		if _, err := a.RecordFacts(ctx, hireOf(gone.WorkerID, 0)); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Erase(ctx, store.Erasure{Worker: gone, Reason: "DSR-1", By: "dpo"}); err != nil {
			t.Fatal(err)
		}

		db := mustOpen(t, url)
		var ke *store.ErasureKeyError
		if err := db.UseErasureKeys(ctx, nil); !errors.As(err, &ke) || !ke.NoKey || !strings.Contains(err.Error(), "docs/erasure.md") {
			t.Fatalf("UseErasureKeys(no key) with tombstones = %v; want an *ErasureKeyError pointing at docs/erasure.md", err)
		}
		if err := db.ErasureKeyProblem(ctx); !errors.As(err, &ke) {
			t.Fatalf("ErasureKeyProblem without a key = %v; want an *ErasureKeyError", err)
		}
		if _, err := db.RecordFacts(ctx, hireOf("fresh-1", 1)); !errors.As(err, &ke) || connector.IsPermanent(err) {
			t.Fatalf("RecordFacts without a key = %v; want a temporary *ErasureKeyError", err)
		}
		// An erasure request must not get past the key check either (it would
		// be dead-lettered as unknown, with the worker id).
		req := connector.Fact{Feed: "hr", WorkerID: gone.WorkerID, Source: "/feeds/hr", ID: "req-1", Kind: connector.KindErasureRequested,
			Reason: "DSR-2", Effective: time.Now().UTC(), Time: time.Now().UTC()}
		if _, err := db.RecordFacts(ctx, []connector.Fact{req}); !errors.As(err, &ke) {
			t.Fatalf("an erasure request without a key = %v; want a temporary *ErasureKeyError", err)
		}

		for _, bad := range []store.ForgetKey{
			{By: "dpo", Reason: "lost"},
			{Fingerprint: fpA, Reason: "lost"},
			{Fingerprint: fpA, By: "dpo"},
			{Fingerprint: "0000000000000000", By: "dpo", Reason: "lost"},
		} {
			if n, err := db.ForgetErasureKey(ctx, bad); err == nil || n != 0 {
				t.Fatalf("ForgetErasureKey(%+v) = %d, %v; want a refusal", bad, n, err)
			}
		}
		n, err := db.ForgetErasureKey(ctx, store.ForgetKey{Fingerprint: fpA, By: "dpo@corp", Reason: "INC-77: vault wiped"})
		if err != nil || n != 1 {
			t.Fatalf("ForgetErasureKey = %d, %v; want 1", n, err)
		}
		rows, err := db.ListAudit(ctx, store.AuditFilter{Feed: "hr", Action: connector.ActionNone})
		if err != nil || len(rows) != 1 || !strings.Contains(rows[0].Detail, fpA) || !strings.Contains(rows[0].Detail, "dpo@corp") ||
			!strings.Contains(rows[0].Detail, "INC-77") || !strings.Contains(rows[0].Detail, "can no longer recognise") {
			t.Fatalf("audit after ForgetErasureKey = %+v, %v; want one row saying who, why and the consequence", rows, err)
		}
		if n, err := db.ForgetErasureKey(ctx, store.ForgetKey{Fingerprint: fpA, By: "dpo", Reason: "again"}); err == nil || n != 0 {
			t.Fatalf("ForgetErasureKey twice = %d, %v; want a refusal (nothing left to release)", n, err)
		}
		if err := db.UseErasureKeys(ctx, nil); err != nil {
			t.Fatalf("UseErasureKeys(no key) after the key was declared lost: %v", err)
		}
		if n, err := db.RecordFacts(ctx, hireOf("fresh-1", 1)); err != nil || n != 1 {
			t.Fatalf("hire of a worker never erased, after the key was declared lost = %d, %v", n, err)
		}
		// The honest consequence: the erased person is no longer recognised.
		if n, err := db.RecordFacts(ctx, hireOf(gone.WorkerID, 1)); err != nil || n != 1 {
			t.Fatalf("hire of the erased worker after the key was declared lost = %d, %v; want it recorded (nobody can tell)", n, err)
		}
		ts, err := db.Tombstones(ctx)
		if err != nil || len(ts) != 1 || ts[0].Reason != "DSR-1" {
			t.Fatalf("tombstones after ForgetErasureKey = %+v, %v; want the tombstone kept", ts, err)
		}
		// A new key works alongside the released tombstones; if A turns up again,
		// as an old key it recognises the person once more.
		if err := db.UseErasureKeys(ctx, []byte("key-C")); err != nil {
			t.Fatal(err)
		}
		if err := db.UseErasureKeys(ctx, []byte("key-C"), keyA); err != nil {
			t.Fatal(err)
		}
		var ee *store.ErasedError
		if _, err := db.RecordFacts(ctx, hireOf(gone.WorkerID, 2)); !errors.As(err, &ee) {
			t.Fatalf("hire of the erased worker once key A is found again = %v; want *ErasedError", err)
		}
	})
}
