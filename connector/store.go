package connector

import (
	"context"
	"time"
)

// Claim is a lease on one due worker. While the lease holds, no other converger
// (in this process or another replica) works on that worker.
type Claim struct {
	Worker WorkerKey
	// Version counts the facts recorded for the worker. Complete uses it to tell
	// whether a fact arrived while the worker was being converged.
	Version int64
	// Attempts is the number of consecutive failed converges, for backoff.
	Attempts int
	// LeaseUntil is when the lease expires and another converger may take the worker.
	LeaseUntil time.Time
}

// History is everything the store knows about a worker that converging needs.
type History struct {
	Worker WorkerKey
	// Facts are the worker's facts and those of its predecessors (workers it
	// succeeded through a rehire's previous_worker_id), in no particular order.
	Facts []Fact
	// Links maps a worker id of this worker's chain (itself and its predecessors)
	// to the LMS account id it is linked to.
	Links map[string]string
	// SupersededBy is set when a later worker took this person over; the successor
	// converges the account and this worker must not touch it.
	SupersededBy *WorkerKey
}

// Outcome is how one converge attempt ended.
type Outcome string

// The outcomes recorded in the audit trail and counted in metrics.
const (
	OutcomeOK      Outcome = "ok"      // the action ran
	OutcomeFailed  Outcome = "failed"  // permanent failure; a review item says why
	OutcomeRetry   Outcome = "retry"   // temporary failure; retried later
	OutcomeReview  Outcome = "review"  // not done: a person must decide
	OutcomeSkipped Outcome = "skipped" // not done by policy
	// OutcomePending: the LMS call is about to be made; the row was committed
	// before the call and gets the call's outcome after it (docs/audit.md). A row
	// left pending by a crash is resolved by what the LMS shows: ok (applied,
	// recovered), not_applied, or unknown.
	OutcomePending    Outcome = "pending"
	OutcomeNotApplied Outcome = "not_applied" // a pending call that the LMS shows did not happen
	OutcomeUnknown    Outcome = "unknown"     // a pending call whose effect the LMS cannot show
)

// AuditEntry records one decision or LMS action.
type AuditEntry struct {
	ID        int64      `json:"id,omitempty" db:"id"`
	At        time.Time  `json:"at" db:"at"`
	Feed      string     `json:"feed" db:"feed"`
	WorkerID  string     `json:"worker_id" db:"worker_id"`
	AccountID string     `json:"account_id,omitempty" db:"account_id"`
	Action    ActionKind `json:"action" db:"action"`
	Outcome   Outcome    `json:"outcome" db:"outcome"`
	Detail    string     `json:"detail,omitempty" db:"detail"`
	// FactIDs are the "source#id" of the facts the decision was based on.
	FactIDs []string `json:"fact_ids,omitempty" db:"-"`
	// Plan is the whole plan the action was part of (PlanString).
	Plan string `json:"plan,omitempty" db:"plan"`
	// HoldID is the hold whose approval let the action run; zero for none.
	HoldID int64 `json:"hold_id,omitempty" db:"hold_id"`
	// Cause is why the action was planned (Action.Reason), as data.
	Cause string `json:"cause,omitempty" db:"cause"`
	// Before is the account's version (ETag) before the call, when the LMS has
	// versions: after a crash it tells whether an update landed.
	Before string `json:"before,omitempty" db:"before_version"`
	// ActiveAfter is the account's active state after a create, deactivate or
	// reactivate that succeeded; nil where the action set none, or the row is older
	// than the field. Decisions read it, never the Detail's words.
	ActiveAfter *bool `json:"active_after,omitempty" db:"-"`
}

// AuditIntents is the part of ConvergerStore that makes the audit complete after
// any crash (docs/audit.md): an LMS call is recorded, committed, before it is
// made, and its outcome replaces that row after. Package store implements it.
type AuditIntents interface {
	// BeginActions stores es as audit rows with outcome pending, in one
	// transaction, and returns their ids in the order of es. A worker appears at
	// most once in es.
	BeginActions(ctx context.Context, es []AuditEntry) ([]int64, error)
	// PendingActions returns the audit rows of ws still pending that were written
	// before before, oldest first, by worker.
	PendingActions(ctx context.Context, ws []WorkerKey, before time.Time) (map[WorkerKey][]AuditEntry, error)
	// SettleActions gives pending rows es (by ID) their outcome at once, before
	// the converge that resolved them makes calls of its own: resolved later,
	// by what the LMS shows then, a row could be judged by the state a later
	// call left (a deactivation judged after the rehire's reactivation).
	SettleActions(ctx context.Context, es []AuditEntry) error
}

