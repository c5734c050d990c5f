package sandbox

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/hrsync/hrsync/connector"
)

func TestPackRoundTrip(t *testing.T) {
	long := string(make([]byte, 300)) // a length of two varint bytes
	for _, a := range []connector.Account{
		{},
		{ExternalID: "hr:1", UserName: "Ann@Example.com", Organization: "org",
			Profile: connector.Profile{Email: "ann@example.com", GivenName: "Ann", FamilyName: long, EmployeeNumber: "E1",
				OrgUnit: "ou", JobTitle: "dev", ManagerID: "m", Locale: "de-CH"}},
	} {
		r := record{id: "x", data: pack(&a), rev: 1}
		a.ID, a.Version = "x", version(1)
		if got := r.view(); got != a {
			t.Errorf("view after pack = %+v, want %+v", got, a)
		}
		if got := field(r.data, fFamilyName); got != a.Profile.FamilyName {
			t.Errorf("field(FamilyName) = %q", got)
		}
	}
}

// TestIndexModel runs random adds, removes and moves against a map, with
// few distinct keys so that runs and shared keys are long.
func TestIndexModel(t *testing.T) {
	keys := map[int32]string{} // slot → key
	x := newIndex(func(s int32) string { return keys[s] })
	rng := rand.New(rand.NewPCG(1, 2))
	check := func(step int) {
		t.Helper()
		want := map[string][]int32{}
		for s, k := range keys {
			want[k] = append(want[k], s)
		}
		for k, ss := range want {
			var got []int32
			x.each(k, func(s int32) bool { got = append(got, s); return true })
			slices.Sort(got)
			slices.Sort(ss)
			if !slices.Equal(got, ss) {
				t.Fatalf("step %d: each(%q) = %v, want %v", step, k, got, ss)
			}
		}
		if x.n != len(keys) {
			t.Fatalf("step %d: n = %d, want %d", step, x.n, len(keys))
		}
	}
	for step := range 20000 {
		s := int32(rng.IntN(2000))
		k := fmt.Sprintf("k%d", rng.IntN(300))
		old, ok := keys[s]
		switch {
		case !ok:
			keys[s] = k
			x.add(k, s)
		case rng.IntN(2) == 0:
			x.remove(old, s)
			delete(keys, s)
		default:
			keys[s] = k
			x.move(old, k, s)
		}
		if step%997 == 0 {
			check(step)
		}
	}
	check(-1)
}

// TestDeleteAndPage deletes accounts at random, enough for compactions, and
// checks paging, lookups and the count against the accounts left.
func TestDeleteAndPage(t *testing.T) {
	ctx := context.Background()
	l := New()
	var ids []string
	for i := range 500 {
		a, err := l.CreateAccount(ctx, connector.Account{UserName: fmt.Sprintf("User%d", i), ExternalID: fmt.Sprintf("hr:%d", i),
			Profile: connector.Profile{Email: fmt.Sprintf("U%d@example.com", i%7), EmployeeNumber: fmt.Sprint(i)}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.ID)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for len(ids) > 0 {
		i := rng.IntN(len(ids))
		if err := l.DeleteAccount(ctx, ids[i]); err != nil {
			t.Fatal(err)
		}
		ids = slices.Delete(ids, i, i+1)
		if l.Count() != len(ids) {
			t.Fatalf("Count = %d, want %d", l.Count(), len(ids))
		}
		if len(ids)%37 != 0 {
			continue
		}
		var got []string
		for start := 1; ; start += 13 {
			p, err := l.ListAccounts(ctx, start, 13)
			if err != nil || p.TotalResults != len(ids) {
				t.Fatalf("ListAccounts(%d) = total %d, %v; want %d", start, p.TotalResults, err, len(ids))
			}
			if len(p.Accounts) == 0 {
				break
			}
			for _, a := range p.Accounts {
				got = append(got, a.ID)
			}
		}
		if !slices.Equal(got, ids) {
			t.Fatalf("pages = %v, want %v", got, ids)
		}
		for _, id := range ids {
			a, err := l.GetAccount(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			found, err := l.FindAccounts(ctx, connector.AccountFilter{Attr: connector.ByUserName, Value: a.UserName})
			if err != nil || len(found) != 1 || found[0].ID != id {
				t.Fatalf("FindAccounts(userName %s) = %v, %v", a.UserName, found, err)
			}
			found, _ = l.FindAccounts(ctx, connector.AccountFilter{Attr: connector.ByEmail, Value: a.Profile.Email})
			if !slices.ContainsFunc(found, func(b connector.Account) bool { return b.ID == id }) {
				t.Fatalf("FindAccounts(email %s) misses %s", a.Profile.Email, id)
			}
		}
	}
	if len(l.recs) != 0 || len(l.holes) != 0 {
		t.Errorf("after deleting all: %d records, %d holes", len(l.recs), len(l.holes))
	}
}
