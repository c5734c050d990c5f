package connector

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// Dormant-account clean-up and partner offboarding (docs/cleanup.md).
//
// Both are jobs: a list of LMS accounts to delete or anonymise, written as a
// report, held for a person (a hold of kind cleanup or offboard), approved whole or
// for a sample first, and then run in batches under the LMS rate limit by a
// JobRunner. Every batch is re-checked against the LMS just before it runs: an
// account that became active since the report, changed, or is now linked to
// someone employed is skipped, never deleted. Each batch's results are committed
// before the next starts, so a run that is killed resumes where it stopped, and an
// account it deleted just before the kill is found gone and counted done.

// The hold kinds of jobs.
const (
	HoldCleanup  HoldKind = "cleanup"  // dormant accounts to delete
	HoldOffboard HoldKind = "offboard" // every account of a partner feed, to delete or anonymise
)

// IsJob reports whether holds of kind k carry job items that hrsync runs itself
// (hrsync holds run), rather than workers the converger runs.
func (k HoldKind) IsJob() bool { return k == HoldCleanup || k == HoldOffboard }

// DormantFilter selects accounts for clean-up. Its conditions are all required.
// Whatever the filter, an account is never a candidate when the LMS cannot tell its
// activity, when it has completions, uploaded content or rewards (learning records
// and content are lost with the account), or when it is linked to someone the HR
// facts say is employed.
type DormantFilter struct {
	// NoLogin: never logged in.
	NoLogin bool `json:"no_login,omitempty"`
	// NoEnrollments: not enrolled in any course.
	NoEnrollments bool `json:"no_enrollments,omitempty"`
	// CreatedBefore: created before this instant (zero: any time). An account whose
	// creation time the LMS does not report is not a candidate when it is set.
	CreatedBefore time.Time `json:"created_before,omitzero"`
	// Feed: only accounts of this feed, linked to its workers or in its scope.
	Feed string `json:"feed,omitempty"`
	// Orphaned: only accounts that no feed knows: linked to no worker and in no
	// feed's scope.
	Orphaned bool `json:"orphaned,omitempty"`
}

// Validate reports a filter that would select too much or contradicts itself.
func (f DormantFilter) Validate() error {
	if !f.NoLogin && !f.NoEnrollments {
		return errors.New("a clean-up needs --no-login or --no-enrollments (or both): an account that was used is never dormant")
	}
	if f.Feed != "" && f.Orphaned {
		return errors.New("--feed and --orphaned exclude each other: orphans belong to no feed")
	}
	return nil
}

// String describes the filter in words, for reports and holds.
func (f DormantFilter) String() string {
	var parts []string
	if f.NoLogin {
		parts = append(parts, "never logged in")
	}
	if f.NoEnrollments {
		parts = append(parts, "no enrollments")
	}
	parts = append(parts, "no completions, uploads or rewards")
	if !f.CreatedBefore.IsZero() {
		parts = append(parts, "created before "+f.CreatedBefore.UTC().Format(time.RFC3339))
	}
	switch {
	case f.Feed != "":
		parts = append(parts, "in feed "+f.Feed)
	case f.Orphaned:
		parts = append(parts, "orphaned")
	}
	return strings.Join(parts, ", ")
}

// Exclusion reasons a report counts.
const (
	ExcludedUnknown   = "activity unknown"
	ExcludedRecords   = "has completions, uploads or rewards"
	ExcludedLogin     = "logged in"
	ExcludedEnrolled  = "enrolled"
	ExcludedCreated   = "created on or after the date"
	ExcludedNoCreated = "creation date unknown"
	ExcludedEmployed  = "linked to someone employed"
	ExcludedScope     = "outside the feed filter"
)

