// Package report computes hrsync's reports from the store's history and the LMS:
// headcount and churn from the HR facts (folded with the same connector.Want as
// the converger) and the audit trail, so that the figures agree with what hrsync
// did, and a rehire's training history from the LMS's learning records.
//
// It does no flag parsing and opens nothing: the caller passes the store (Store)
// or the LMS (connector.LMS), the instant taken as now, and an io.Writer for the
// output. cmd/hrsync's "report" subcommands are thin wrappers around it.
package report

import (
	"context"
	"sort"
	"strings"

	"github.com/hrsync/hrsync/connector"
)

// PageStore is what EachPage reads: the paged reads of full reconciliation.
// *store.DB implements it.
type PageStore interface {
	// ListWorkerLinks returns up to limit workers after the given key, in key
	// order, with their account links.
	ListWorkerLinks(ctx context.Context, after connector.WorkerKey, limit int) ([]connector.WorkerLink, error)
	// LoadHistories returns the histories of ws, in the order of ws.
	LoadHistories(ctx context.Context, ws []connector.WorkerKey) ([]connector.History, error)
}

// Store is what the store-backed reports read: the pages of workers and the
// audit's last state changes. *store.DB implements it.
type Store interface {
	PageStore
	// LastStateActions returns, per account id, the last state change hrsync
	// made to it (absent if none).
	LastStateActions(ctx context.Context, accountIDs []string) (map[string]connector.AuditEntry, error)
}

// Person is one person as a report sees them: the last worker of their chain of
// rehires, with the facts of the whole chain and the account they converge.
type Person struct {
	Worker    connector.WorkerKey
	AccountID string
	Facts     []connector.Fact // fold order, without duplicates
}

// EachPage pages through the workers (of feed, if set) in key order, page at a
// time, and calls fn with the people of each page. A superseded worker is
// skipped: its successor's history holds its facts, so each person counts once.
// Memory is bounded by one page.
func EachPage(ctx context.Context, s PageStore, feed string, page int, fn func([]Person) error) error {
	after := connector.WorkerKey{Feed: feed}
	for {
		wls, err := s.ListWorkerLinks(ctx, after, page)
		if err != nil {
			return err
		}
		if len(wls) == 0 {
			return nil
		}
		after = wls[len(wls)-1].Worker
		var keys []connector.WorkerKey
		acct := map[connector.WorkerKey]string{}
		done := false
		for _, wl := range wls {
			if feed != "" && wl.Worker.Feed != feed {
				done = true
				break
			}
			if wl.Superseded {
				continue
			}
			keys = append(keys, wl.Worker)
			acct[wl.Worker] = wl.AccountID
		}
		if len(keys) > 0 {
			hs, err := s.LoadHistories(ctx, keys)
			if err != nil {
				return err
			}
			ps := make([]Person, len(hs))
			for i, h := range hs {
				ps[i] = Person{Worker: keys[i], AccountID: acct[keys[i]], Facts: connector.SortFacts(h.Facts)}
				if ps[i].AccountID == "" {
					ps[i].AccountID = chainAccount(h)
				}
			}
			if err := fn(ps); err != nil {
				return err
			}
		}
		if done || len(wls) < page {
			return nil
		}
	}
}

// chainAccount is the account of a predecessor along the chain, for a rehired
// worker that has not taken its account over yet ("" if none).
func chainAccount(h connector.History) string {
	ids := make([]string, 0, len(h.Links))
	for id := range h.Links {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if h.Links[id] != "" {
			return h.Links[id]
		}
	}
	return ""
}

// lastSetActive reports whether the last state change hrsync made to an account
// (create, deactivate or reactivate, outcome ok) left it active. A create of a
// leaver's account creates it inactive (connector.ManualDeactivation reads the
// same detail).
func lastSetActive(e connector.AuditEntry, ok bool) bool {
	if !ok {
		return false
	}
	switch e.Action {
	case connector.ActionReactivate:
		return true
	case connector.ActionCreate:
		return !strings.Contains(e.Detail, "created inactive")
	}
	return false
}