// Review is an item a person must look at: hrsync refused to guess.
type Review struct {
	ID       int64     `json:"id,omitempty" db:"id"`
	At       time.Time `json:"at" db:"at"`
	Feed     string    `json:"feed" db:"feed"`
	WorkerID string    `json:"worker_id" db:"worker_id"`
	Reason   string    `json:"reason" db:"reason"`
	// Candidates are the account ids that matched, when the reason is ambiguity.
	Candidates []string `json:"candidates,omitempty" db:"-"`
	// ResolvedAt, ResolvedBy and Resolution say that a person closed the item,
	// who, and why; nil and empty while it is open.
	ResolvedAt *time.Time `json:"resolved_at,omitempty" db:"resolved_at"`
	ResolvedBy string     `json:"resolved_by,omitempty" db:"resolved_by"`
	Resolution string     `json:"resolution,omitempty" db:"note"`
}

// Completion is what a converger commits when it is done with a claim: the link, the
// audit rows, a review item, and when the worker is next due.
type Completion struct {
	Claim Claim
	Owner string
	// AccountID links the worker to this account; empty leaves the link as it is.
	AccountID string
	// Unlink removes the worker's link (the linked account no longer exists).
	Unlink bool
	// ReleasePredecessors removes the links of these predecessor worker ids: the
	// worker has taken their account over.
	ReleasePredecessors []string
	// NextDue is when the worker must be converged again; zero means only when a
	// new fact arrives. If a fact arrived since the claim (the version moved on), the
	// store makes the worker due at once instead.
	NextDue time.Time
	// Failed counts this attempt as failed (Attempts+1); otherwise attempts reset.
	Failed bool
	// Audit are the rows to add; one with an ID gives that pending row
	// (AuditIntents) its outcome instead.
	Audit  []AuditEntry
	Review *Review
	// Mirror are the changes to the account mirror that this converge saw
	// (mirror.go), committed with its outcome, in order.
	Mirror []MirrorUpdate

	erased bool // the worker was erased: the store holds nothing to complete
	// training are the audit rows that get a rehire training note (noteTraining).
	training []trainingNote
}

// The store's ports are small: each use case declares the methods it needs, as
// an interface built from the pieces below, and package store proves at compile
// time that *store.DB implements every one of them.

// Claimer leases due workers and commits how converging them ended.
type Claimer interface {
	// ClaimDue leases up to limit workers whose due time is at or before now and
	// whose lease, if any, has expired. Concurrent callers never get the same worker.
	ClaimDue(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]Claim, error)
	// ExtendLeases moves the lease of each of ws that owner still holds to until,
	// and returns the workers whose lease it extended. A converger renews its
	// claims this way while it works, so that a slow batch keeps its workers.
	ExtendLeases(ctx context.Context, owner string, ws []WorkerKey, until time.Time) ([]WorkerKey, error)
	// CompleteAll commits a batch of completions, in one transaction when it can. If
	// that transaction fails, it commits them one by one so that one bad completion
	// holds back no other; it returns the failures joined (nil if all committed).
	CompleteAll(ctx context.Context, cs []Completion) error
	// NextDue returns the earliest due time of any worker, or ok=false if none is due.
	NextDue(ctx context.Context) (t time.Time, ok bool, err error)
}

// HistoryLoader reads what the store knows about workers.
type HistoryLoader interface {
	// LoadHistories returns the facts, links and succession of a batch of workers
	// in a few round trips: one History per worker, in the order given. A worker
	// the store has never seen gets a History with no facts, not an error.
	LoadHistories(ctx context.Context, ws []WorkerKey) ([]History, error)
}

// LinkReader tells which worker an LMS account is linked to.
type LinkReader interface {
	// LinkedWorker returns the worker linked to the account, or ErrNotFound.
	LinkedWorker(ctx context.Context, accountID string) (WorkerKey, error)
}

// LinkedHistoryReader reads the histories of the workers linked to accounts.
type LinkedHistoryReader interface {
	// LinkedHistories returns, for each of accountIDs that is linked, the
	// history of the worker linked to it (as LoadHistories returns it): the
	// per-page question "for these accounts, which workers and their facts?".
	LinkedHistories(ctx context.Context, accountIDs []string) (map[string]History, error)
}

