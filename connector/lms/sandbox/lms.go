package sandbox

import (
	"context"
	"fmt"
	"slices"
	"sort"
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

	mu  sync.Mutex
	seq int
	// recs holds the accounts in creation order; a record's position is its
	// slot. A deleted account leaves a hole (see record.live), listed in holes,
	// until compact closes them.
	recs  []record
	holes []int32 // ascending
	byID  *index
	// byUserName (folded) is unique.
	byUserName *index
	// dupExternalIDs lets two accounts share an externalId, as servers that
	// declare it uniqueness "none" do (see WithDuplicateExternalIDs).
	dupExternalIDs bool
	byExternalID   *index // one slot per key, unless dupExternalIDs
	// Email and employee number are not unique; these index them so that a
	// lookup costs what it would in a real LMS, not a scan of every account.
	byEmail *index // folded email
	byEmpNo *index
	ops     []opRec
	// maxBulk is MaxBulkDeletes: 0 is DefaultMaxBulk, below 0 no bulk (see WithMaxBulk).
	maxBulk int
	// drops are the profile fields the LMS silently does not keep (see
	// WithDroppedAttributes).
	drops []func(p *connector.Profile)
}

// record is one account with everything the LMS knows about it (see index.go).
type record struct {
	id       string
	data     string // the other string fields, packed; "" for a deleted account
	created  time.Time
	modified time.Time
	rev      int32 // the version
	active   bool
	training *Training // nil when it has no activity
}

func (r *record) live() bool { return r.data != "" }

// keys returns r's keys in l.keyed's indexes.
func (r *record) keys() [4]string {
	fs := unpack(r.data)
	return [4]string{fold(fs[fUserName]), fs[fExternalID], fold(fs[fEmail]), fs[fEmployeeNumber]}
}

// keyed returns the indexes of record.keys, in that order.
func (l *LMS) keyed() [4]*index {
	return [4]*index{l.byUserName, l.byExternalID, l.byEmail, l.byEmpNo}
}

// opRec is an Op as the log keeps it.
type opRec struct {
	id   string
	at   time.Time
	kind uint8 // index in opKinds
}

var opKinds = [...]OpKind{OpCreate, OpUpdate, OpActivate, OpDeactivate, OpDelete}

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

// WithDroppedAttributes makes the LMS accept the named profile attributes and
// silently not keep them, as SCIMMY does with employeeNumber, department and
// manager: a create, update, PUT or PATCH succeeds, and the account (and the
// answer) lacks them. Names are those connector.ParseProfileField reads (SCIM
// names or hrsync's); New panics on any other, as this is for tests and demos.
func WithDroppedAttributes(names ...string) Option {
	return func(l *LMS) {
		for _, n := range names {
			f, err := connector.ParseProfileField(n)
			if err != nil {
				panic("sandbox.WithDroppedAttributes: " + err.Error())
			}
			l.drops = append(l.drops, func(p *connector.Profile) {
				*profileField(p, f) = ""
			})
		}
	}
}

// profileField returns the field of p that connector.ProfileFields names f.
func profileField(p *connector.Profile, f string) *string {
	switch f {
	case "email":
		return &p.Email
	case "given_name":
		return &p.GivenName
	case "family_name":
		return &p.FamilyName
	case "employee_number":
		return &p.EmployeeNumber
	case "org_unit":
		return &p.OrgUnit
	case "job_title":
		return &p.JobTitle
	case "manager_id":
		return &p.ManagerID
	}
	return &p.Locale
}

// keep clears the attributes the LMS does not keep.
func (l *LMS) keep(a *connector.Account) {
	for _, d := range l.drops {
		d(&a.Profile)
	}
}

