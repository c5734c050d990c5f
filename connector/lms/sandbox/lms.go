package sandbox

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/hrsync/hrsync/connector"
)

// MaxResults caps a page of ListAccounts and of the SCIM /Users query.
const MaxResults = 1000

var _ connector.LMS = (*LMS)(nil)

// LMS is an in-memory LMS that keeps each account's training history. It is safe
// for concurrent use.
type LMS struct {
	now   func() time.Time
	newID func(seq int) string

	mu         sync.Mutex
	seq        int
	accounts   map[string]*record
	order      []string          // account ids in creation order
	byUserName map[string]string // folded userName → id
	// dupExternalIDs lets two accounts share an externalId, as servers that
	// declare it uniqueness "none" do (see WithDuplicateExternalIDs).
	dupExternalIDs bool
	byExternalID   multiIndex // externalId → ids (one, unless dupExternalIDs)
	// Email and employee number are not unique; these index them so that a
	// lookup costs what it would in a real LMS, not a scan of every account.
	byEmail multiIndex // folded email → ids (almost always one)
	byEmpNo multiIndex // employee number → ids
	ops     []Op
	// maxBulk is MaxBulkDeletes: 0 is DefaultMaxBulk, below 0 no bulk (see WithMaxBulk).
	maxBulk int
}

// record is one account with everything the LMS knows about it.
type record struct {
	seq      int               // creation order
	acct     connector.Account // Version is derived from rev
	rev      int
	modified time.Time
	training Training
}

// Option configures an LMS.
type Option func(*LMS)

// WithClock sets the clock that stamps created and modified times, ops and
// training records given a zero time. The default is time.Now.
func WithClock(now func() time.Time) Option { return func(l *LMS) { l.now = now } }

// WithIDs sets how account ids are made from a sequence number (1, 2, ...). The
// default gives "u-000001", "u-000002", ... Tests use it to try ids that need
// escaping in a URL. Ids must be unique and not "." or "..".
func WithIDs(newID func(seq int) string) Option { return func(l *LMS) { l.newID = newID } }

// WithDuplicateExternalIDs lets several accounts share an externalId: RFC 7643
// declares externalId with uniqueness "none", and some servers keep it that way.
// Tests use it to check that hrsync never picks one of two candidates.
func WithDuplicateExternalIDs() Option { return func(l *LMS) { l.dupExternalIDs = true } }

// New returns an empty LMS.
func New(opts ...Option) *LMS {
	l := &LMS{
		now:          time.Now,
		newID:        func(seq int) string { return fmt.Sprintf("u-%06d", seq) },
		accounts:     map[string]*record{},
		byUserName:   map[string]string{},
		byExternalID: newMultiIndex(),
		byEmail:      newMultiIndex(),
		byEmpNo:      newMultiIndex(),
	}
	for _, o := range opts {
		o(l)
	}
	return l
}

// OpKind is the kind of a mutating call.
type OpKind string

// The mutating calls the LMS logs.
const (
	OpCreate     OpKind = "create"
	OpUpdate     OpKind = "update"
	OpActivate   OpKind = "activate"
	OpDeactivate OpKind = "deactivate"
	OpDelete     OpKind = "delete"
)

// Op is one successful mutating call, in the order they happened. Every call is
// logged, including one that changed nothing (SetActive(true) on an active
// account), so that tests can check that each action happened exactly once.
type Op struct {
	Kind      OpKind
	AccountID string
	At        time.Time
}

// Training is an account's learning record. It survives deactivation,
// reactivation and profile updates. Its JSON form is the body of the side
// endpoint /hrsync/v1/accounts/{id}/training.
type Training struct {
	LastLogin   *time.Time   `json:"last_login,omitempty"`
	Enrollments []Enrollment `json:"enrollments"`
	Completions []Completion `json:"completions"`
	// Uploads and Rewards count content the user uploaded and rewards earned.
	Uploads int `json:"uploads,omitempty"`
	Rewards int `json:"rewards,omitempty"`
}

// Enrollment is one course enrollment.
type Enrollment struct {
	Course     string    `json:"course"`
	EnrolledAt time.Time `json:"enrolled_at"`
}

// Completion is one course completion.
type Completion struct {
	Course      string    `json:"course"`
	CompletedAt time.Time `json:"completed_at"`
}

// HasActivity reports whether the account was ever used: a login, an enrollment
// or a completion. hrsync must never delete such an account.
func (t Training) HasActivity() bool {
	return t.LastLogin != nil || len(t.Enrollments) > 0 || len(t.Completions) > 0 || t.Uploads > 0 || t.Rewards > 0
}

