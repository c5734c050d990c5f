package connector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// DriftClass is what full reconciliation found for a (worker, account) pair or a
// stray account.
type DriftClass string

// The classes of a reconciliation report, in report order.
const (
	// ClassInSync: the plan for the pair is empty. Counted, never listed.
	ClassInSync DriftClass = "in_sync"
	// ClassMissing: the worker should have an account and has none, or its
	// linked account no longer exists; the plan creates one.
	ClassMissing DriftClass = "missing_in_lms"
	// ClassShouldBeInactive: the account is active, the facts say the person left.
	ClassShouldBeInactive DriftClass = "active_should_be_inactive"
	// ClassShouldBeActive: the account is inactive, the facts say the person works
	// here, and hrsync itself deactivated the account.
	ClassShouldBeActive DriftClass = "inactive_should_be_active"
	// ClassManuallyDeactivated: as ClassShouldBeActive, but the audit trail has no
	// hrsync deactivation after hrsync last activated the account (an admin
	// deactivated it by hand) and HR recorded no hire, rehire or resume since
	// (KeepsManualDeactivation): the converger keeps it inactive. Apply leaves it
	// alone unless ReactivateManual.
	ClassManuallyDeactivated DriftClass = "manually_deactivated"
	// ClassProfileDrift: the state is right, managed profile fields differ.
	ClassProfileDrift DriftClass = "profile_drift"
	// ClassUnlinkedMatched: the worker has no link yet, and the matching rules
	// find exactly one account for it. The converger would link it (and then
	// plan on it).
	ClassUnlinkedMatched DriftClass = "unlinked_matched"
	// ClassOrphan: an account no feed knows: not linked, and its externalId is
	// absent or not that of a known worker.
	ClassOrphan DriftClass = "orphan"
	// ClassDuplicate: a second account for one person: an account carrying the
	// externalId of a worker linked to another account, an account linked to a
	// predecessor while the person's account is another, or two accounts with
	// the externalId of one unlinked worker.
	ClassDuplicate DriftClass = "duplicate"
	// ClassDisputed: an unlinked worker whose employee number or email matches
	// two or more accounts in the feed's scope. The converger raises a review item.
	ClassDisputed DriftClass = "disputed_match"
)

// DriftClasses lists every class, in report order.
var DriftClasses = []DriftClass{ClassInSync, ClassMissing, ClassShouldBeInactive, ClassShouldBeActive,
	ClassManuallyDeactivated, ClassProfileDrift, ClassUnlinkedMatched, ClassOrphan, ClassDuplicate, ClassDisputed}

// Fixable reports whether apply mode marks the worker of a finding of class c due,
// so that the converger fixes it. Orphans and duplicates are only reported; a
// manual deactivation only when reactivateManual is set. A disputed match is
// marked, so that the converger raises its review item.
func (c DriftClass) Fixable(reactivateManual bool) bool {
	switch c {
	case ClassMissing, ClassShouldBeInactive, ClassShouldBeActive, ClassProfileDrift, ClassUnlinkedMatched, ClassDisputed:
		return true
	case ClassManuallyDeactivated:
		return reactivateManual
	}
	return false
}

// ClassifyPair runs Plan for a worker's want and the account that is its (nil:
// none) and names the drift. It performs no I/O. A plan that reactivates is
// ClassShouldBeActive; the caller turns it into ClassManuallyDeactivated when
// KeepsManualDeactivation says so. State drift wins over profile drift when a plan
// holds both.
func ClassifyPair(w Wanted, have *Account, p Policy) (DriftClass, []Action) {
	plan := Plan(w, have, p)
	if len(plan) == 0 {
		return ClassInSync, nil
	}
	if have == nil {
		return ClassMissing, plan
	}
	class := ClassProfileDrift
	for _, a := range plan {
		switch a.Kind {
		case ActionReactivate:
			class = ClassShouldBeActive
		case ActionDeactivate:
			class = ClassShouldBeInactive
		}
	}
	return class, plan
}

// ManualDeactivation reports whether an inactive account was deactivated outside
// hrsync, given the last audit entry with which hrsync set the account's state
// (create, deactivate or reactivate; nil: none). hrsync deactivated it only if
// that entry is a deactivation, or a create of an account that was created
// inactive (a leaver seen before any account existed).
func ManualDeactivation(last *AuditEntry) bool {
	if last == nil {
		return true
	}
	switch last.Action {
	case ActionDeactivate:
		return false
	case ActionCreate:
		if last.ActiveAfter != nil {
			return *last.ActiveAfter
		}
		// Rows from before active_after (migration 0014) say it in words only.
		return !strings.Contains(last.Detail, "created inactive")
	}
	return true
}

