package connector

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Shared reads of a claimed batch (docs/design.md, "Reads shared by a batch").
//
// Before the workers of a batch are converged, the converger asks an LMS that
// implements AccountBatchReader, in as few calls as it allows, for what their
// converges would read one by one: the accounts the linked workers are linked to
// (GetAccounts), and the matching lookups of the workers without a link, all
// three rules' values (FindAccountsIn, grouped by attribute). What it answers is
// a read cache for that batch only. The rules that keep it from changing an
// outcome:
//
//   - A value or account id that two or more workers of the batch would read
//     (the same email, employee number, externalId in a predecessor chain, the
//     same linked account) is not prefetched: those workers read live, as
//     before, so that one's create or update is seen by the other as before.
//   - An account the prefetch found for two or more workers through different
//     values (one's email, another's employee number) makes those workers
//     read live, as if they shared a value.
//   - A worker uses the cache once, for its first plan in this converge; every
//     read after that, and after any write, goes to the LMS.
//   - A worker with LMS calls of an earlier converge still pending (a crash)
//     reads live.
//   - A prefetch call that fails means no cache for its values: the workers
//     read live. It never fails a converge.
//   - A value the adapter does not vouch for (FindAccountsIn leaves it out) and
//     anything not prefetched is read live.
//   - The prefetch runs right before the batch is planned, where the individual
//     reads ran, so the rules on changes made by hand are judged on the same
//     facts (docs/design.md).

// batchReads is the read cache of one claimed batch. It is written by prefetch
// before any worker of the batch is converged and only read afterwards.
type batchReads struct {
	found map[lookupKey][]Account // vouched FindAccounts answers, by exact value
	got   map[string]Account      // accounts that exist, by id
	gone  map[string]bool         // ids GetAccounts vouched are gone
	// mirrored are the ids of got that are the account mirror's copies, not
	// reads (mirror.go).
	mirrored map[string]bool
	// live are the workers that read live all the same: an account the batch
	// found for them was found for another worker too.
	live map[WorkerKey]bool
}

type lookupKey struct {
	attr  FilterAttr
	value string
}

// workerReads is one worker's use of its batch's cache: at most once.
type workerReads struct {
	b    *batchReads
	used atomic.Bool
}

type workerReadsKey struct{}

// withWorkerReads returns ctx carrying the worker's view of the batch cache.
func withWorkerReads(ctx context.Context, b *batchReads, w WorkerKey) context.Context {
	if b == nil || b.live[w] {
		return ctx
	}
	return context.WithValue(ctx, workerReadsKey{}, &workerReads{b: b})
}

// takeWorkerReads returns the cache the worker may use for this plan, and nil
// on every later call: reads after the first plan go to the LMS.
func takeWorkerReads(ctx context.Context) *batchReads {
	w, ok := ctx.Value(workerReadsKey{}).(*workerReads)
	if !ok || !w.used.CompareAndSwap(false, true) {
		return nil
	}
	return w.b
}

// find returns the prefetched answer of FindAccounts for attr and value.
func (b *batchReads) find(attr FilterAttr, value string) ([]Account, bool) {
	if b == nil {
		return nil, false
	}
	as, ok := b.found[lookupKey{attr, value}]
	return as, ok
}

// account returns the prefetched account id: the account, or gone; ok false
// when it was not prefetched.
func (b *batchReads) account(id string) (a Account, gone, ok bool) {
	if b == nil {
		return Account{}, false, false
	}
	if a, ok := b.got[id]; ok {
		return a, false, true
	}
	if b.gone[id] {
		return Account{}, true, true
	}
	return Account{}, false, false
}

// sharedKey is how values are compared to find those two workers would read:
// folded for every attribute, so that a server comparing case-insensitively
// where RFC 7643 says caseExact cannot join two workers' lookups unseen.
func sharedKey(attr FilterAttr, v string) lookupKey {
	return lookupKey{attr, strings.ToLower(v)}
}

// workerReadsPlan is what one worker's converge would read.
type workerReadsPlan struct {
	links  []string                // linked account ids along its chain, in order
	lookup map[FilterAttr][]string // matching values, when it has no link
	all    map[lookupKey]bool      // every value it may look up, folded
}