func (t Training) clone() Training {
	c := Training{
		Enrollments: slices.Clone(t.Enrollments),
		Completions: slices.Clone(t.Completions),
		Uploads:     t.Uploads,
		Rewards:     t.Rewards,
	}
	if c.Enrollments == nil {
		c.Enrollments = []Enrollment{}
	}
	if c.Completions == nil {
		c.Completions = []Completion{}
	}
	if t.LastLogin != nil {
		ll := *t.LastLogin
		c.LastLogin = &ll
	}
	return c
}

// AccountRecord is an account with its training, as Snapshot reports it.
type AccountRecord struct {
	Account  connector.Account
	Training Training
}

func lmsError(kind connector.ErrorKind, op, format string, args ...any) *connector.LMSError {
	return &connector.LMSError{Kind: kind, Op: op, Reason: fmt.Sprintf(format, args...)}
}

func notFound(op, id string) *connector.LMSError {
	return lmsError(connector.KindNotFound, op, "no account %q", id)
}

// ctxErr fails a call whose context is already done, as a real LMS call would.
func ctxErr(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return &connector.LMSError{Kind: connector.KindUnavailable, Op: op, Err: err}
	}
	return nil
}

// fold is the key under which userNames are unique: case-insensitively.
// A string of lower-case ASCII is its own key, and is not copied.
func fold(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf || 'A' <= c && c <= 'Z' {
			return strings.ToLower(strings.ToUpper(s))
		}
	}
	return s
}

func version(rev int) string { return fmt.Sprintf(`W/"%d"`, rev) }

// sameVersion compares ETags, ignoring the weak prefix: SCIM servers hand out
// weak ETags and clients send them back in If-Match (RFC 7644 §3.14).
func sameVersion(a, b string) bool {
	return strings.TrimPrefix(strings.TrimSpace(a), "W/") == strings.TrimPrefix(strings.TrimSpace(b), "W/")
}

// matchesIfMatch reports whether the current version satisfies an If-Match value:
// "" (unconditional), "*", or a comma-separated list of ETags.
func matchesIfMatch(ifMatch, current string) bool {
	if strings.TrimSpace(ifMatch) == "" || strings.TrimSpace(ifMatch) == "*" {
		return true
	}
	for v := range strings.SplitSeq(ifMatch, ",") {
		if sameVersion(v, current) {
			return true
		}
	}
	return false
}

// view returns the account as callers see it; l.mu must be held.
func (r *record) view() connector.Account {
	a := r.acct
	a.Version = version(r.rev)
	return a
}

// resource is a consistent copy of a record, for the SCIM handler.
type resource struct {
	acct     connector.Account
	modified time.Time
	training Training
}

// resource copies r; l.mu must be held.
func (r *record) resource() resource {
	return resource{acct: r.view(), modified: r.modified, training: r.training.clone()}
}

func (l *LMS) logOp(kind OpKind, id string, at time.Time) {
	l.ops = append(l.ops, Op{Kind: kind, AccountID: id, At: at})
}

// checkUnique returns a conflict if a's userName or externalId belongs to another
// account than self; l.mu must be held.
func (l *LMS) checkUnique(op string, a connector.Account, self string) error {
	if a.UserName == "" {
		return lmsError(connector.KindInvalid, op, "userName is required")
	}
	if id, ok := l.byUserName[fold(a.UserName)]; ok && id != self {
		return lmsError(connector.KindConflict, op, "userName %q is already taken", a.UserName)
	}
	if a.ExternalID != "" && !l.dupExternalIDs {
		for _, id := range l.byExternalID.ids(a.ExternalID) {
			if id != self {
				return lmsError(connector.KindConflict, op, "externalId %q is already taken", a.ExternalID)
			}
		}
	}
	return nil
}

// index replaces the lookup keys of old by those of a; l.mu must be held.
func (l *LMS) index(id string, old, a connector.Account) {
	l.byEmail.move(fold(old.Profile.Email), fold(a.Profile.Email), id)
	l.byEmpNo.move(old.Profile.EmployeeNumber, a.Profile.EmployeeNumber, id)
	l.byExternalID.move(old.ExternalID, a.ExternalID, id)
	if old.UserName != "" {
		delete(l.byUserName, fold(old.UserName))
	}
	if a.UserName != "" {
		l.byUserName[fold(a.UserName)] = id
	}
}