// WorkerLink is one worker row as full reconciliation pages through them.
type WorkerLink struct {
	Worker WorkerKey
	// AccountID is the account the worker itself is linked to, "" if none.
	AccountID string
	// Superseded is set when a later worker took this person over.
	Superseded bool
}

// ReconcileStore is what full reconciliation needs from the store: pages of
// workers in key order, the links and audit of a page of accounts, histories, and
// one write (MarkDue) for apply mode. Implemented by package store.
type ReconcileStore interface {
	HistoryLoader
	LinkReader
	LinkedHistoryReader
	StateActionReader
	// ListWorkerLinks returns up to limit workers after the key after (zero key:
	// from the start) in key order, each with its own link. Fewer than limit
	// means the end.
	ListWorkerLinks(ctx context.Context, after WorkerKey, limit int) ([]WorkerLink, error)
	// MarkDue makes the workers due at now (keeping an earlier due time) and
	// changes nothing else; it returns how many of them the store knows.
	MarkDue(ctx context.Context, ws []WorkerKey, now time.Time) (int, error)
}

// Finding is one line of a drift report: a pair or a stray account that is not in
// sync.
type Finding struct {
	Class      DriftClass `json:"class"`
	Feed       string     `json:"feed,omitempty"`
	WorkerID   string     `json:"worker_id,omitempty"`
	AccountID  string     `json:"account_id,omitempty"`
	ExternalID string     `json:"external_id,omitempty"`
	UserName   string     `json:"user_name,omitempty"`
	// WantState is what the worker's facts imply; empty for stray accounts.
	WantState State `json:"want_state,omitempty"`
	// LMSActive is the account's state in the LMS; nil when there is no account.
	LMSActive *bool `json:"lms_active,omitempty"`
	// Actions are the plan the converger would run, e.g. "deactivate u-000042".
	Actions []string `json:"actions,omitempty"`
	// Candidates are the account ids of a duplicate or disputed match.
	Candidates []string `json:"candidates,omitempty"`
	Detail     string   `json:"detail,omitempty"`
	// MarkedDue is set in apply mode when the worker was marked due to be fixed.
	MarkedDue bool `json:"marked_due,omitempty"`
}

// ReconcileSummary counts one reconciliation.
type ReconcileSummary struct {
	Started  time.Time     `json:"started"`
	Finished time.Time     `json:"finished"`
	Duration time.Duration `json:"duration_ns"`
	Apply    bool          `json:"apply"`
	// Workers is how many workers were examined (superseded ones are not: their
	// successor speaks for them); Accounts how many LMS accounts were listed.
	Workers  int `json:"workers"`
	Accounts int `json:"accounts"`
	// Counts is the number of pairs or stray accounts per class; ByFeed the same
	// per feed ("" for orphans that name no configured feed).
	Counts map[DriftClass]int            `json:"counts"`
	ByFeed map[string]map[DriftClass]int `json:"by_feed"`
	// Skipped counts workers of feeds that are not configured.
	Skipped int `json:"skipped"`
	// LinksChecked is how many links were checked one by one because the pass
	// over the LMS did not account for every link; StaleLinks how many of those
	// pointed at an account that no longer exists.
	LinksChecked int `json:"links_checked"`
	StaleLinks   int `json:"stale_links"`
	// MarkedDue is how many workers apply mode marked due.
	MarkedDue int `json:"marked_due"`
}

// Drift returns how many findings are not in sync.
func (s ReconcileSummary) Drift() int {
	n := 0
	for c, k := range s.Counts {
		if c != ClassInSync {
			n += k
		}
	}
	return n
}

func (s *ReconcileSummary) count(feed string, c DriftClass) {
	if s.Counts == nil {
		s.Counts = map[DriftClass]int{}
		s.ByFeed = map[string]map[DriftClass]int{}
	}
	s.Counts[c]++
	m := s.ByFeed[feed]
	if m == nil {
		m = map[DriftClass]int{}
		s.ByFeed[feed] = m
	}
	m[c]++
}

// ReportSink receives the findings of one reconciliation, then its summary.
// *ReportWriter implements it.
type ReportSink interface {
	Add(f Finding) error
	Close(s ReconcileSummary) error
}

// ReconcilerHooks are optional callbacks for metrics and tests. Each may be nil.
type ReconcilerHooks struct {
	// Reconciled is called after every pass of Start's loop (and of Reconcile),
	// with its summary and error. Tests wait on it for exactly one pass.
	Reconciled func(s ReconcileSummary, err error)
	// MarkedDue is called in apply mode after workers were marked due, so that a
	// daemon can wake its converger (Converger.Notify).
	MarkedDue func(n int)
}