// StateActionReader tells which of hrsync's own actions last set an account's
// active state, so that a deactivation made outside hrsync can be told apart.
type StateActionReader interface {
	// LastStateActions returns, per account that has one, the latest ok audit
	// entry of a create, deactivate or reactivate.
	LastStateActions(ctx context.Context, accountIDs []string) (map[string]AuditEntry, error)
}

// ConvergerStore is what the Converger needs from the store: leases and
// completions, histories, links for matching, the audit rows written before an
// LMS call (AuditIntents), and the last state actions (to respect a manual
// deactivation). Implemented by package store.
type ConvergerStore interface {
	Claimer
	HistoryLoader
	LinkReader
	AuditIntents
	StateActionReader
}

// Store persists HR facts and convergence state: the converger's core, plus the
// single-worker forms of its calls. Implemented by package store (PostgreSQL and
// SQLite); store/storetest checks every implementation.
type Store interface {
	Claimer
	HistoryLoader
	LinkReader
	// LoadHistory returns the worker's facts, links and succession.
	// Returns ErrNotFound if the store has never seen the worker.
	LoadHistory(ctx context.Context, w WorkerKey) (History, error)
	// Complete commits c in one transaction and releases the lease if owner still holds it.
	Complete(ctx context.Context, c Completion) error
}

// DeadLetter is a message that could not be applied, kept with its raw bytes and the
// reason, so that nothing is ever silently dropped. It can be replayed after a fix.
type DeadLetter struct {
	ID int64     `json:"id" db:"id"`
	At time.Time `json:"at" db:"at"`
	// Feed is the feed the subject named, if it could be read.
	Feed    string `json:"feed" db:"feed"`
	Subject string `json:"subject" db:"subject"`
	// Headers are the NATS message headers, JSON-encoded (map[string][]string).
	Headers []byte `json:"headers,omitempty" db:"headers"`
	Data    []byte `json:"data,omitempty" db:"data"`
	// Reason names the field and what is wrong with it.
	Reason string `json:"reason" db:"reason"`
	// Stream and StreamSeq identify the JetStream message, when it came from one.
	// The store keeps one dead letter per message, so a redelivery after a crash
	// between storing and terminating it is not stored twice.
	Stream    string `json:"stream,omitempty" db:"stream"`
	StreamSeq uint64 `json:"stream_seq,omitempty" db:"stream_seq"`
	// ReplayedAt is set once a replay of the message was recorded.
	ReplayedAt *time.Time `json:"replayed_at,omitempty" db:"replayed_at"`
	// DataBytes and DataSHA256 are the size and the hex SHA-256 of the whole body
	// as it arrived, set by the store; they identify the message after Data is
	// truncated or pruned. Rows older than the store's migration 0009 may lack them.
	DataBytes  int64  `json:"data_bytes,omitempty" db:"data_bytes"`
	DataSHA256 string `json:"data_sha256,omitempty" db:"data_sha256"`
	// Truncated says the store kept only the first part of Data or Headers (its
	// cap on a dead letter's size); such a message cannot be replayed.
	Truncated bool `json:"truncated,omitempty" db:"truncated"`
	// PrunedAt is when the store dropped Data and Headers after its retention
	// period; the row keeps the rest.
	PrunedAt *time.Time `json:"pruned_at,omitempty" db:"pruned_at"`
	// DiscardedAt, DiscardedBy and DiscardReason say that a person gave the
	// message up: it is never replayed, and kept for the record.
	DiscardedAt   *time.Time `json:"discarded_at,omitempty" db:"discarded_at"`
	DiscardedBy   string     `json:"discarded_by,omitempty" db:"discarded_by"`
	DiscardReason string     `json:"discard_reason,omitempty" db:"discard_reason"`
}

// The statuses of a dead letter (DeadLetter.Status).
const (
	DeadLetterOpen      = "open"      // waiting for a replay or a discard
	DeadLetterReplayed  = "replayed"  // its message was recorded after a fix
	DeadLetterDiscarded = "discarded" // a person gave it up
)

// Status returns DeadLetterOpen, DeadLetterReplayed or DeadLetterDiscarded.
func (d DeadLetter) Status() string {
	switch {
	case d.DiscardedAt != nil:
		return DeadLetterDiscarded
	case d.ReplayedAt != nil:
		return DeadLetterReplayed
	}
	return DeadLetterOpen
}