// Dormant reports whether account a with activity act passes the filter's
// activity and age rules, or the reason it is excluded. Feed, orphan and
// employment rules need the store; Selector applies them.
func (f DormantFilter) Dormant(a Account, act Activity) (bool, string) {
	switch {
	case !act.Known:
		return false, ExcludedUnknown
	case act.Completions > 0 || act.Uploads > 0 || act.Rewards > 0:
		return false, ExcludedRecords
	case f.NoLogin && act.LastLogin != nil:
		return false, ExcludedLogin
	case f.NoEnrollments && act.Enrollments > 0:
		return false, ExcludedEnrolled
	case !f.CreatedBefore.IsZero() && a.Created.IsZero():
		return false, ExcludedNoCreated
	case !f.CreatedBefore.IsZero() && !a.Created.Before(f.CreatedBefore):
		return false, ExcludedCreated
	}
	return true, ""
}

// JobItemStatus is where one item of a job stands.
type JobItemStatus string

// The states of a job item. Only pending items run.
const (
	JobPending JobItemStatus = "pending"
	JobDone    JobItemStatus = "done"    // deleted or anonymised (or found already gone)
	JobSkipped JobItemStatus = "skipped" // kept: it became active, changed, or is linked to someone employed
	JobFailed  JobItemStatus = "failed"  // the LMS refused for good; Detail says why
)

// JobItem is one account of a job.
type JobItem struct {
	Seq       int        `json:"seq"`
	AccountID string     `json:"account_id"`
	Action    ActionKind `json:"action"`
	// Version is the account's ETag when the report saw it.
	Version string `json:"version,omitempty"`
	// Worker is the worker linked to the account, if any.
	Worker   WorkerKey `json:"worker,omitzero"`
	UserName string    `json:"user_name,omitempty"`
	Email    string    `json:"email,omitempty"`
	Created  time.Time `json:"created,omitzero"`
	// Activity is the account's activity when the report saw it.
	Activity Activity      `json:"activity"`
	Status   JobItemStatus `json:"status"`
	Detail   string        `json:"detail,omitempty"`
	DoneAt   *time.Time    `json:"done_at,omitempty"`
}

// Feed returns the item's feed for reports: the linked worker's, or "(orphan)".
func (it JobItem) Feed() string {
	if it.Worker.Feed != "" {
		return it.Worker.Feed
	}
	return "(orphan)"
}

// CleanupStore is what selecting candidates needs from the store.
type CleanupStore interface {
	LinkedHistoryReader
}

// Selector finds the accounts a DormantFilter selects, by paging through every
// LMS account. It keeps only the candidates in memory.
type Selector struct {
	LMS   LMS
	Store CleanupStore
	// Feeds are the configured feeds, for scope and orphan rules; Policy gives a
	// feed's policy (nil: DefaultPolicy), to decide who is employed.
	Feeds  Feeds
	Policy func(feed string) Policy
	Now    func() time.Time
	// PageSize is the LMS page size; default 500.
	PageSize int
	// Progress, if set, is called after each page with the accounts scanned and
	// the LMS's total.
	Progress func(scanned, total int)
}

// Selection is the result of a scan: the candidates and why the rest were left.
type Selection struct {
	Filter   DormantFilter  `json:"filter"`
	Scanned  int            `json:"scanned"`
	Items    []JobItem      `json:"-"`
	Excluded map[string]int `json:"excluded"`
	// ByFeed counts the candidates per feed ("(orphan)" for accounts no feed knows).
	ByFeed map[string]int `json:"by_feed"`
	// Calls is the number of LMS calls the scan made.
	Calls int `json:"calls"`
}

