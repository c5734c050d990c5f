package store_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
	"github.com/hrsync/hrsync/store/pgtest"
)

func TestErasureRequestSQLite(t *testing.T) {
	t.Parallel()
	testErasureRequest(t, func(t *testing.T) *store.DB { return mustOpen(t, sqliteURL(t)) })
}

func TestErasureRequestPostgres(t *testing.T) {
	t.Parallel()
	testErasureRequest(t, func(t *testing.T) *store.DB { return mustOpen(t, pgtest.URL(t)) })
}

// testErasureRequest: an erasure_requested fact is recorded like any fact (with
// who asked), refused for a worker the store does not know, accepted in the batch
// of the worker's hire, and, once the worker is erased, dropped and audited under
// the pseudonym instead of bringing the worker id back.
func testErasureRequest(t *testing.T, open func(t *testing.T) *store.DB) {
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	hire := func(w, id string) connector.Fact {
		return connector.Fact{Feed: "hr", WorkerID: w, Source: "/feeds/hr", ID: id, Kind: connector.KindHired, Effective: t0, Time: t0,
			Profile: connector.Profile{Email: w + "@example.com"}}
	}
	request := func(w, id string) connector.Fact {
		return connector.Fact{Feed: "hr", WorkerID: w, Source: "/feeds/hr", ID: id, Kind: connector.KindErasureRequested,
			Effective: t0.AddDate(0, 1, 0), Time: t0.AddDate(0, 1, 0), Reason: "DSR-1", RequestedBy: "privacy-office"}
	}

	t.Run("RecordedWithRequester", func(t *testing.T) {
		t.Parallel()
		db, ctx := open(t), t.Context()
		if _, err := db.RecordFacts(ctx, []connector.Fact{hire("w1", "e1")}); err != nil {
			t.Fatal(err)
		}
		n, err := db.RecordFacts(ctx, []connector.Fact{request("w1", "e2"), request("w1", "e2")})
		if err != nil || n != 1 {
			t.Fatalf("RecordFacts(request) = %d, %v; want 1 new fact", n, err)
		}
		facts, err := db.Facts(ctx, connector.WorkerKey{Feed: "hr", WorkerID: "w1"})
		if err != nil || len(facts) != 2 || facts[1].Kind != connector.KindErasureRequested ||
			facts[1].Reason != "DSR-1" || facts[1].RequestedBy != "privacy-office" {
			t.Fatalf("facts = %+v, %v; want the hire and the request with its reason and requester", facts, err)
		}
		// A redelivery is a duplicate, as for every fact.
		if n, err := db.RecordFacts(ctx, []connector.Fact{request("w1", "e2")}); err != nil || n != 0 {
			t.Fatalf("redelivered request = %d, %v; want a skipped duplicate", n, err)
		}
	})
	t.Run("ErrUnknownWorker", func(t *testing.T) {
		t.Parallel()
		db, ctx := open(t), t.Context()
		_, err := db.RecordFacts(ctx, []connector.Fact{hire("w1", "e1"), request("nobody", "e2")})
		var uw *store.UnknownWorkerError
		if !errors.As(err, &uw) || !connector.IsPermanent(err) || !strings.Contains(err.Error(), "/feeds/hr#e2") {
			t.Fatalf("request for an unknown worker = %v; want a permanent *UnknownWorkerError naming the fact", err)
		}
		if facts, _ := db.Facts(ctx, connector.WorkerKey{Feed: "hr", WorkerID: "w1"}); len(facts) != 0 {
			t.Fatalf("the refused batch recorded %v", facts)
		}
		// Another request for an unknown worker changes nothing either.
		if _, err := db.RecordFacts(ctx, []connector.Fact{request("nobody", "e3")}); !errors.As(err, &uw) {
			t.Fatalf("second request = %v", err)
		}
	})
	t.Run("SameBatchAsHire", func(t *testing.T) {
		t.Parallel()
		db, ctx := open(t), t.Context()
		if n, err := db.RecordFacts(ctx, []connector.Fact{request("w1", "e2"), hire("w1", "e1")}); err != nil || n != 2 {
			t.Fatalf("RecordFacts(request, hire) = %d, %v", n, err)
		}
	})
	t.Run("AfterErasureDroppedAndAudited", func(t *testing.T) {
		t.Parallel()
		db, ctx := open(t), t.Context()
		key := []byte("k-req")
		if err := db.UseErasureKey(ctx, key); err != nil {
			t.Fatal(err)
		}
		w := connector.WorkerKey{Feed: "hr", WorkerID: "w1"}
		if _, err := db.RecordFacts(ctx, []connector.Fact{hire("w1", "e1"), request("w1", "e2")}); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Erase(ctx, store.Erasure{Worker: w, Reason: "DSR-1", By: "privacy-office"}); err != nil {
			t.Fatal(err)
		}
		// A redelivery of the request, or a second request: done already.
		for _, id := range []string{"e2", "e3"} {
			if n, err := db.RecordFacts(ctx, []connector.Fact{request("w1", id)}); err != nil || n != 0 {
				t.Fatalf("request %s after the erasure = %d, %v; want it dropped, not refused", id, n, err)
			}
		}
		pseudo := connector.ErasedID(connector.ErasureHash(key, w))
		rows, err := db.ListAudit(ctx, store.AuditFilter{Feed: "hr", Action: connector.ActionAnonymise})
		if err != nil || len(rows) != 3 {
			t.Fatalf("audit = %+v, %v; want the erasure and two repeats", rows, err)
		}
		for _, r := range rows {
			if r.WorkerID != pseudo {
				t.Errorf("audit row %+v names %q, want the pseudonym %s", r, r.WorkerID, pseudo)
			}
		}
		if res, err := db.FindResidue(ctx, []string{"w1@example.com", `"w1"`, "hr:w1"}); err != nil || len(res) > 0 {
			t.Fatalf("residue after repeated requests: %v, %v", res, err)
		}
		// Any other fact about the person is still refused.
		var ee *store.ErasedError
		if _, err := db.RecordFacts(ctx, []connector.Fact{hire("w1", "e4")}); !errors.As(err, &ee) {
			t.Fatalf("hire after the erasure = %v; want *ErasedError", err)
		}
	})
}
