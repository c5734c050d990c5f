package connector

import "context"

// Optional LMS capabilities for work on many accounts at once: dormant-account
// clean-up and partner offboarding (docs/cleanup.md). An LMS that has a bulk
// endpoint (SCIM Bulk, RFC 7644 §3.7) deletes a thousand accounts in one call
// instead of a thousand, which under a contractual limit of 1,000 calls an hour is
// the difference between a minute and a working day.

// Deletion asks for one account to be deleted. A Version (the account's ETag as
// the clean-up report saw it) makes the deletion conditional where the LMS supports
// ETags: an account that changed since fails with ErrPrecondition and is kept.
type Deletion struct {
	ID      string `json:"id"`
	Version string `json:"version,omitempty"`
}

// BulkDeleter is implemented by LMS adapters that can delete many accounts per call.
type BulkDeleter interface {
	// MaxBulkDeletes is the most deletions one call may carry; zero or less means
	// the LMS offers no bulk endpoint (after discovery), and callers delete one by one.
	MaxBulkDeletes(ctx context.Context) int
	// DeleteAccounts deletes dels, at most MaxBulkDeletes of them in one call, and
	// returns one error per deletion, in order: nil when deleted, an error matching
	// ErrNotFound when the account was already gone, ErrPrecondition when its Version
	// no longer matches. The returned error is for the call as a whole (the LMS was
	// unreachable, refused the request): then no per-item result is known.
	DeleteAccounts(ctx context.Context, dels []Deletion) ([]error, error)
}

// ActivityLister is implemented by LMS adapters that read the activity of many
// accounts in one call (for SCIM, one filtered query whose users carry the training
// extension). Clean-up re-checks each batch with it just before deleting.
type ActivityLister interface {
	// MaxActivityBatch is the most ids one ActivityOf call may carry; zero or less
	// means the adapter cannot batch, and callers use ActivityReader per account.
	MaxActivityBatch(ctx context.Context) int
	// ActivityOf returns the current account and its activity for each of ids that
	// still exists; an id missing from the map is an account that is gone.
	ActivityOf(ctx context.Context, ids []string) (map[string]AccountActivity, error)
}

// AccountActivity is an account with what the LMS knows of its use.
type AccountActivity struct {
	Account  Account  `json:"account"`
	Activity Activity `json:"activity"`
}

// AccountBatchReader is implemented by LMS adapters that read many accounts in one
// call: the matching lookups of a claimed batch (for SCIM, one filtered query with
// "or", `externalId eq "a" or externalId eq "b"`) and the accounts its linked
// workers have. The converger prefetches a batch's reads with it (prefetch.go);
// an adapter without it, or whose MaxReadBatch is 0, is read one call per lookup.
type AccountBatchReader interface {
	// MaxReadBatch is the most values or ids one call may carry; zero or less
	// means the adapter cannot batch reads now (after discovery), and callers
	// read one by one.
	MaxReadBatch(ctx context.Context) int
	// FindAccountsIn answers FindAccounts(AccountFilter{attr, v}) for each v of
	// values, in one call where it can: the map holds, under each value as given,
	// the accounts that FindAccounts would return (email and userName compare
	// case-insensitively, as there). A value missing from the map is one the
	// adapter cannot vouch for (say, a SCIM server that has not yet shown it
	// evaluates that filter): the caller asks FindAccounts for it. An empty entry
	// is a vouched "no account".
	FindAccountsIn(ctx context.Context, attr FilterAttr, values []string) (map[string][]Account, error)
	// GetAccounts returns the current account for each of ids that exists; an id
	// missing from the map is an account that is gone (as GetAccount's ErrNotFound).
	GetAccounts(ctx context.Context, ids []string) (map[string]Account, error)
}

// Batch writes for live changes (docs/design.md, "one call per batch"). The
// converger plans a claimed batch, then carries out its actions grouped by kind
// through these optional capabilities; an adapter without one, or whose Max...
// answers zero or less, gets one call per action. Every batch call returns one
// ItemResult per item, in the order given: one item's failure is that item's
// outcome alone. The error returned beside the results is for the call as a
// whole (unreachable, refused before any item ran): then no item's outcome is
// known, and the caller treats each as it would a failed single call.

// ItemResult is the outcome of one item of a batch write: the account as the LMS
// shows it after the write (where the LMS answers with it; at least its ID), or
// an error classified as the single call's would be (ErrNotFound, ErrConflict,
// ErrPrecondition, *LMSError).
type ItemResult struct {
	Account Account
	Err     error
}

// ActiveSetter activates or deactivates many accounts in one call (Docebo's
// change_status with a list of user_ids; Moodle's core_user_update_users with
// suspended; SCIM Bulk PATCH operations).
type ActiveSetter interface {
	// MaxSetActiveBatch is the most ids one SetActiveMany call may carry.
	MaxSetActiveBatch(ctx context.Context) int
	// SetActiveMany sets every account of ids active or inactive.
	SetActiveMany(ctx context.Context, ids []string, active bool) ([]ItemResult, error)
}

// AccountCreator creates many accounts in one call (Docebo's batch import,
// Moodle's core_user_create_users, SCIM Bulk POST operations).
type AccountCreator interface {
	// MaxCreateBatch is the most accounts one CreateAccounts call may carry.
	MaxCreateBatch(ctx context.Context) int
	// CreateAccounts creates each of accs (as CreateAccount would: ErrConflict when
	// its userName or externalId is taken) and returns each with its new ID.
	CreateAccounts(ctx context.Context, accs []Account) ([]ItemResult, error)
}

// AccountUpdater updates many accounts in one call (Moodle's
// core_user_update_users, SCIM Bulk PUT/PATCH operations).
type AccountUpdater interface {
	// MaxUpdateBatch is the most accounts one UpdateAccounts call may carry.
	MaxUpdateBatch(ctx context.Context) int
	// UpdateAccounts updates each of accs as UpdateAccount would, conditionally on
	// its Version where the LMS has versions.
	UpdateAccounts(ctx context.Context, accs []Account) ([]ItemResult, error)
}

// ActiveUpdater updates an account and sets it active or inactive in the same
// call (SCIM: one PATCH with `active` among its operations; Moodle: `suspended`
// in the same core_user_update_users item). The converger uses it for a plan
// that updates an account and then changes its state (a rehire under a new id:
// re-key, then reactivate): one call instead of two. UpdateAccount itself never
// changes active.
type ActiveUpdater interface {
	// UpdatesActive reports whether the calls below can be made; false (the
	// LMS behind a wrapper cannot) means two calls.
	UpdatesActive(ctx context.Context) bool
	// UpdateAccountActive is UpdateAccount that also sets the account's state
	// to a.Active.
	UpdateAccountActive(ctx context.Context, a Account) (Account, error)
	// UpdateAccountsActive is UpdateAccountActive for many accounts in one call,
	// at most MaxUpdateBatch (AccountUpdater) of them.
	UpdateAccountsActive(ctx context.Context, accs []Account) ([]ItemResult, error)
}
