package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
)

const feedDesc = `
Partner offboarding: when a business relationship ends, every account of the
partner's feed is deleted or anonymised, and the feed is closed.

  hrsync feed offboard NAME --by WHO --reason TEXT
      scans the LMS for every account of the feed (linked to its workers, or in its
      scope), writes a report and holds the plan; nothing changes yet. The action is
      the feed's retention policy: anonymise (keep the learning records,
      pseudonymised: retention.keep_learning_records true, the default) or delete.
  hrsync holds approve ID --by WHO --reason TEXT   (--sample-batch N to test first)
  hrsync holds run ID
      runs it in batches under --lms-rate, resumable; anonymising needs the erasure
      key (HRSYNC_ERASURE_KEY), as hrsync erase does, and erases each linked worker
      from the store too. When every account is done, the feed is closed: its events
      are dead-lettered, its roster uploads and upload tokens refused.
      Asked again while the feed's offboarding hold is open or approved, it names
      that hold, holds nothing new and exits 0. The report directory (default
      offboard-NAME-holdID-TIMESTAMP) names the hold.
  hrsync feed status NAME
      whether the feed is closed, when and by whom.`

func cmdFeed(ctx context.Context, env *environment, args []string) error {
	if len(args) == 0 || (args[0] != "offboard" && args[0] != "status") {
		fs := newFlagSet(env, "feed", "feed offboard|status NAME [flags]", feedDesc)
		if err := parseFlags(fs, env, args, nil); err != nil {
			return err
		}
		fs.Usage()
		return errors.New("feed: want offboard or status")
	}
	sub, args := args[0], args[1:]
	fs := newFlagSet(env, "feed "+sub, "feed "+sub+" NAME [flags]", feedDesc)
	vars := map[string]string{}
	var c connFlags
	var l lmsFlags
	c.register(fs, vars, false)
	if sub == "offboard" {
		l.register(fs, vars)
		l.registerRate(fs, vars)
	}
	by := fs.String("by", "", "offboard: who asks for it (required)")
	reason := fs.String("reason", "", "offboard: why, e.g. the contract's end (required)")
	out := fs.String("out", "", "offboard: directory of the report files (default ./offboard-<feed>-hold<id>-<UTC timestamp>)")
	// The feed name may come first (feed offboard acme --by ...) or last.
	var name string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if err := parseFlags(fs, env, args, vars); err != nil {
		return err
	}
	if name == "" && fs.NArg() == 1 {
		name = fs.Arg(0)
	} else if name == "" || fs.NArg() != 0 {
		return fmt.Errorf("feed %s: want exactly one feed name", sub)
	}
	if sub == "status" {
		db, _, err := c.openStore(ctx, env)
		if err != nil {
			return err
		}
		defer db.Close()
		cl, closed, err := db.FeedClosed(ctx, name)
		if err != nil {
			return err
		}
		if !closed {
			fmt.Fprintf(env.stdout, "feed %s is open\n", name)
			return nil
		}
		fmt.Fprintf(env.stdout, "feed %s was closed on %s by %s (hold %d): %s\n", name, cl.ClosedAt.UTC().Format(time.RFC3339), cl.ClosedBy, cl.HoldID, cl.Reason)
		return nil
	}
	if strings.TrimSpace(*by) == "" || strings.TrimSpace(*reason) == "" {
		return errors.New("feed offboard: --by and --reason are required: the plan is audited")
	}
	j, err := openJob(ctx, env, &c, &l)
	if err != nil {
		return err
	}
	defer j.app.Close()
	feeds := j.feeds
	feed, ok := feeds[name]
	if !ok {
		return fmt.Errorf("feed %q is not configured (feeds: %s)", name, strings.Join(feeds.Names(), ", "))
	}
	if feed.Kind == connector.FeedHR {
		return fmt.Errorf("feed %s is the HR feed: offboarding is for partner feeds (every account of the feed would go)", name)
	}
	keep := j.app.set.retention.keep(name)
	lms, rate, log, db := j.lms, j.perHour, j.log, j.db
	if cl, closed, err := db.FeedClosed(ctx, name); err != nil {
		return err
	} else if closed {
		return fmt.Errorf("feed %s was already closed on %s (hold %d)", name, cl.ClosedAt.UTC().Format(time.DateOnly), cl.HoldID)
	}
	// Offboarding is idempotent: while the feed's offboarding is held (or
	// approved and running), asking again names that hold and changes nothing.
	if h, ok, err := db.OffboardHold(ctx, name); err != nil {
		return err
	} else if ok {
		printOffboardHeld(env.stdout, h)
		return nil
	}
	action := connector.ActionDelete
	if keep {
		action = connector.ActionAnonymise
	}
	prog := newProgress(env.stderr, "scanned")
	sel, err := offboardSelection(ctx, lms, db, feed, action, func(n, total int) { prog.update(n, total, "") })
	prog.done()
	if err != nil {
		return err
	}
	anon := 0
	if action == connector.ActionAnonymise {
		anon = len(sel.Items)
	}
	est := estimateFor(ctx, lms, len(sel.Items), anon, rate)
	w := env.stdout
	stamp := time.Now().UTC().Format("20060102T150405Z")
	if len(sel.Items) == 0 {
		dir := cmp.Or(*out, "offboard-"+name+"-empty-"+stamp)
		if err := writeJobReport(dir, sel, est); err != nil {
			return err
		}
		fmt.Fprintf(w, "feed %s: no LMS accounts (%d scanned); report: %s\n", name, sel.Scanned, dir)
		if err := db.CloseFeed(ctx, store.ClosedFeed{Feed: name, ClosedBy: *by, Reason: *reason}); err != nil {
			return err
		}
		fmt.Fprintf(w, "the feed has no accounts; it is closed now\n")
		return nil
	}
	report := jobPayload{Filter: "every account of feed " + name, Selection: sel, Estimate: est}
	payload, err := json.Marshal(report)
	if err != nil {
		return err
	}
	// The store refuses a second offboarding hold of the feed (one started since
	// the check above): name the one that won.
	id, err := db.CreateJob(ctx, connector.Hold{Kind: connector.HoldOffboard, Feed: name,
		Reason: fmt.Sprintf("offboard feed %s (%s by %s: %s)", name, action, *by, *reason), Payload: payload}, sel.Items)
	var open *store.OpenJobError
	if errors.As(err, &open) {
		printOffboardHeld(w, open.Hold)
		return nil
	}
	if err != nil {
		return err
	}
	// The report directory names the hold, so two offboardings never share one.
	report.ReportDir = cmp.Or(*out, fmt.Sprintf("offboard-%s-hold%d-%s", name, id, stamp))
	if err := writeJobReport(report.ReportDir, sel, est); err != nil {
		return fmt.Errorf("hold %d is created, but its report was not written (hrsync holds show %d --csv - lists its accounts): %w", id, id, err)
	}
	if payload, err = json.Marshal(report); err != nil {
		return err
	}
	if err := db.SetJobPayload(ctx, id, payload); err != nil {
		return err
	}
	fmt.Fprintf(w, "feed %s: %d LMS accounts to %s (%d scanned)\n", name, len(sel.Items), action, sel.Scanned)
	fmt.Fprintf(w, "that needs %s\n", est)
	fmt.Fprintf(w, "report: %s (accounts.csv, report.json)\n", report.ReportDir)
	log.Info("offboarding held", "feed", name, "hold", id, "accounts", len(sel.Items), "action", action, "by", *by)
	fmt.Fprintf(w, "held as hold %d; nothing changed. Next: hrsync holds approve %d --by NAME --reason TEXT, then hrsync holds run %d\n", id, id, id)
	return nil
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

// offboardSelection lists every LMS account of feed: linked to one of its workers,
// or unlinked and in its scope.
func offboardSelection(ctx context.Context, lms connector.LMS, db *store.DB, feed connector.Feed, action connector.ActionKind, progress func(n, total int)) (connector.Selection, error) {
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

// offboardAnonymiser returns how an offboarding run anonymises one account: the
// account is anonymised and deactivated with its learning records kept
// pseudonymised, and a linked worker is erased from the store as hrsync erase
// does. It needs the erasure key when the job anonymises anything.
func offboardAnonymiser(ctx context.Context, db *store.DB, lms connector.LMS, key string, getenv func(string) string, h connector.Hold) (func(context.Context, connector.JobItem, connector.Account) (string, error), error) {
	// Offboarding items are all deletions or all anonymisations (the feed's
	// retention); the hold's counts tell which without reading the items.
	if h.Counts.Removals == h.Counts.Deletions {
		return nil, nil
	}
	if key == "" {
		return nil, fmt.Errorf("hold %d anonymises accounts: the erasure key is required (%s or --erasure-key), the same as hrsync erase uses", h.ID, erasureKeyEnv)
	}
	if err := useErasureKeys(ctx, db, key, getenv); err != nil {
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
		e := erasure{Worker: it.Worker, Subject: subj, Hash: hash, Account: a, Found: true}
		d, err := e.run(ctx, db, lms, true, reason, h.DecidedBy)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("anonymised as %s and erased from the store; learning records %s", connector.ErasedID(hash), d.Training), nil
	}, nil
}