// ReconcilerConfig configures a Reconciler. Zero values get the defaults listed.
type ReconcilerConfig struct {
	Store ReconcileStore
	LMS   LMS
	Feeds Feeds
	// Policy returns the policy of a feed; default DefaultPolicy. Use the
	// converger's, so that both plan alike.
	Policy func(feed string) Policy
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
	// PageSize is how many workers and accounts one page holds; default 1000
	// (the usual SCIM maximum). Memory is bounded by it.
	PageSize int
	// Concurrency is how many LMS lookups run at once for unlinked workers and
	// link checks; default 8.
	Concurrency int
	// Apply marks drifted workers due (Store.MarkDue) so that the converger fixes
	// them through the same path, safeguards and audit as live events. The
	// reconciler itself never changes the LMS.
	Apply bool
	// ReactivateManual lets apply mark workers whose account an admin deactivated
	// by hand; default false: they are only reported.
	ReactivateManual bool
	// Interval is the time between passes of Start's loop.
	Interval time.Duration
	// RunOnStart makes Start's loop run a pass at once, not after Interval.
	RunOnStart bool
	// Report opens the sink of one of Start's passes; nil: findings are only
	// counted and the summary logged.
	Report func(started time.Time) (ReportSink, error)
	Hooks  ReconcilerHooks
	// Attributes says which profile fields the LMS does not keep; they are left
	// out of profile_drift. Pass the converger's (ConvergerConfig.Attributes), so
	// that what its writes learnt reaches the report; nil: every field counts.
	Attributes AttributeKeeper
	// Mirror, if set, is refreshed with every page of accounts a pass reads
	// (mirror.go); nil: none.
	Mirror AccountMirror
}

