package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	rtmetrics "runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hrsync/hrsync/connector"
)

// SeedStore is what SeedReconcile needs of the store. Implemented by *store.DB.
type SeedStore interface {
	// RecordFacts records facts in one transaction and marks their workers due.
	RecordFacts(ctx context.Context, facts []connector.Fact) (recorded int, err error)
	// ClaimDue leases up to limit workers due at now to owner.
	ClaimDue(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]connector.Claim, error)
	// CompleteAll commits the outcome of claimed workers: their links among it.
	CompleteAll(ctx context.Context, cs []connector.Completion) error
}

// SeedReconcile records n hires in db, creates their accounts (1% with an
// edited given name) in lms and links them, without the converger: RecordFacts
// in big batches, accounts straight into the LMS (conc at a time), links with
// ClaimDue and CompleteAll. It is "hrsync reconcile --bench N"'s seeding.
func SeedReconcile(ctx context.Context, db SeedStore, lms connector.LMS, n, conc int) error {
	accountOf := make([]string, n) // worker number -> account id
	const batch = 10_000
	t0 := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	for start := 0; start < n; start += batch {
		facts := make([]connector.Fact, 0, batch)
		accts := make([]connector.Account, 0, batch)
		for i := start; i < min(start+batch, n); i++ {
			id := fmt.Sprintf("w%08d", i)
			p := connector.Profile{Email: id + "@example.com", GivenName: "Given" + id, FamilyName: "Family",
				EmployeeNumber: "E" + id[1:], OrgUnit: "ou-" + strconv.Itoa(i%50)}
			f := connector.Fact{Feed: "hr", WorkerID: id, Source: "/feeds/hr", ID: "h-" + id, Kind: connector.KindHired,
				Effective: t0, Time: t0, Profile: p}
			facts = append(facts, f)
			w, _ := connector.Want([]connector.Fact{f}, t0.Add(time.Hour), connector.DefaultPolicy())
			a := connector.Desired(w)
			if i%100 == 7 {
				a.Profile.GivenName = "Edited"
			}
			accts = append(accts, a)
		}
		ids := make([]string, len(accts))
		errs := make([]error, len(accts))
		var wg sync.WaitGroup
		sem := make(chan struct{}, max(conc, 1))
		for i := range accts {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				created, err := lms.CreateAccount(ctx, accts[i])
				ids[i], errs[i] = created.ID, err
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
		copy(accountOf[start:], ids)
		if _, err := db.RecordFacts(ctx, facts); err != nil {
			return err
		}
	}
	for {
		cs, err := db.ClaimDue(ctx, "seed", time.Now().Add(time.Hour), time.Hour, batch)
		if err != nil {
			return err
		}
		if len(cs) == 0 {
			return nil
		}
		comps := make([]connector.Completion, len(cs))
		for i, c := range cs {
			k, err := strconv.Atoi(strings.TrimPrefix(c.Worker.WorkerID, "w"))
			if err != nil || k < 0 || k >= n {
				return fmt.Errorf("unexpected worker %s", c.Worker)
			}
			comps[i] = connector.Completion{Claim: c, Owner: "seed", AccountID: accountOf[k]}
		}
		if err := db.CompleteAll(ctx, comps); err != nil {
			return err
		}
	}
}

// ResetPeakRSS resets the kernel's resident high-water mark of the process
// (Linux; ignored elsewhere), so that PeakRSS measures what follows.
func ResetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// PeakRSS returns the process's peak resident memory: VmHWM from
// /proc/self/status, or where there is none the memory the Go runtime holds.
func PeakRSS() uint64 {
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				return kb << 10
			}
		}
	}
	s := []rtmetrics.Sample{{Name: "/memory/classes/total:bytes"}}
	rtmetrics.Read(s)
	return s[0].Value.Uint64()
}