// GetAccount returns the account id, or an error matching connector.ErrNotFound.
func (l *LMS) GetAccount(ctx context.Context, id string) (connector.Account, error) {
	const op = "GetAccount"
	if err := ctxErr(ctx, op); err != nil {
		return connector.Account{}, err
	}
	res, err := l.get(op, id)
	return res.acct, err
}

func (l *LMS) get(op, id string) (resource, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.accounts[id]
	if !ok {
		return resource{}, notFound(op, id)
	}
	return r.resource(), nil
}

// FindAccounts returns the accounts matching f in creation order, with the
// comparison rules of connector.AccountFilter.Matches.
func (l *LMS) FindAccounts(ctx context.Context, f connector.AccountFilter) ([]connector.Account, error) {
	const op = "FindAccounts"
	if err := ctxErr(ctx, op); err != nil {
		return nil, err
	}
	switch f.Attr {
	case connector.ByExternalID, connector.ByUserName, connector.ByEmail, connector.ByEmployeeNumber:
	default:
		return nil, lmsError(connector.KindInvalid, op, "cannot filter on %q", f.Attr)
	}
	out := []connector.Account{}
	for _, r := range l.query(&f) {
		out = append(out, r.acct)
	}
	return out, nil
}

// multiIndex is a non-unique index: key → account ids. Nearly every key has one
// id, so the first is a plain map value and only the others get a slice: a
// fraction of the memory of a slice per key, which counts with 10⁶ accounts.
type multiIndex struct {
	first map[string]string
	more  map[string][]string // the second and later ids of a key
}

func newMultiIndex() multiIndex {
	return multiIndex{first: map[string]string{}, more: map[string][]string{}}
}

// ids returns the ids under key (nil if none), in no particular order.
func (x multiIndex) ids(key string) []string {
	id, ok := x.first[key]
	if !ok {
		return nil
	}
	return append([]string{id}, x.more[key]...)
}

// move moves id from key old to key new; "" is no key.
func (x multiIndex) move(old, new, id string) {
	if old == new {
		return
	}
	if old != "" {
		x.remove(old, id)
	}
	if new != "" {
		if _, ok := x.first[new]; ok {
			x.more[new] = append(x.more[new], id)
		} else {
			x.first[new] = id
		}
	}
}

func (x multiIndex) remove(key, id string) {
	first, ok := x.first[key]
	if !ok {
		return
	}
	more := x.more[key]
	if first == id {
		if len(more) == 0 {
			delete(x.first, key)
			return
		}
		x.first[key], more = more[0], more[1:]
	} else {
		more = slices.DeleteFunc(more, func(s string) bool { return s == id })
	}
	if len(more) == 0 {
		delete(x.more, key)
	} else {
		x.more[key] = more
	}
}

// query returns the accounts that match f (all if f is nil), in creation order.
// Filters go through the indexes; every candidate is checked with f.Matches.
func (l *LMS) query(f *connector.AccountFilter) []resource {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := []resource{}
	if f == nil {
		for _, id := range l.order {
			out = append(out, l.accounts[id].resource())
		}
		return out
	}
	var ids []string
	switch f.Attr {
	case connector.ByExternalID:
		ids = l.byExternalID.ids(f.Value)
	case connector.ByUserName:
		if id, ok := l.byUserName[fold(f.Value)]; ok {
			ids = append(ids, id)
		}
	case connector.ByEmail:
		ids = l.byEmail.ids(fold(f.Value))
	case connector.ByEmployeeNumber:
		ids = l.byEmpNo.ids(f.Value)
	}
	var recs []*record
	for _, id := range ids {
		if r := l.accounts[id]; r != nil && f.Matches(r.view()) {
			recs = append(recs, r)
		}
	}
	slices.SortFunc(recs, func(a, b *record) int { return a.seq - b.seq })
	for _, r := range recs {
		out = append(out, r.resource())
	}
	return out
}

// CreateAccount stores a under a new id. a.ID and a.Version are ignored. Returns
// an error matching connector.ErrConflict if the userName (case-insensitively) or
// the externalId is taken.
func (l *LMS) CreateAccount(ctx context.Context, a connector.Account) (connector.Account, error) {
	const op = "CreateAccount"
	if err := ctxErr(ctx, op); err != nil {
		return connector.Account{}, err
	}
	res, err := l.create(op, a)
	return res.acct, err
}

