package jobs

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/erasure"
	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
)

// OffboardRequest is one "feed offboard": the feed, its retention (Keep: the
// accounts are anonymised, else deleted), who asks and why, and the report
// directory (default ./offboard-<feed>-hold<id>-<UTC timestamp>).
type OffboardRequest struct {
	Feed       string
	Keep       bool
	By, Reason string
	Dir        string
}

// Offboard scans the LMS for every account of the partner feed r.Feed, writes the
// report and holds the plan; nothing changes in the LMS. A feed without accounts
// is closed at once. Asked again while the feed's offboarding is held, it names
// that hold and holds nothing new. It returns the id of the hold that awaits a
// person (new, or the one held before; 0 if the feed was closed at once).
func (e Env) Offboard(ctx context.Context, r OffboardRequest) (held int64, err error) {
	ctx = connector.WithLMSPriority(ctx, connector.LMSBackground) // waits behind live changes under the LMS's rate limit
	name := r.Feed
	feed, ok := e.Feeds[name]
	if !ok {
		return 0, fmt.Errorf("feed %q is not configured (feeds: %s)", name, strings.Join(e.Feeds.Names(), ", "))
	}
	if feed.Kind == connector.FeedHR {
		return 0, fmt.Errorf("feed %s is the HR feed: offboarding is for partner feeds (every account of the feed would go)", name)
	}
	lms, db, w := e.LMS, e.Store, e.Out
	if cl, closed, err := db.FeedClosed(ctx, name); err != nil {
		return 0, err
	} else if closed {
		return 0, fmt.Errorf("feed %s was already closed on %s (hold %d)", name, cl.ClosedAt.UTC().Format(time.DateOnly), cl.HoldID)
	}
	// Offboarding is idempotent: while the feed's offboarding is held (or
	// approved and running), asking again names that hold and changes nothing.
	if h, ok, err := db.OffboardHold(ctx, name); err != nil {
		return 0, err
	} else if ok {
		printOffboardHeld(w, h)
		return h.ID, nil
	}
	action := connector.ActionDelete
	if r.Keep {
		action = connector.ActionAnonymise
	}
	prog := NewProgress(e.Progress, "scanned")
	sel, err := OffboardSelection(ctx, lms, db, feed, action, func(n, total int) { prog.Update(n, total, "") })
	prog.Done()
	if err != nil {
		return 0, err
	}
	anon := 0
	if action == connector.ActionAnonymise {
		anon = len(sel.Items)
	}
	est := Estimate(ctx, lms, len(sel.Items), anon, e.PerHour)
	stamp := e.Now().UTC().Format("20060102T150405Z")
	if len(sel.Items) == 0 {
		dir := cmp.Or(r.Dir, "offboard-"+name+"-empty-"+stamp)
		if err := WriteReport(dir, sel, est); err != nil {
			return 0, err
		}
		fmt.Fprintf(w, "feed %s: no LMS accounts (%d scanned); report: %s\n", name, sel.Scanned, dir)
		if err := db.CloseFeed(ctx, store.ClosedFeed{Feed: name, ClosedBy: r.By, Reason: r.Reason}); err != nil {
			return 0, err
		}
		fmt.Fprintf(w, "the feed has no accounts; it is closed now\n")
		return 0, nil
	}
	report := Payload{Filter: "every account of feed " + name, Selection: sel, Estimate: est}
	payload, err := json.Marshal(report)
	if err != nil {
		return 0, err
	}
	// The store refuses a second offboarding hold of the feed (one started since
	// the check above): name the one that won.
	id, err := db.CreateJob(ctx, connector.Hold{Kind: connector.HoldOffboard, Feed: name, CausedBy: r.By,
		ApprovalsNeeded: e.Approvals[connector.HoldOffboard],
		Reason:          fmt.Sprintf("offboard feed %s (%s by %s: %s)", name, action, r.By, r.Reason), Payload: payload}, sel.Items)
	var open *store.OpenJobError
	if errors.As(err, &open) {
		printOffboardHeld(w, open.Hold)
		return open.Hold.ID, nil
	}
	if err != nil {
		return 0, err
	}
	// The report directory names the hold, so two offboardings never share one.
	report.ReportDir = cmp.Or(r.Dir, fmt.Sprintf("offboard-%s-hold%d-%s", name, id, stamp))
	if err := WriteReport(report.ReportDir, sel, est); err != nil {
		return 0, fmt.Errorf("hold %d is created, but its report was not written (hrsync holds show %d --format csv lists its accounts): %w", id, id, err)
	}
	if payload, err = json.Marshal(report); err != nil {
		return 0, err
	}
	if err := db.SetJobPayload(ctx, id, payload); err != nil {
		return 0, err
	}
	fmt.Fprintf(w, "feed %s: %d LMS accounts to %s (%d scanned)\n", name, len(sel.Items), action, sel.Scanned)
	fmt.Fprintf(w, "that needs %s\n", est)
	fmt.Fprintf(w, "report: %s (accounts.csv, report.json)\n", report.ReportDir)
	e.Log.Info("offboarding held", "feed", name, "hold", id, "accounts", len(sel.Items), "action", action, "by", r.By)
	fmt.Fprintf(w, "held as hold %d; nothing changed. Next: hrsync holds approve %d --by NAME --reason TEXT, then hrsync holds run %d\n", id, id, id)
	return id, nil
}