// prefetch reads for the batch what its workers' first plans would read, as
// few calls as the LMS allows (see the rules above). It returns nil when the LMS
// cannot batch reads or nothing is worth prefetching. Failures are logged and
// leave the values out.
func (c *Converger) prefetch(ctx context.Context, claims []Claim, hists []History, pending map[WorkerKey][]AuditEntry) *batchReads {
	br, canBatch := c.cfg.LMS.(AccountBatchReader)
	if (!canBatch && c.cfg.Mirror == nil) || len(claims) == 0 {
		return nil
	}
	plans := make([]*workerReadsPlan, len(claims))
	valueUse := map[lookupKey]int{}
	idUse := map[string]int{}
	now := c.cfg.Now()
	for i, cl := range claims {
		p := c.readsPlan(cl, hists[i], now)
		if p == nil {
			continue
		}
		for k := range p.all {
			valueUse[k]++
		}
		for _, id := range p.links {
			idUse[id]++
		}
		if len(pending[cl.Worker]) > 0 {
			continue // counted, so that others sharing its values read live too; reads live itself
		}
		plans[i] = p
	}
	ids := []string{}
	values := map[FilterAttr][]string{}
	seenID := map[string]bool{}
	seenValue := map[lookupKey]bool{}
	owner := map[lookupKey]WorkerKey{} // a prefetched value or id (attr "") → its only reader
	for i, p := range plans {
		if p == nil {
			continue
		}
		for _, id := range p.links {
			if idUse[id] == 1 && !seenID[id] {
				seenID[id] = true
				owner[lookupKey{"", id}] = claims[i].Worker
				ids = append(ids, id)
			}
		}
		for _, attr := range []FilterAttr{ByExternalID, ByEmployeeNumber, ByEmail} {
			for _, v := range p.lookup[attr] {
				if valueUse[sharedKey(attr, v)] == 1 && !seenValue[lookupKey{attr, v}] {
					seenValue[lookupKey{attr, v}] = true
					owner[lookupKey{attr, v}] = claims[i].Worker
					values[attr] = append(values[attr], v)
				}
			}
		}
	}
	if len(ids) == 0 && len(values) == 0 {
		return nil
	}
	b := &batchReads{found: map[lookupKey][]Account{}, got: map[string]Account{}, gone: map[string]bool{}, mirrored: map[string]bool{}}
	// Linked accounts the mirror knows are its copies, not reads: converge
	// carries out a plan made from one only where a stale copy cannot change
	// the outcome, and reads the account otherwise (mirror.go).
	if c.cfg.Mirror != nil && len(ids) > 0 {
		known, err := c.cfg.Mirror.MirroredAccounts(ctx, ids)
		if err != nil {
			c.log.Warn("reading the account mirror failed; the batch's linked accounts are read from the LMS", "accounts", len(ids), "err", err)
		}
		rest := ids[:0:0]
		for _, id := range ids {
			if a, ok := known[id]; ok {
				b.got[id], b.mirrored[id] = a, true
			} else {
				rest = append(rest, id)
			}
		}
		ids = rest
	}
	n := 0
	if canBatch {
		n = br.MaxReadBatch(ctx)
	}
	if n <= 0 {
		ids, values = nil, nil // read one by one, as converge does
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, c.cfg.Concurrency)
	run := func(fn func()) {
		sem <- struct{}{}
		wg.Go(func() { defer func() { <-sem }(); fn() })
	}
	for from := 0; from < len(ids); from += n {
		chunk := ids[from:min(from+n, len(ids))]
		run(func() {
			got, err := br.GetAccounts(ctx, chunk)
			if err != nil {
				c.log.Warn("prefetching linked accounts failed; their workers read them one by one", "accounts", len(chunk), "err", err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, id := range chunk {
				if a, ok := got[id]; ok {
					b.got[id] = a
				} else {
					b.gone[id] = true
				}
			}
		})
	}
	for attr, vs := range values {
		for from := 0; from < len(vs); from += n {
			chunk := vs[from:min(from+n, len(vs))]
			run(func() {
				got, err := br.FindAccountsIn(ctx, attr, chunk)
				if err != nil {
					c.log.Warn("prefetching matching lookups failed; their workers look up one by one", "attr", attr, "values", len(chunk), "err", err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				for _, v := range chunk {
					if as, ok := got[v]; ok {
						b.found[lookupKey{attr, v}] = as
					}
				}
			})
		}
	}
	wg.Wait()
	// Two workers that reach one account through different values (one's
	// email, the other's employee number, on an account made by hand) would
	// each see it as it was before the other's write: both read live instead.
	readers := map[string]map[WorkerKey]bool{}
	reach := func(accID string, w WorkerKey) {
		if readers[accID] == nil {
			readers[accID] = map[WorkerKey]bool{}
		}
		readers[accID][w] = true
	}
	for id := range b.got {
		reach(id, owner[lookupKey{"", id}])
	}
	for k, as := range b.found {
		for _, a := range as {
			reach(a.ID, owner[k])
		}
	}
	b.live = map[WorkerKey]bool{}
	for _, ws := range readers {
		if len(ws) > 1 {
			for w := range ws {
				b.live[w] = true
			}
		}
	}
	return b
}

// readsPlan says what converge would read for cl at its first plan: nil when it
// reads nothing from the LMS (superseded, unknown feed, nothing due, erasure).
func (c *Converger) readsPlan(cl Claim, hist History, now time.Time) *workerReadsPlan {
	if hist.SupersededBy != nil {
		return nil
	}
	feed, ok := c.cfg.Feeds[cl.Worker.Feed]
	if !ok {
		return nil
	}
	want, _ := Want(hist.Facts, now, c.cfg.Policy(feed.Name))
	if want.Erasure != nil || want.State == StateAbsent {
		return nil
	}
	p := &workerReadsPlan{lookup: map[FilterAttr][]string{}, all: map[lookupKey]bool{}}
	chain := append([]string{cl.Worker.WorkerID}, want.PreviousWorkerIDs...)
	extIDs := make([]string, 0, len(chain))
	for _, id := range chain {
		if acc, ok := hist.Links[id]; ok {
			p.links = append(p.links, acc)
		}
		extIDs = append(extIDs, WorkerKey{Feed: cl.Worker.Feed, WorkerID: id}.ExternalID())
	}
	rules := map[FilterAttr][]string{ByExternalID: extIDs, ByEmployeeNumber: want.EmployeeNumbers, ByEmail: want.Emails}
	for attr, vs := range rules {
		for _, v := range vs {
			p.all[sharedKey(attr, v)] = true
		}
	}
	if len(p.links) == 0 {
		p.lookup = rules
	}
	return p
}

// notFoundPrefetched is the ErrNotFound of an account that the batch's
// GetAccounts vouched is gone.
func notFoundPrefetched(id string) error {
	return &LMSError{Kind: KindNotFound, Op: "GetAccounts", Reason: "account " + id + " is gone"}
}