func (l *LMS) create(op string, a connector.Account) (resource, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.checkUnique(op, a, ""); err != nil {
		return resource{}, err
	}
	now := l.now()
	l.seq++
	a.ID = l.newID(l.seq)
	if _, dup := l.accounts[a.ID]; dup {
		return resource{}, lmsError(connector.KindUnavailable, op, "id %q generated twice", a.ID)
	}
	a.Version, a.Created = "", now
	r := &record{seq: l.seq, acct: a, rev: 1, modified: now, training: Training{}.clone()}
	l.accounts[a.ID] = r
	l.order = append(l.order, a.ID)
	l.index(a.ID, connector.Account{}, a)
	l.logOp(OpCreate, a.ID, now)
	return r.resource(), nil
}

// UpdateAccount replaces the externalId, userName and profile of a.ID; active,
// created and the training history stay. If a.Version is set and is not the
// current version, it returns an error matching connector.ErrPrecondition.
func (l *LMS) UpdateAccount(ctx context.Context, a connector.Account) (connector.Account, error) {
	const op = "UpdateAccount"
	if err := ctxErr(ctx, op); err != nil {
		return connector.Account{}, err
	}
	res, err := l.modify(op, a.ID, a.Version, func(cur *connector.Account) ([]OpKind, error) {
		cur.ExternalID, cur.UserName, cur.Profile = a.ExternalID, a.UserName, a.Profile
		return []OpKind{OpUpdate}, nil
	})
	return res.acct, err
}

// SetActive activates or deactivates the account id.
func (l *LMS) SetActive(ctx context.Context, id string, active bool) (connector.Account, error) {
	const op = "SetActive"
	if err := ctxErr(ctx, op); err != nil {
		return connector.Account{}, err
	}
	res, err := l.modify(op, id, "", func(cur *connector.Account) ([]OpKind, error) {
		cur.Active = active
		return []OpKind{activeOp(active)}, nil
	})
	return res.acct, err
}

func activeOp(active bool) OpKind {
	if active {
		return OpActivate
	}
	return OpDeactivate
}

// modify applies fn to a copy of the account id and commits it if ifMatch
// matches, fn succeeds and the unique keys stay unique. It logs the ops fn
// returns and moves the version on.
func (l *LMS) modify(op, id, ifMatch string, fn func(a *connector.Account) ([]OpKind, error)) (resource, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.accounts[id]
	if !ok {
		return resource{}, notFound(op, id)
	}
	if cur := version(r.rev); !matchesIfMatch(ifMatch, cur) {
		return resource{}, lmsError(connector.KindPrecondition, op, "version %s is not the current %s", ifMatch, cur)
	}
	a := r.acct
	kinds, err := fn(&a)
	if err != nil {
		return resource{}, err
	}
	a.ID, a.Created = r.acct.ID, r.acct.Created
	if err := l.checkUnique(op, a, id); err != nil {
		return resource{}, err
	}
	now := l.now()
	l.index(id, r.acct, a)
	r.acct, r.rev, r.modified = a, r.rev+1, now
	for _, k := range kinds {
		l.logOp(k, id, now)
	}
	return r.resource(), nil
}

// DeleteAccount deletes the account id and its training history.
func (l *LMS) DeleteAccount(ctx context.Context, id string) error {
	const op = "DeleteAccount"
	if err := ctxErr(ctx, op); err != nil {
		return err
	}
	return l.delete(op, id, "")
}

func (l *LMS) delete(op, id, ifMatch string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.accounts[id]
	if !ok {
		return notFound(op, id)
	}
	if cur := version(r.rev); !matchesIfMatch(ifMatch, cur) {
		return lmsError(connector.KindPrecondition, op, "version %s is not the current %s", ifMatch, cur)
	}
	l.index(id, r.acct, connector.Account{})
	delete(l.accounts, id)
	l.order = slices.DeleteFunc(l.order, func(s string) bool { return s == id })
	l.logOp(OpDelete, id, l.now())
	return nil
}