// Select scans the LMS and returns the accounts f selects, as pending deletions
// in LMS order.
func (s Selector) Select(ctx context.Context, f DormantFilter) (Selection, error) {
	if err := f.Validate(); err != nil {
		return Selection{}, err
	}
	if f.Feed != "" {
		if _, ok := s.Feeds[f.Feed]; !ok {
			return Selection{}, fmt.Errorf("feed %q is not configured (feeds: %s)", f.Feed, strings.Join(s.Feeds.Names(), ", "))
		}
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	size := s.PageSize
	if size <= 0 {
		size = 500
	}
	sel := Selection{Filter: f, Excluded: map[string]int{}, ByFeed: map[string]int{}}
	calls, err := EachAccountPage(ctx, s.LMS, size, func(page AccountPage) error {
		acts, calls, err := activities(ctx, s.LMS, page.Accounts)
		sel.Calls += calls
		if err != nil {
			return err
		}
		var maybe []AccountActivity
		for _, a := range page.Accounts {
			aa := AccountActivity{Account: a, Activity: acts[a.ID]}
			if ok, why := f.Dormant(a, aa.Activity); !ok {
				sel.Excluded[why]++
				continue
			}
			maybe = append(maybe, aa)
		}
		if err := s.judge(ctx, f, maybe, now(), &sel); err != nil {
			return err
		}
		sel.Scanned += len(page.Accounts)
		if s.Progress != nil {
			s.Progress(sel.Scanned, page.TotalResults)
		}
		return nil
	})
	sel.Calls += calls
	return sel, err
}

// EachAccountPage lists every LMS account, count per page, and calls fn with each
// page in order until the last page or fn's first error. It returns the number of
// ListAccounts calls it made.
func EachAccountPage(ctx context.Context, lms LMS, count int, fn func(AccountPage) error) (calls int, err error) {
	for start := 1; ; {
		page, err := lms.ListAccounts(ctx, start, count)
		calls++
		if err != nil {
			return calls, fmt.Errorf("list LMS accounts from %d: %w", start, err)
		}
		if len(page.Accounts) == 0 {
			return calls, nil
		}
		if err := fn(page); err != nil {
			return calls, err
		}
		start += len(page.Accounts)
		if page.TotalResults > 0 && start > page.TotalResults {
			return calls, nil
		}
	}
}

// judge applies the store's rules (links, employment, feed scope) to the accounts
// that passed the activity rules, and adds the candidates to sel.
func (s Selector) judge(ctx context.Context, f DormantFilter, accts []AccountActivity, now time.Time, sel *Selection) error {
	if len(accts) == 0 {
		return nil
	}
	ids := make([]string, len(accts))
	for i, a := range accts {
		ids[i] = a.Account.ID
	}
	linked, err := s.Store.LinkedHistories(ctx, ids)
	if err != nil {
		return fmt.Errorf("read the workers linked to LMS accounts: %w", err)
	}
	for _, aa := range accts {
		a := aa.Account
		h, isLinked := linked[a.ID]
		feed := ""
		if isLinked {
			feed = h.Worker.Feed
			if s.employed(h, now) {
				sel.Excluded[ExcludedEmployed]++
				continue
			}
		} else {
			for _, name := range s.Feeds.Names() {
				if s.Feeds[name].InScope(a) {
					feed = name
					break
				}
			}
		}
		if (f.Feed != "" && feed != f.Feed) || (f.Orphaned && feed != "") {
			sel.Excluded[ExcludedScope]++
			continue
		}
		it := JobItem{Seq: len(sel.Items) + 1, AccountID: a.ID, Action: ActionDelete, Version: a.Version,
			UserName: a.UserName, Email: a.Profile.Email, Created: a.Created, Activity: aa.Activity, Status: JobPending}
		if isLinked {
			it.Worker = h.Worker
		}
		sel.Items = append(sel.Items, it)
		sel.ByFeed[it.Feed()]++
	}
	return nil
}

// employed reports whether the worker's facts want the account in use: active,
// suspended (coming back), or about to start.
func (s Selector) employed(h History, now time.Time) bool {
	p := DefaultPolicy()
	if s.Policy != nil {
		p = s.Policy(h.Worker.Feed)
	}
	w, _ := Want(h.Facts, now, p)
	return w.State == StateActive || w.State == StateSuspended || w.PreHire
}

// activities reads the activity of accts: in batches where the LMS offers them
// (ActivityLister), else one call per account (ActivityReader), else unknown. It
// returns the activity by account id and the number of LMS calls made.
func activities(ctx context.Context, lms LMS, accts []Account) (map[string]Activity, int, error) {
	out := make(map[string]Activity, len(accts))
	ids := make([]string, len(accts))
	for i, a := range accts {
		ids[i] = a.ID
	}
	if got, calls, ok, err := activityBatches(ctx, lms, ids); ok {
		for id, aa := range got {
			out[id] = aa.Activity
		}
		return out, calls, err
	}
	if _, ok := lms.(ActivityReader); !ok {
		return out, 0, nil // unknown for all
	}
	calls := 0
	for _, a := range accts {
		act, err := ReadActivity(ctx, lms, a.ID)
		calls++
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, calls, fmt.Errorf("read the activity of account %s: %w", a.ID, err)
		}
		out[a.ID] = act
	}
	return out, calls, nil
}