// New returns an empty LMS.
func New(opts ...Option) *LMS {
	l := &LMS{
		now:   time.Now,
		newID: func(seq int) string { return fmt.Sprintf("u-%06d", seq) },
	}
	l.byID = newIndex(func(s int32) string { return l.recs[s].id })
	l.byUserName = newIndex(func(s int32) string { return fold(field(l.recs[s].data, fUserName)) })
	l.byExternalID = newIndex(func(s int32) string { return field(l.recs[s].data, fExternalID) })
	l.byEmail = newIndex(func(s int32) string { return fold(field(l.recs[s].data, fEmail)) })
	l.byEmpNo = newIndex(func(s int32) string { return field(l.recs[s].data, fEmployeeNumber) })
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

// versions are the first versions' ETags, made once: most accounts have one of
// them, and a page of accounts then allocates none.
var versions = func() (vs [32]string) {
	for i := range vs {
		vs[i] = fmt.Sprintf(`W/"%d"`, i)
	}
	return vs
}()

func version(rev int32) string {
	if rev >= 0 && int(rev) < len(versions) {
		return versions[rev]
	}
	return fmt.Sprintf(`W/"%d"`, rev)
}

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

// view returns the account as callers see it; l.mu must be held. Its strings
// share the record's bytes.
func (r *record) view() connector.Account {
	fs := unpack(r.data)
	return connector.Account{ID: r.id, ExternalID: fs[fExternalID], UserName: fs[fUserName], Active: r.active,
		Profile: connector.Profile{Email: fs[fEmail], GivenName: fs[fGivenName], FamilyName: fs[fFamilyName],
			EmployeeNumber: fs[fEmployeeNumber], OrgUnit: fs[fOrgUnit], JobTitle: fs[fJobTitle],
			ManagerID: fs[fManagerID], Locale: fs[fLocale]},
		Organization: fs[fOrganization], Version: version(r.rev), Created: r.created}
}

// trainingCopy returns a copy of r's training (empty, never nil slices, if none).
func (r *record) trainingCopy() Training {
	if r.training == nil {
		return Training{}.clone()
	}
	return r.training.clone()
}

// resource is a consistent copy of a record, for the SCIM handler.
type resource struct {
	acct     connector.Account
	modified time.Time
	training Training
}

// resource copies r; l.mu must be held.
func (r *record) resource() resource {
	return resource{acct: r.view(), modified: r.modified, training: r.trainingCopy()}
}

func (l *LMS) logOp(kind OpKind, id string, at time.Time) {
	k := slices.Index(opKinds[:], kind)
	l.ops = append(l.ops, opRec{id: id, at: at, kind: uint8(k)})
}

// slotOf returns the slot of the account id; l.mu must be held.
func (l *LMS) slotOf(id string) (int32, bool) { return l.byID.first(id) }

// recordOf returns the record of the account id; l.mu must be held.
func (l *LMS) recordOf(id string) (int32, *record, bool) {
	s, ok := l.slotOf(id)
	if !ok {
		return 0, nil, false
	}
	return s, &l.recs[s], true
}

// checkUnique returns a conflict if a's userName or externalId belongs to another
// account than self; l.mu must be held.
func (l *LMS) checkUnique(op string, a connector.Account, self string) error {
	if a.UserName == "" {
		return lmsError(connector.KindInvalid, op, "userName is required")
	}
	other := func(s int32) bool { return l.recs[s].id == self }
	taken := false
	l.byUserName.each(fold(a.UserName), func(s int32) bool { taken = !other(s); return !taken })
	if taken {
		return lmsError(connector.KindConflict, op, "userName %q is already taken", a.UserName)
	}
	if a.ExternalID != "" && !l.dupExternalIDs {
		l.byExternalID.each(a.ExternalID, func(s int32) bool { taken = !other(s); return !taken })
		if taken {
			return lmsError(connector.KindConflict, op, "externalId %q is already taken", a.ExternalID)
		}
	}
	return nil
}

// reindex moves the record at slot s from the keys old to its current keys;
// l.mu must be held.
func (l *LMS) reindex(s int32, old [4]string) {
	cur := [4]string{}
	if r := &l.recs[s]; r.live() {
		cur = r.keys()
	}
	for i, x := range l.keyed() {
		x.move(old[i], cur[i], s)
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
	_, r, ok := l.recordOf(id)
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

// query returns the accounts that match f (all if f is nil), in creation order.
// Filters go through the indexes; every candidate is checked with f.Matches.
func (l *LMS) query(f *connector.AccountFilter) []resource {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := []resource{}
	if f == nil {
		for i := range l.recs {
			if r := &l.recs[i]; r.live() {
				out = append(out, r.resource())
			}
		}
		return out
	}
	var x *index
	key := f.Value
	switch f.Attr {
	case connector.ByExternalID:
		x = l.byExternalID
	case connector.ByUserName:
		x, key = l.byUserName, fold(key)
	case connector.ByEmail:
		x, key = l.byEmail, fold(key)
	case connector.ByEmployeeNumber:
		x = l.byEmpNo
	default:
		return out
	}
	var slots []int32
	x.each(key, func(s int32) bool {
		if f.Matches(l.recs[s].view()) {
			slots = append(slots, s)
		}
		return true
	})
	slices.Sort(slots)
	for _, s := range slots {
		out = append(out, l.recs[s].resource())
	}
	return out
}

// page calls fn with up to count (at most MaxResults) accounts in creation
// order, from the 1-based startIndex (values below 1 count as 1), and returns
// how many accounts there are; l.mu must be held.
func (l *LMS) page(startIndex, count int, fn func(r *record)) (total int) {
	total = len(l.recs) - len(l.holes)
	count = min(max(count, 0), MaxResults)
	k := max(startIndex, 1) - 1 // 0-based among the live records
	if k >= total {
		return total
	}
	// The live record k is at slot k + the number of holes before it: the
	// number of holes h[i] with h[i] - i <= k (h[i] - i grows with i).
	s := k + sort.Search(len(l.holes), func(i int) bool { return int(l.holes[i])-i > k })
	for ; s < len(l.recs) && count > 0; s++ {
		if r := &l.recs[s]; r.live() {
			fn(r)
			count--
		}
	}
	return total
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
	id := l.newID(l.seq)
	if _, dup := l.slotOf(id); dup {
		return resource{}, lmsError(connector.KindUnavailable, op, "id %q generated twice", id)
	}
	s := int32(len(l.recs))
	l.keep(&a)
	l.recs = append(l.recs, record{id: id, data: pack(&a), created: now, modified: now, rev: 1, active: a.Active})
	l.byID.add(id, s)
	l.reindex(s, [4]string{})
	l.logOp(OpCreate, id, now)
	return l.recs[s].resource(), nil
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
	s, r, ok := l.recordOf(id)
	if !ok {
		return resource{}, notFound(op, id)
	}
	if cur := version(r.rev); !matchesIfMatch(ifMatch, cur) {
		return resource{}, lmsError(connector.KindPrecondition, op, "version %s is not the current %s", ifMatch, cur)
	}
	a := r.view()
	a.Version = ""
	kinds, err := fn(&a)
	if err != nil {
		return resource{}, err
	}
	a.ID, a.Created = r.id, r.created
	if err := l.checkUnique(op, a, id); err != nil {
		return resource{}, err
	}
	now := l.now()
	old := r.keys()
	l.keep(&a)
	r.data, r.active, r.rev, r.modified = pack(&a), a.Active, r.rev+1, now
	l.reindex(s, old)
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
	s, r, ok := l.recordOf(id)
	if !ok {
		return notFound(op, id)
	}
	if cur := version(r.rev); !matchesIfMatch(ifMatch, cur) {
		return lmsError(connector.KindPrecondition, op, "version %s is not the current %s", ifMatch, cur)
	}
	old := r.keys()
	*r = record{}
	l.reindex(s, old)
	l.byID.remove(id, s)
	at, _ := slices.BinarySearch(l.holes, s)
	l.holes = slices.Insert(l.holes, at, s)
	l.logOp(OpDelete, id, l.now())
	// Close the holes once they are a quarter of the slots: each compaction
	// costs O(slots), so deletions cost O(1) each over time.
	if len(l.holes)*4 > len(l.recs) {
		l.compact()
	}
	return nil
}

// compact closes the holes that deletions left: the live records move down,
// keeping their order, and the indexes follow them; l.mu must be held.
func (l *LMS) compact() {
	to := func(s int32) int32 {
		n, _ := slices.BinarySearch(l.holes, s) // holes before s
		return s - int32(n)
	}
	keyed := l.keyed()
	for _, x := range append(keyed[:], l.byID) {
		x.renumber(to)
	}
	live := l.recs[:0]
	for _, r := range l.recs {
		if r.live() {
			live = append(live, r)
		}
	}
	clear(l.recs[len(live):])
	l.recs, l.holes = live, l.holes[:0]
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
	page := connector.AccountPage{StartIndex: max(startIndex, 1), Accounts: make([]connector.Account, 0, min(max(count, 0), MaxResults))}
	page.TotalResults = l.page(startIndex, count, func(r *record) { page.Accounts = append(page.Accounts, r.view()) })
	return page, nil
}

// pageOf returns how many accounts there are and copies of those that
// ListAccounts(startIndex, count) returns.
func (l *LMS) pageOf(startIndex, count int) (int, []resource) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []resource
	total := l.page(startIndex, count, func(r *record) { out = append(out, r.resource()) })
	return total, out
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
	_, r, ok := l.recordOf(id)
	if !ok {
		return notFound(op, id)
	}
	t := r.trainingCopy()
	if err := fn(&t, l.now()); err != nil {
		return err
	}
	r.training = nil
	if t.HasActivity() {
		r.training = &t
	}
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
	_, r, ok := l.recordOf(id)
	if !ok {
		return Training{}, notFound("Training", id)
	}
	return r.trainingCopy(), nil
}

// Snapshot returns every account with its training, in creation order.
func (l *LMS) Snapshot() []AccountRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]AccountRecord, 0, len(l.recs)-len(l.holes))
	for i := range l.recs {
		if r := &l.recs[i]; r.live() {
			out = append(out, AccountRecord{Account: r.view(), Training: r.trainingCopy()})
		}
	}
	return out
}

// Ops returns the log of successful mutating calls, oldest first.
func (l *LMS) Ops() []Op {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Op, len(l.ops))
	for i, o := range l.ops {
		out[i] = Op{Kind: opKinds[o.kind], AccountID: o.id, At: o.at}
	}
	return out
}

// Count returns the number of accounts.
func (l *LMS) Count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.recs) - len(l.holes)
}