// ListAccounts returns up to count (at most MaxResults) accounts in creation
// order, starting at the 1-based startIndex (values below 1 count as 1).
func (l *LMS) ListAccounts(ctx context.Context, startIndex, count int) (connector.AccountPage, error) {
	const op = "ListAccounts"
	if err := ctxErr(ctx, op); err != nil {
		return connector.AccountPage{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	startIndex = max(startIndex, 1)
	ids := pageOf(l.order, startIndex, count)
	page := connector.AccountPage{StartIndex: startIndex, TotalResults: len(l.order), Accounts: make([]connector.Account, 0, len(ids))}
	for _, id := range ids {
		page.Accounts = append(page.Accounts, l.accounts[id].view())
	}
	return page, nil
}

// pageOf returns items[startIndex-1 : startIndex-1+count], clamped, with count
// capped at MaxResults.
func pageOf[T any](items []T, startIndex, count int) []T {
	count = min(max(count, 0), MaxResults)
	from := min(max(startIndex, 1)-1, len(items))
	to := min(from+count, len(items))
	return items[from:to]
}

// Enroll records that the account id enrolled in course at at (the clock's now if
// at is zero).
func (l *LMS) Enroll(id, course string, at time.Time) error {
	return l.train("Enroll", id, func(t *Training, now time.Time) error {
		if course == "" {
			return lmsError(connector.KindInvalid, "Enroll", "course is required")
		}
		t.Enrollments = append(t.Enrollments, Enrollment{Course: course, EnrolledAt: orNow(at, now)})
		return nil
	})
}

// CompleteCourse records that the account id completed course at at (the clock's
// now if at is zero).
func (l *LMS) CompleteCourse(id, course string, at time.Time) error {
	return l.train("CompleteCourse", id, func(t *Training, now time.Time) error {
		if course == "" {
			return lmsError(connector.KindInvalid, "CompleteCourse", "course is required")
		}
		t.Completions = append(t.Completions, Completion{Course: course, CompletedAt: orNow(at, now)})
		return nil
	})
}

// RecordLogin records a login of the account id at at (the clock's now if at is
// zero). The last login is the latest one recorded.
func (l *LMS) RecordLogin(id string, at time.Time) error {
	return l.train("RecordLogin", id, func(t *Training, now time.Time) error {
		at = orNow(at, now)
		if t.LastLogin == nil || at.After(*t.LastLogin) {
			t.LastLogin = &at
		}
		return nil
	})
}

// AddTraining applies a whole training record at once: it appends tr's
// enrollments and completions and records tr.LastLogin as a login. It is what the
// side endpoint's POST does; nothing is applied if any entry is invalid.
func (l *LMS) AddTraining(id string, tr Training) (Training, error) {
	const op = "AddTraining"
	for _, e := range tr.Enrollments {
		if e.Course == "" || e.EnrolledAt.IsZero() {
			return Training{}, lmsError(connector.KindInvalid, op, "enrollments: course and enrolled_at are required")
		}
	}
	for _, c := range tr.Completions {
		if c.Course == "" || c.CompletedAt.IsZero() {
			return Training{}, lmsError(connector.KindInvalid, op, "completions: course and completed_at are required")
		}
	}
	var out Training
	err := l.train(op, id, func(t *Training, _ time.Time) error {
		t.Enrollments = append(t.Enrollments, tr.Enrollments...)
		t.Completions = append(t.Completions, tr.Completions...)
		t.Uploads += max(tr.Uploads, 0)
		t.Rewards += max(tr.Rewards, 0)
		if tr.LastLogin != nil && (t.LastLogin == nil || tr.LastLogin.After(*t.LastLogin)) {
			ll := *tr.LastLogin
			t.LastLogin = &ll
		}
		out = t.clone()
		return nil
	})
	return out, err
}

// train changes the training of id. Training is not part of what hrsync writes,
// so it neither moves the version on nor counts as an op.
func (l *LMS) train(op, id string, fn func(t *Training, now time.Time) error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.accounts[id]
	if !ok {
		return notFound(op, id)
	}
	t := r.training.clone()
	if err := fn(&t, l.now()); err != nil {
		return err
	}
	r.training = t
	return nil
}

func orNow(at, now time.Time) time.Time {
	if at.IsZero() {
		return now
	}
	return at
}

// Training returns the training record of the account id, or an error matching
// connector.ErrNotFound.
func (l *LMS) Training(id string) (Training, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.accounts[id]
	if !ok {
		return Training{}, notFound("Training", id)
	}
	return r.training.clone(), nil
}

// Snapshot returns every account with its training, in creation order.
func (l *LMS) Snapshot() []AccountRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]AccountRecord, 0, len(l.order))
	for _, id := range l.order {
		r := l.accounts[id]
		out = append(out, AccountRecord{Account: r.view(), Training: r.training.clone()})
	}
	return out
}

// Ops returns the log of successful mutating calls, oldest first.
func (l *LMS) Ops() []Op {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ops)
}

// Count returns the number of accounts.
func (l *LMS) Count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.order)
}