// activityBatches reads the accounts ids and their activity with ActivityLister,
// MaxActivityBatch ids a call. ok is false when the LMS cannot batch (then nothing
// was read); an id missing from the map is an account that is gone.
func activityBatches(ctx context.Context, lms LMS, ids []string) (out map[string]AccountActivity, calls int, ok bool, err error) {
	al, isLister := lms.(ActivityLister)
	if !isLister {
		return nil, 0, false, nil
	}
	n := al.MaxActivityBatch(ctx)
	if n <= 0 {
		return nil, 0, false, nil
	}
	out = make(map[string]AccountActivity, len(ids))
	for chunk := range slices.Chunk(ids, n) {
		got, err := al.ActivityOf(ctx, chunk)
		calls++
		if err != nil {
			return nil, calls, true, fmt.Errorf("read the activity of %d accounts: %w", len(chunk), err)
		}
		maps.Copy(out, got)
	}
	return out, calls, true, nil
}

// JobEstimate is what a job will cost the LMS, for the report and the hold.
type JobEstimate struct {
	Items int `json:"items"`
	// Bulk is the deletions per call when the LMS has a bulk endpoint (0: none).
	Bulk int `json:"bulk"`
	// CheckBatch is the accounts per activity re-check call (0: one call per account).
	CheckBatch int `json:"check_batch"`
	// CheckCalls, ActionCalls and Calls count the LMS calls of the run.
	CheckCalls  int `json:"check_calls"`
	ActionCalls int `json:"action_calls"`
	Calls       int `json:"calls"`
	// PerHour is the client-side rate limit (0: none); Duration is the time the
	// calls need at that rate (zero without a limit).
	PerHour  float64       `json:"per_hour"`
	Duration time.Duration `json:"duration"`
}

// String says it in one line.
func (e JobEstimate) String() string {
	how := "one call per account"
	if e.Bulk > 0 {
		how = fmt.Sprintf("bulk calls of up to %d", e.Bulk)
	}
	s := fmt.Sprintf("%d accounts: %d LMS calls (%d to re-check activity, %d to act, %s)", e.Items, e.Calls, e.CheckCalls, e.ActionCalls, how)
	if e.PerHour > 0 {
		s += fmt.Sprintf("; at %g calls/hour that takes about %s", e.PerHour, e.Duration.Round(time.Second))
	}
	return s
}

// EstimateJob returns the calls a job of n items needs. anonymise items need a read
// and an update each (no bulk); deletions use bulk calls when bulk > 0.
func EstimateJob(n, anonymise, bulk, checkBatch int, perHour float64) JobEstimate {
	e := JobEstimate{Items: n, Bulk: max(bulk, 0), CheckBatch: max(checkBatch, 0), PerHour: perHour}
	del := n - anonymise
	switch {
	case e.CheckBatch > 0:
		e.CheckCalls = ceilDiv(n, e.CheckBatch)
	default:
		e.CheckCalls = 2 * n // read the account and its activity
	}
	if e.Bulk > 0 {
		e.ActionCalls = ceilDiv(del, e.Bulk)
	} else {
		e.ActionCalls = del
	}
	e.ActionCalls += 2 * anonymise
	e.Calls = e.CheckCalls + e.ActionCalls
	if perHour > 0 {
		e.Duration = time.Duration(math.Ceil(float64(e.Calls) / perHour * float64(time.Hour)))
	}
	return e
}

func ceilDiv(a, b int) int {
	if a <= 0 {
		return 0
	}
	return (a + b - 1) / b
}

// SortedCounts returns m's keys ordered by count (highest first), then name.
func SortedCounts(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	return keys
}