// Reconciler compares every worker in the store with every account in the LMS,
// with the same Want and Plan as the converger, and reports the drift. Memory is
// bounded by the page size: see docs/reconcile.md for the method. Run one pass
// with Reconcile, or a schedule with Start and Stop.
type Reconciler struct {
	cfg ReconcilerConfig
	log *slog.Logger

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// NewReconciler checks cfg and fills in defaults.
func NewReconciler(cfg ReconcilerConfig) (*Reconciler, error) {
	if cfg.Store == nil || cfg.LMS == nil {
		return nil, errors.New("reconciler: Store and LMS are required")
	}
	if len(cfg.Feeds) == 0 {
		return nil, errors.New("reconciler: no feeds configured")
	}
	if cfg.Policy == nil {
		cfg.Policy = func(string) Policy { return DefaultPolicy() }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Policy = withAttributes(cfg.Policy, cfg.Attributes)
	if cfg.PageSize <= 0 {
		cfg.PageSize = 1000
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	return &Reconciler{cfg: cfg, log: cfg.Logger}, nil
}

// Start runs a pass every Interval (the first at once if RunOnStart) in the
// background until ctx is done or Stop is called. A failed pass is logged and
// retried at the next tick. It returns an error only if Interval is not positive
// or the loop already runs.
func (r *Reconciler) Start(ctx context.Context) error {
	if r.cfg.Interval <= 0 {
		return errors.New("reconciler: Interval must be positive to Start")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cancel != nil {
		return errors.New("reconciler: already started")
	}
	ctx, cancel := context.WithCancel(ctx)
	r.cancel, r.done = cancel, make(chan struct{})
	go r.loop(ctx, r.done)
	return nil
}

// Stop ends Start's loop and waits for a pass in flight to end (it is cancelled).
// It is safe to call twice, and before Start.
func (r *Reconciler) Stop() {
	r.mu.Lock()
	cancel, done := r.cancel, r.done
	r.cancel, r.done = nil, nil
	r.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

func (r *Reconciler) loop(ctx context.Context, done chan struct{}) {
	defer close(done)
	first := r.cfg.Interval
	if r.cfg.RunOnStart {
		first = 0
	}
	timer := time.NewTimer(first)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		r.scheduledPass(ctx)
		timer.Reset(r.cfg.Interval)
	}
}

func (r *Reconciler) scheduledPass(ctx context.Context) {
	var sink ReportSink
	if r.cfg.Report != nil {
		var err error
		if sink, err = r.cfg.Report(r.cfg.Now()); err != nil {
			r.log.Error("reconcile: cannot open the report; skipping this pass", "err", err)
			if r.cfg.Hooks.Reconciled != nil {
				r.cfg.Hooks.Reconciled(ReconcileSummary{}, err)
			}
			return
		}
	}
	add := func(Finding) error { return nil }
	if sink != nil {
		add = sink.Add
	}
	s, err := r.reconcile(ctx, add)
	if sink != nil {
		err = errors.Join(err, sink.Close(s))
	}
	if err != nil && ctx.Err() == nil {
		r.log.Error("reconcile pass failed", "err", err)
	}
}

// Reconcile runs one pass: every finding that is not in sync goes to add, as it is
// found; the summary comes back. In apply mode the fixable findings' workers are
// marked due page by page before their findings are added. A pass in flight when
// ctx ends returns ctx's error with what it counted so far.
func (r *Reconciler) Reconcile(ctx context.Context, add func(Finding) error) (ReconcileSummary, error) {
	return r.reconcile(ctx, add)
}

func (r *Reconciler) reconcile(ctx context.Context, add func(Finding) error) (ReconcileSummary, error) {
	ctx = WithLMSPriority(ctx, LMSBackground) // a pass's reads wait behind live changes under the LMS's rate limit
	p := &pass{r: r, add: add, now: r.cfg.Now(), matched: map[string]struct{}{}}
	p.sum.Started, p.sum.Apply = time.Now(), r.cfg.Apply
	p.sum.Counts, p.sum.ByFeed = map[DriftClass]int{}, map[string]map[DriftClass]int{}
	err := p.run(ctx)
	if m := r.cfg.Mirror; m != nil && err == nil {
		// Every account the LMS has was listed, and its copy refreshed, since
		// the pass began: a copy seen before that is of an account that is gone
		// (deleted by hand), personal data kept for nothing.
		if n, ferr := m.ForgetAccountsSeenBefore(ctx, p.now); ferr != nil {
			r.log.Warn("dropping the account mirror's copies of accounts the LMS no longer has failed", "err", ferr)
		} else if n > 0 {
			r.log.Info("dropped the account mirror's copies of accounts the LMS no longer has", "accounts", n)
		}
	}
	p.sum.Finished = time.Now()
	p.sum.Duration = p.sum.Finished.Sub(p.sum.Started)
	r.log.Info("reconcile pass done", "apply", r.cfg.Apply, "workers", p.sum.Workers, "accounts", p.sum.Accounts,
		"drift", p.sum.Drift(), "marked_due", p.sum.MarkedDue, "duration", p.sum.Duration, "err", err)
	if r.cfg.Hooks.Reconciled != nil {
		r.cfg.Hooks.Reconciled(p.sum, err)
	}
	return p.sum, err
}

// pass is the state of one reconciliation. Apart from the page in hand it holds
// the link buckets (fixed size) and the ids of accounts that unlinked workers
// matched (as many as there is drift of that kind).
type pass struct {
	r       *Reconciler
	add     func(Finding) error
	now     time.Time
	sum     ReconcileSummary
	buckets linkBuckets
	// matched are accounts that the workers pass already reported, as the match
	// of an unlinked worker; the accounts pass skips them.
	matched map[string]struct{}
}

// pending is a finding waiting for its page's MarkDue.
type pending struct {
	f     Finding
	owner WorkerKey // the worker to mark due; zero for stray accounts
	// want and facts are the owner's, kept for a ClassShouldBeActive pair until
	// its page's audit is read (KeepsManualDeactivation).
	want  *Wanted
	facts []Fact
}

func (p *pass) run(ctx context.Context) error {
	if err := p.workersPass(ctx); err != nil {
		return fmt.Errorf("reconcile: workers: %w", err)
	}
	if err := p.accountsPass(ctx); err != nil {
		return fmt.Errorf("reconcile: accounts: %w", err)
	}
	if p.buckets.clean() {
		return nil
	}
	if err := p.staleLinksPass(ctx); err != nil {
		return fmt.Errorf("reconcile: links: %w", err)
	}
	return nil
}

// flush marks the fixable findings' workers due (apply mode), counts every
// finding and hands those that are not in sync to add.
func (p *pass) flush(ctx context.Context, page []pending) error {
	cfg := &p.r.cfg
	if cfg.Apply {
		var keys []WorkerKey
		for i := range page {
			if page[i].owner != (WorkerKey{}) && page[i].f.Class.Fixable(cfg.ReactivateManual) {
				keys = append(keys, page[i].owner)
				page[i].f.MarkedDue = true
			}
		}
		if len(keys) > 0 {
			n, err := cfg.Store.MarkDue(ctx, keys, p.now)
			if err != nil {
				return err
			}
			p.sum.MarkedDue += n
			if cfg.Hooks.MarkedDue != nil {
				cfg.Hooks.MarkedDue(n)
			}
		}
	}
	for _, pd := range page {
		p.sum.count(pd.f.Feed, pd.f.Class)
		if pd.f.Class == ClassInSync {
			continue
		}
		if err := p.add(pd.f); err != nil {
			return fmt.Errorf("report: %w", err)
		}
	}
	return nil
}

// workersPass pages through the workers in key order. It notes every link in the
// buckets and classifies the workers that have none; linked workers are
// classified by the accounts pass, which meets their account.
func (p *pass) workersPass(ctx context.Context) error {
	cfg := &p.r.cfg
	var after WorkerKey
	for {
		page, err := cfg.Store.ListWorkerLinks(ctx, after, cfg.PageSize)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			return nil
		}
		after = page[len(page)-1].Worker
		var unlinked []WorkerKey
		for _, wl := range page {
			if wl.AccountID != "" {
				p.buckets.add(wl.AccountID, 1)
			}
			if wl.Superseded {
				continue
			}
			p.sum.Workers++
			if wl.AccountID == "" {
				unlinked = append(unlinked, wl.Worker)
			}
		}
		if len(unlinked) > 0 {
			hists, err := cfg.Store.LoadHistories(ctx, unlinked)
			if err != nil {
				return err
			}
			out, err := p.classifyUnlinked(ctx, hists, nil)
			if err != nil {
				return err
			}
			if err := p.flush(ctx, out); err != nil {
				return err
			}
		}
		if len(page) < cfg.PageSize {
			return nil
		}
	}
}

// classifyUnlinked classifies workers that have no link of their own, with the
// converger's matching rules. A worker whose predecessor is linked is left to the
// accounts pass. notes prefixes a worker's detail (a stale link).
func (p *pass) classifyUnlinked(ctx context.Context, hists []History, notes map[WorkerKey]string) ([]pending, error) {
	cfg := &p.r.cfg
	type job struct {
		feed Feed
		pol  Policy
		want Wanted
		m    Match
		err  error
	}
	var jobs []*job
	var out []pending
	for _, h := range hists {
		if h.SupersededBy != nil || len(h.Links) > 0 {
			continue
		}
		feed, ok := cfg.Feeds[h.Worker.Feed]
		if !ok {
			p.sum.Skipped++
			continue
		}
		pol := cfg.Policy(feed.Name)
		want, _ := Want(h.Facts, p.now, pol)
		want.Worker = h.Worker
		if want.State == StateAbsent {
			out = append(out, pending{f: Finding{Class: ClassInSync, Feed: h.Worker.Feed, WorkerID: h.Worker.WorkerID}})
			continue
		}
		jobs = append(jobs, &job{feed: feed, pol: pol, want: want})
	}
	parallel(len(jobs), cfg.Concurrency, func(i int) {
		jobs[i].m, jobs[i].err = Matcher{LMS: cfg.LMS, Links: cfg.Store}.Match(ctx, jobs[i].feed, jobs[i].want)
	})
	for _, j := range jobs {
		if j.err != nil {
			return nil, j.err
		}
		w := j.want
		f := Finding{Feed: w.Worker.Feed, WorkerID: w.Worker.WorkerID, WantState: w.State}
		note := notes[w.Worker]
		switch {
		case len(j.m.Ambiguous) > 0:
			f.Class = ClassDisputed
			if j.m.Attr == ByExternalID {
				f.Class = ClassDuplicate
			}
			for _, a := range j.m.Ambiguous {
				f.Candidates = append(f.Candidates, a.ID)
				p.matched[a.ID] = struct{}{}
			}
			f.Detail = fmt.Sprintf("%d accounts in scope match %s %q; the converger refuses to guess", len(j.m.Ambiguous), j.m.Attr, j.m.Value)
		case j.m.Account != nil:
			a := j.m.Account
			p.matched[a.ID] = struct{}{}
			_, plan := ClassifyPair(w, a, j.pol)
			f.Class = ClassUnlinkedMatched
			f.AccountID, f.ExternalID, f.UserName = a.ID, a.ExternalID, a.UserName
			f.LMSActive = &a.Active
			f.Actions = append([]string{"link " + a.ID}, actionStrings(plan)...)
			f.Detail = fmt.Sprintf("no link; %s %q matches this account", j.m.Attr, j.m.Value)
		default:
			var plan []Action
			f.Class, plan = ClassifyPair(w, nil, j.pol)
			f.Actions = actionStrings(plan)
			if f.Class == ClassMissing {
				f.Detail = "no account matches by externalId, employee number or email"
			}
		}
		if note != "" {
			f.Detail = strings.TrimSuffix(note+"; "+f.Detail, "; ")
		}
		out = append(out, pending{f: f, owner: w.Worker})
	}
	return out, nil
}

// accountsPass pages through the LMS accounts (the next page is fetched while
// this one is classified). Linked accounts are paired with their worker; the
// others are matched to a known worker by externalId or reported as orphans.
func (p *pass) accountsPass(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pages := p.fetchPages(ctx)
	defer func() {
		cancel()
		for range pages { // let the fetcher end
		}
	}()
	for pg := range pages {
		if pg.err != nil {
			return pg.err
		}
		p.sum.Accounts += len(pg.accounts)
		if err := p.accountsPage(ctx, pg.accounts); err != nil {
			return err
		}
	}
	return nil
}

type accountPage struct {
	accounts []Account
	err      error
}

// fetchPages lists the LMS accounts page by page, one page ahead of the reader.
func (p *pass) fetchPages(ctx context.Context) <-chan accountPage {
	out := make(chan accountPage, 1)
	size := p.r.cfg.PageSize
	go func() {
		defer close(out)
		asked := p.r.cfg.Now() // when the page's call started, at the latest
		_, err := EachAccountPage(ctx, p.r.cfg.LMS, size, func(pg AccountPage) error {
			if m := p.r.cfg.Mirror; m != nil && len(pg.Accounts) > 0 {
				// Stamped with when it was asked for, so that a write the
				// converger made while the page was on its way is not undone.
				if err := m.RememberAccounts(ctx, asked, pg.Accounts); err != nil && ctx.Err() == nil {
					p.r.log.Warn("refreshing the account mirror from a reconciliation page failed", "accounts", len(pg.Accounts), "err", err)
				}
			}
			defer func() { asked = p.r.cfg.Now() }()
			select {
			case out <- accountPage{accounts: pg.Accounts}:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		if err != nil && ctx.Err() == nil {
			select {
			case out <- accountPage{err: err}:
			case <-ctx.Done():
			}
		}
	}()
	return out
}

func (p *pass) accountsPage(ctx context.Context, accts []Account) error {
	cfg := &p.r.cfg
	ids := make([]string, len(accts))
	for i, a := range accts {
		ids[i] = a.ID
	}
	linked, err := cfg.Store.LinkedHistories(ctx, ids)
	if err != nil {
		return err
	}
	// Linked workers that were taken over are classified with their successor's
	// history; stray accounts carrying a known worker's externalId with that
	// worker's. The others (nearly all) are classified with their own history
	// from linked, without a copy.
	var keys []WorkerKey
	for i := range accts {
		a := &accts[i]
		if h, ok := linked[a.ID]; ok {
			if h.SupersededBy != nil {
				keys = append(keys, h.Worker)
			}
		} else if k, ok := p.externalWorker(*a); ok {
			if _, seen := p.matched[a.ID]; !seen {
				keys = append(keys, k)
			}
		}
	}
	owners, err := p.ownerHistories(ctx, keys)
	if err != nil {
		return err
	}

	// Only findings that are not in sync are kept for flush; pairs in sync
	// are counted at once.
	var out []pending
	var checkManual []int
	for i := range accts {
		a := &accts[i]
		if h, ok := linked[a.ID]; ok {
			p.buckets.add(a.ID, -1)
			owner := h
			if h.SupersededBy != nil {
				owner = owners[h.Worker]
			}
			pd, ok := p.pair(a, h.Worker, owner)
			if !ok {
				continue
			}
			if pd.f.Class == ClassInSync {
				p.sum.count(pd.f.Feed, ClassInSync)
				continue
			}
			if pd.f.Class == ClassShouldBeActive {
				checkManual = append(checkManual, len(out))
			}
			out = append(out, pd)
			continue
		}
		if _, seen := p.matched[a.ID]; seen {
			delete(p.matched, a.ID) // reported with its worker; each account is listed once
			continue
		}
		out = append(out, p.stray(*a, owners))
	}
	if len(checkManual) > 0 {
		ids := make([]string, len(checkManual))
		for i, j := range checkManual {
			ids[i] = out[j].f.AccountID
		}
		last, err := cfg.Store.LastStateActions(ctx, ids)
		if err != nil {
			return err
		}
		for _, j := range checkManual {
			var entry *AuditEntry
			if e, ok := last[out[j].f.AccountID]; ok {
				entry = &e
			}
			if KeepsManualDeactivation(entry, *out[j].want, out[j].facts) {
				out[j].f.Class = ClassManuallyDeactivated
				out[j].f.Detail = strings.TrimSuffix("inactive in the LMS, but hrsync never deactivated it: an admin did, and HR recorded no hire, rehire or resume since; "+out[j].f.Detail, "; ")
			}
			out[j].want, out[j].facts = nil, nil
		}
	}
	return p.flush(ctx, out)
}

// pair classifies account a, linked to worker k whose account's owner has
// history h. ok is false when the worker's feed is not configured.
func (p *pass) pair(a *Account, k WorkerKey, h History) (pending, bool) {
	cfg := &p.r.cfg
	feed, ok := cfg.Feeds[h.Worker.Feed]
	if !ok {
		p.sum.Skipped++
		return pending{}, false
	}
	pol := cfg.Policy(feed.Name)
	want, _ := Want(h.Facts, p.now, pol)
	want.Worker = h.Worker
	f := Finding{Feed: h.Worker.Feed, WorkerID: h.Worker.WorkerID, AccountID: a.ID, ExternalID: a.ExternalID,
		UserName: a.UserName, WantState: want.State}
	// The converger uses the first link along the chain: the worker's own, then
	// its predecessors'. Any other linked account is a second one.
	for i := -1; i < len(want.PreviousWorkerIDs); i++ {
		id := h.Worker.WorkerID
		if i >= 0 {
			id = want.PreviousWorkerIDs[i]
		}
		if acct, ok := h.Links[id]; ok {
			if acct != a.ID {
				f.Class, f.Candidates = ClassDuplicate, []string{acct, a.ID}
				f.Detail = fmt.Sprintf("linked to %s, but %s converges account %s", k, h.Worker, acct)
				f.LMSActive = new(a.Active)
				return pending{f: f}, true
			}
			break
		}
	}
	var plan []Action
	f.Class, plan = ClassifyPair(want, a, pol)
	if f.Class == ClassInSync {
		return pending{f: f, owner: h.Worker}, true
	}
	f.LMSActive = new(a.Active)
	f.Actions = actionStrings(plan)
	if f.Class == ClassProfileDrift || slices.ContainsFunc(plan, func(x Action) bool { return x.Kind == ActionUpdate }) {
		f.Detail = "fields differ: " + strings.Join(ProfileDriftOf(Desired(want), *a, pol.Attributes), ", ")
	}
	pd := pending{f: f, owner: h.Worker}
	if f.Class == ClassShouldBeActive {
		pd.want, pd.facts = &want, h.Facts
	}
	return pd, true
}

// stray classifies an account that no worker is linked to.
func (p *pass) stray(a Account, owners map[WorkerKey]History) pending {
	f := Finding{AccountID: a.ID, ExternalID: a.ExternalID, UserName: a.UserName, LMSActive: &a.Active}
	k, ok := p.externalWorker(a)
	if ok {
		f.Feed = k.Feed
	}
	h, known := owners[k]
	if !ok || !known || len(h.Facts) == 0 {
		f.Class = ClassOrphan
		switch {
		case a.ExternalID == "":
			f.Detail = "no link and no externalId"
		default:
			f.Detail = "no link, and the externalId is not that of a known worker"
		}
		return pending{f: f}
	}
	f.WorkerID = h.Worker.WorkerID
	for _, acct := range h.Links {
		if acct != a.ID {
			f.Class, f.Candidates = ClassDuplicate, []string{acct, a.ID}
			f.Detail = fmt.Sprintf("carries the externalId of %s, whose account is %s", k, acct)
			return pending{f: f}
		}
	}
	// A known worker without a link whose matching did not pick this account
	// (nothing is due for the worker yet, or the worker is out of the pass).
	f.Class = ClassUnlinkedMatched
	f.Detail = fmt.Sprintf("carries the externalId of %s, which has no link", k)
	return pending{f: f, owner: h.Worker}
}

// externalWorker returns the worker whose externalId a carries, if it names a
// configured feed.
func (p *pass) externalWorker(a Account) (WorkerKey, bool) {
	feed, id, ok := strings.Cut(a.ExternalID, ":")
	if !ok || id == "" {
		return WorkerKey{}, false
	}
	if _, ok := p.r.cfg.Feeds[feed]; !ok {
		return WorkerKey{}, false
	}
	return WorkerKey{Feed: feed, WorkerID: id}, true
}

// ownerHistories returns, for each of keys, the history of the worker that owns
// its account now: the key itself, or the end of its chain of successors. A key
// the store does not know maps to a history without facts.
func (p *pass) ownerHistories(ctx context.Context, keys []WorkerKey) (map[WorkerKey]History, error) {
	out := make(map[WorkerKey]History, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	keys = slices.Clone(keys)
	slices.SortFunc(keys, func(a, b WorkerKey) int { return strings.Compare(a.String(), b.String()) })
	keys = slices.Compact(keys)
	origins := make(map[WorkerKey][]WorkerKey, len(keys))
	for _, k := range keys {
		origins[k] = []WorkerKey{k}
	}
	for depth := 0; len(keys) > 0; depth++ {
		hists, err := p.r.cfg.Store.LoadHistories(ctx, keys)
		if err != nil {
			return nil, err
		}
		next := map[WorkerKey][]WorkerKey{}
		for _, h := range hists {
			if h.SupersededBy == nil || depth >= 16 {
				for _, o := range origins[h.Worker] {
					out[o] = h
				}
				continue
			}
			next[*h.SupersededBy] = append(next[*h.SupersededBy], origins[h.Worker]...)
		}
		keys = keys[:0]
		for k := range next {
			keys = append(keys, k)
		}
		origins = next
	}
	return out, nil
}

// staleLinksPass runs when the accounts pass did not meet every link the
// workers pass counted: it reads the links again, looks up in the LMS each link
// whose bucket does not balance, and classifies the workers whose linked account
// is gone as the converger would after unlinking them.
func (p *pass) staleLinksPass(ctx context.Context) error {
	cfg := &p.r.cfg
	var after WorkerKey
	for {
		page, err := cfg.Store.ListWorkerLinks(ctx, after, cfg.PageSize)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			return nil
		}
		after = page[len(page)-1].Worker
		var check []WorkerLink
		for _, wl := range page {
			if wl.AccountID != "" && !p.buckets.balanced(wl.AccountID) {
				check = append(check, wl)
			}
		}
		p.sum.LinksChecked += len(check)
		gone := make([]bool, len(check))
		errs := make([]error, len(check))
		parallel(len(check), cfg.Concurrency, func(i int) {
			_, err := cfg.LMS.GetAccount(ctx, check[i].AccountID)
			switch {
			case errors.Is(err, ErrNotFound):
				gone[i] = true
			case err != nil:
				errs[i] = fmt.Errorf("get linked account %s: %w", check[i].AccountID, err)
			}
		})
		if err := errors.Join(errs...); err != nil {
			return err
		}
		var stale []WorkerKey
		staleAcct := map[WorkerKey]string{}
		for i, wl := range check {
			if gone[i] {
				stale = append(stale, wl.Worker)
				staleAcct[wl.Worker] = wl.AccountID
				p.sum.StaleLinks++
			}
		}
		if len(stale) > 0 {
			owners, err := p.ownerHistories(ctx, stale)
			if err != nil {
				return err
			}
			var hists []History
			notes := map[WorkerKey]string{}
			seen := map[WorkerKey]bool{}
			for _, k := range stale {
				h := owners[k]
				gone := staleAcct[k]
				for id, acct := range h.Links {
					if acct == gone {
						delete(h.Links, id)
					}
				}
				notes[h.Worker] = strings.TrimPrefix(notes[h.Worker]+"; ", "; ") + fmt.Sprintf("linked account %s no longer exists in the LMS", gone)
				if !seen[h.Worker] {
					seen[h.Worker] = true
					hists = append(hists, h)
				}
			}
			out, err := p.classifyUnlinked(ctx, hists, notes)
			if err != nil {
				return err
			}
			if err := p.flush(ctx, out); err != nil {
				return err
			}
		}
		if len(page) < cfg.PageSize {
			return nil
		}
	}
}

// linkBuckets checks, in fixed memory, that the accounts pass met every link the
// workers pass saw: each link adds its account id's hash to a bucket (count and
// xor), each linked account listed by the LMS takes it out again. A bucket that
// does not come back to zero holds a link whose account the LMS did not list (or
// a link that changed meanwhile); only its links are looked up one by one.
type linkBuckets struct {
	n [linkBucketCount]int32
	x [linkBucketCount]uint64
}

const linkBucketCount = 4096

// hashID is 64-bit FNV-1a of id.
func hashID(id string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= 1099511628211
	}
	return h
}

func (b *linkBuckets) add(accountID string, d int32) {
	h := hashID(accountID)
	i := h % linkBucketCount
	b.n[i] += d
	b.x[i] ^= h
}

func (b *linkBuckets) balanced(accountID string) bool {
	i := hashID(accountID) % linkBucketCount
	return b.n[i] == 0 && b.x[i] == 0
}

func (b *linkBuckets) clean() bool {
	for i := range b.n {
		if b.n[i] != 0 || b.x[i] != 0 {
			return false
		}
	}
	return true
}

// parallel runs fn(0..n-1), at most conc at a time.
func parallel(n, conc int, fn func(i int)) {
	if n == 0 {
		return
	}
	if n == 1 || conc <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, conc)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			fn(i)
		})
	}
	wg.Wait()
}

func actionStrings(plan []Action) []string {
	if len(plan) == 0 {
		return nil
	}
	out := make([]string, len(plan))
	for i, a := range plan {
		out[i] = a.String()
	}
	return out
}