// printOffboardHeld tells the user that the feed's offboarding is held already,
// as hold h, and what to do next; nothing was scanned or held again.
func printOffboardHeld(w io.Writer, h connector.Hold) {
	fmt.Fprintf(w, "feed %s is already being offboarded: hold %d (%s since %s, %d accounts); nothing new was held.\n",
		h.Feed, h.ID, h.Status, h.CreatedAt.UTC().Format(time.RFC3339), h.Counts.Removals)
	if h.Status == connector.HoldOpen {
		fmt.Fprintf(w, "Next: hrsync holds show %d, hrsync holds approve %d --by NAME --reason TEXT, then hrsync holds run %d\n", h.ID, h.ID, h.ID)
	} else {
		fmt.Fprintf(w, "Next: hrsync holds run %d (resumes where it stopped)\n", h.ID)
	}
}

// OffboardSelection lists every LMS account of feed: linked to one of its workers,
// or unlinked and in its scope, each to be done by action.
func OffboardSelection(ctx context.Context, lms connector.LMS, db connector.CleanupStore, feed connector.Feed, action connector.ActionKind, progress func(n, total int)) (connector.Selection, error) {
	sel := connector.Selection{Excluded: map[string]int{}, ByFeed: map[string]int{}}
	calls, err := connector.EachAccountPage(ctx, lms, 500, func(page connector.AccountPage) error {
		ids := make([]string, len(page.Accounts))
		for i, a := range page.Accounts {
			ids[i] = a.ID
		}
		linked, err := db.LinkedHistories(ctx, ids)
		if err != nil {
			return err
		}
		for _, a := range page.Accounts {
			h, isLinked := linked[a.ID]
			switch {
			case isLinked && h.Worker.Feed != feed.Name:
				sel.Excluded["linked to another feed"]++
				continue
			case !isLinked && !feed.InScope(a):
				sel.Excluded["outside the feed's scope"]++
				continue
			}
			it := connector.JobItem{Seq: len(sel.Items) + 1, AccountID: a.ID, Action: action, Version: a.Version,
				UserName: a.UserName, Email: a.Profile.Email, Created: a.Created, Status: connector.JobPending}
			if isLinked {
				it.Worker = h.Worker
			}
			sel.Items = append(sel.Items, it)
			sel.ByFeed[feed.Name]++
		}
		sel.Scanned += len(page.Accounts)
		progress(sel.Scanned, page.TotalResults)
		return nil
	})
	sel.Calls += calls
	return sel, err
}

// AnonymiserStore is what an offboarding's anonymiser needs of the store: the
// erasure of linked workers, with the erasure keys. Implemented by *store.DB.
type AnonymiserStore interface {
	erasure.Store
	erasure.KeyUser
}

// OffboardAnonymiser returns how an offboarding run anonymises one account: the
// account is anonymised and deactivated with its learning records kept
// pseudonymised, and a linked worker is erased from the store as hrsync erase
// does. It needs the erasure key when the job anonymises anything; getenv gives
// the old keys (HRSYNC_ERASURE_KEYS_OLD). It returns nil if hold h only deletes.
func OffboardAnonymiser(ctx context.Context, db AnonymiserStore, lms connector.LMS, key string, getenv func(string) string, h connector.Hold) (func(context.Context, connector.JobItem, connector.Account) (string, error), error) {
	// Offboarding items are all deletions or all anonymisations (the feed's
	// retention); the hold's counts tell which without reading the items.
	if h.Counts.Removals == h.Counts.Deletions {
		return nil, nil
	}
	if key == "" {
		return nil, fmt.Errorf("hold %d anonymises accounts: the erasure key is required (%s or --erasure-key), the same as hrsync erase uses", h.ID, erasure.KeyEnv)
	}
	if err := erasure.UseKeys(ctx, db, key, getenv); err != nil {
		return nil, err
	}
	reason := fmt.Sprintf("partner offboarding, hold %d", h.ID)
	return func(ctx context.Context, it connector.JobItem, a connector.Account) (string, error) {
		w := it.Worker
		if w.WorkerID == "" {
			// Unlinked: the pseudonym is keyed on the account, not a worker.
			w = connector.WorkerKey{Feed: h.Feed, WorkerID: "account:" + a.ID}
		}
		hash := connector.ErasureHash([]byte(key), w)
		if it.Worker.WorkerID == "" {
			res, err := connector.EraseAccount(ctx, lms, a, hash, true)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("anonymised as %s; learning records %s", connector.ErasedID(hash), res.Training), nil
		}
		// A linked worker is erased exactly as hrsync erase does it. If the store
		// step fails, the item stays pending and a resumed run does both again.
		subj, err := db.ErasureSubject(ctx, it.Worker)
		if err != nil {
			return "", err
		}
		e := erasure.Erasure{Worker: it.Worker, Subject: subj, Hash: hash, Account: a, Found: true}
		d, err := e.Run(ctx, db, lms, true, reason, h.DecidedBy)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("anonymised as %s and erased from the store; learning records %s", connector.ErasedID(hash), d.Training), nil
	}, nil
}
