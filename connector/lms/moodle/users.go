package moodle

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hrsync/hrsync/connector"
)

// The web service functions the adapter calls. A site's service must include
// each of them (docs/lms-compat-moodle.md lists them with the capabilities
// they need).
const (
	FnCreateUsers      = "core_user_create_users"
	FnUpdateUsers      = "core_user_update_users"
	FnDeleteUsers      = "core_user_delete_users"
	FnGetUsersByField  = "core_user_get_users_by_field"
	FnGetUsers         = "core_user_get_users"
	FnUsersCourses     = "core_enrol_get_users_courses"
	FnCourseCompletion = "core_completion_get_course_completion_status"
)

// guestUserName is the username of Moodle's guest user.
const guestUserName = "guest"

// listingTTL is how long ListAccounts pages through one snapshot of the
// users before it reads them again (it always reads them again at the first page).
const listingTTL = 10 * time.Minute

func notFound(op string) *connector.LMSError {
	return &connector.LMSError{Kind: connector.KindNotFound, Op: op, Reason: "no such user"}
}

func invalid(op, reason string) *connector.LMSError {
	return &connector.LMSError{Kind: connector.KindInvalid, Op: op, Reason: reason}
}

// usersByField calls core_user_get_users_by_field: the users whose field is
// one of values, in one call. Deleted users are never among them.
func (c *Client) usersByField(ctx context.Context, field string, values []string) ([]user, error) {
	if len(values) == 0 {
		return nil, nil
	}
	fm := &form{}
	fm.set(field, "field")
	for i, v := range values {
		fm.set(v, "values", i)
	}
	var out []user
	err := c.call(ctx, FnGetUsersByField, fm, &out)
	return out, err
}

// usersByCriterion calls core_user_get_users with one criterion. For email,
// firstname and lastname Moodle compares with a case-insensitive LIKE (so %
// and _ are wildcards: callers filter what it returns).
func (c *Client) usersByCriterion(ctx context.Context, key, value string) ([]user, error) {
	fm := &form{}
	fm.set(key, "criteria", 0, "key")
	fm.set(value, "criteria", 0, "value")
	var out struct {
		Users    []user    `json:"users"`
		Warnings []warning `json:"warnings"`
	}
	if err := c.call(ctx, FnGetUsers, fm, &out); err != nil {
		return nil, err
	}
	for _, w := range out.Warnings {
		if w.WarningCode == "invalidfieldparameter" {
			return nil, invalid(FnGetUsers, "the site does not search users by "+key)
		}
	}
	return out.Users, nil
}

// allUsers reads every user of the site in one call: core_user_get_users
// with the criterion email LIKE '%', which every user matches. Moodle has no
// paged user listing in its web services; this is what ListAccounts and the
// lookups by employee number (a field no lookup function searches) read.
func (c *Client) allUsers(ctx context.Context) ([]user, error) {
	us, err := c.usersByCriterion(ctx, "email", "%")
	if err != nil {
		return nil, err
	}
	// The guest user is the site's, no person's: never an account of hrsync's
	// (Moodle would not delete or suspend it either).
	us = slices.DeleteFunc(us, func(u user) bool { return u.Username == guestUserName })
	slices.SortFunc(us, func(a, b user) int { return cmp.Compare(a.ID, b.ID) })
	return us, nil
}

func (c *Client) accounts(us []user) []connector.Account {
	out := make([]connector.Account, 0, len(us))
	for _, u := range us {
		out = append(out, u.account(c.fields))
	}
	return out
}

// GetAccount implements connector.LMS.
func (c *Client) GetAccount(ctx context.Context, id string) (connector.Account, error) {
	n, ok := parseID(id)
	if !ok {
		return connector.Account{}, notFound("GetAccount")
	}
	us, err := c.usersByField(ctx, "id", []string{id})
	if err != nil {
		return connector.Account{}, err
	}
	for _, u := range us {
		if u.ID == n {
			return u.account(c.fields), nil
		}
	}
	return connector.Account{}, notFound("GetAccount")
}

// FindAccounts implements connector.LMS. externalId and userName are one
// core_user_get_users_by_field call; email is one core_user_get_users call
// (case-insensitive, whatever the site's database); employee number reads
// every user (allUsers), since no web service function searches profile fields.
func (c *Client) FindAccounts(ctx context.Context, f connector.AccountFilter) ([]connector.Account, error) {
	var us []user
	var err error
	switch f.Attr {
	case connector.ByExternalID:
		if f.Value == "" {
			return []connector.Account{}, nil
		}
		us, err = c.usersByField(ctx, "idnumber", []string{f.Value})
	case connector.ByUserName:
		n := normUserName(f.Value)
		if n == "" {
			return []connector.Account{}, nil
		}
		us, err = c.usersByField(ctx, "username", []string{n})
		if isInvalidParameter(err) {
			// Moodle refuses a value it would not store as a username: no
			// user has it.
			return []connector.Account{}, nil
		}
	case connector.ByEmail:
		if !validEmail(f.Value) {
			return []connector.Account{}, nil
		}
		us, err = c.usersByCriterion(ctx, "email", f.Value)
	case connector.ByEmployeeNumber:
		if f.Value == "" || c.fields.EmployeeNumber == "" {
			return []connector.Account{}, nil
		}
		us, err = c.allUsers(ctx)
	default:
		return nil, invalid("FindAccounts", "cannot filter on "+string(f.Attr))
	}
	if err != nil {
		return nil, err
	}
	out := []connector.Account{}
	for _, a := range c.accounts(us) {
		if f.Matches(a) {
			out = append(out, a)
		}
	}
	return out, nil
}

func isInvalidParameter(err error) bool {
	var le *connector.LMSError
	return errors.As(err, &le) && le.Kind == connector.KindInvalid && le.Code == "invalidparameter"
}

// ListAccounts implements connector.LMS, in the order of Moodle's user ids.
// Moodle cannot page users, so the first page (startIndex 1) reads every user
// in one call and later pages are cut from that snapshot (read again when it
// is older than ten minutes): a whole pass costs one call and sees one
// consistent state.
func (c *Client) ListAccounts(ctx context.Context, startIndex, count int) (connector.AccountPage, error) {
	c.listMu.Lock()
	defer c.listMu.Unlock()
	if startIndex <= 1 || c.listing == nil || c.now().Sub(c.listAt) > listingTTL {
		us, err := c.allUsers(ctx)
		if err != nil {
			return connector.AccountPage{}, err
		}
		c.listing, c.listAt = c.accounts(us), c.now()
	}
	from := min(max(startIndex, 1)-1, len(c.listing))
	to := min(from+max(count, 0), len(c.listing))
	return connector.AccountPage{Accounts: slices.Clone(c.listing[from:to]), StartIndex: max(startIndex, 1),
		TotalResults: len(c.listing)}, nil
}

// CreateAccount implements connector.LMS: one core_user_create_users call, a
// core_user_update_users call to suspend an inactive account (Moodle creates
// users active), and one read of what was stored. The userName is stored
// lower-case. A conflict is told from other refusals by looking the userName
// and email up (see explainCreate).
func (c *Client) CreateAccount(ctx context.Context, a connector.Account) (connector.Account, error) {
	rs, err := c.createAccounts(ctx, "CreateAccount", []connector.Account{a})
	if err != nil {
		return connector.Account{}, err
	}
	return rs[0].Account, rs[0].Err
}

// UpdateAccount implements connector.LMS: one core_user_update_users call that
// writes every field (clearing the empty ones) and leaves suspended alone,
// then one read. Moodle has no versions: a.Version is ignored.
func (c *Client) UpdateAccount(ctx context.Context, a connector.Account) (connector.Account, error) {
	rs, err := c.updateAccounts(ctx, "UpdateAccount", []connector.Account{a}, false)
	if err != nil {
		return connector.Account{}, err
	}
	return rs[0].Account, rs[0].Err
}

// SetActive implements connector.LMS: core_user_update_users with suspended
// 0 or 1 (suspension keeps enrolments, grades and completions), then one read.
func (c *Client) SetActive(ctx context.Context, id string, active bool) (connector.Account, error) {
	rs, err := c.setActive(ctx, "SetActive", []string{id}, active, true)
	if err != nil {
		return connector.Account{}, err
	}
	return rs[0].Account, rs[0].Err
}

// DeleteAccount implements connector.LMS with core_user_delete_users. Moodle's
// deletion scrubs the user and destroys their grades, enrolments and
// completions: hrsync's leaver policy deactivates (suspends) instead, and
// deletes only what the clean-up and erasure policies allow.
func (c *Client) DeleteAccount(ctx context.Context, id string) error {
	if _, ok := parseID(id); !ok {
		return notFound("DeleteAccount")
	}
	fm := &form{}
	fm.set(id, "userids", 0)
	err := c.call(ctx, FnDeleteUsers, fm, nil)
	return rename(userGone(err), "DeleteAccount")
}

// rename sets the Op of an LMSError to op (the port's method, not Moodle's function).
func rename(err error, op string) error {
	var le *connector.LMSError
	if errors.As(err, &le) && le.Op != op {
		cp := *le
		cp.Op = op + " (" + le.Op + ")"
		return &cp
	}
	return err
}

// idsOf parses ids; bad holds the indexes of ids no Moodle user can have.
func idsOf(ids []string) (ns []int64, bad map[int]bool) {
	bad = map[int]bool{}
	ns = make([]int64, len(ids))
	for i, id := range ids {
		n, ok := parseID(id)
		if !ok {
			bad[i] = true
		}
		ns[i] = n
	}
	return ns, bad
}

// readBack returns the accounts of ids as the site shows them now, by id.
func (c *Client) readBack(ctx context.Context, ids []int64) (map[int64]connector.Account, error) {
	var vals []string
	for _, n := range ids {
		vals = append(vals, strconv.FormatInt(n, 10))
	}
	out := map[int64]connector.Account{}
	for from := 0; from < len(vals); from += c.readBatch() {
		us, err := c.usersByField(ctx, "id", vals[from:min(from+c.readBatch(), len(vals))])
		if err != nil {
			return nil, err
		}
		for _, u := range us {
			out[u.ID] = u.account(c.fields)
		}
	}
	return out, nil
}

// wholeCall reports whether err is about the call as a whole (the site, the
// token, the network), not about an item in it.
func wholeCall(err error) bool {
	var le *connector.LMSError
	if !errors.As(err, &le) {
		return true
	}
	switch le.Kind {
	case connector.KindAuth, connector.KindRateLimited:
		return true
	case connector.KindUnavailable:
		return le.Code != "dmlwriteexception"
	}
	return false
}

// userNameTakenBy returns the id of the user that has userName, 0 if none.
func (c *Client) userNameTakenBy(ctx context.Context, userName string) (int64, error) {
	us, err := c.usersByField(ctx, "username", []string{normUserName(userName)})
	if isInvalidParameter(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	for _, u := range us {
		if strings.EqualFold(u.Username, userName) {
			return u.ID, nil
		}
	}
	return 0, nil
}

// emailTakenBy returns the ids of the users with email (case-insensitively).
func (c *Client) emailTakenBy(ctx context.Context, email string) ([]int64, error) {
	if !validEmail(email) {
		return nil, nil
	}
	us, err := c.usersByCriterion(ctx, "email", email)
	if err != nil {
		return nil, err
	}
	var ids []int64
	for _, u := range us {
		if strings.EqualFold(u.Email, email) {
			ids = append(ids, u.ID)
		}
	}
	return ids, nil
}

func conflict(op, reason string, cause error) *connector.LMSError {
	return &connector.LMSError{Kind: connector.KindConflict, Op: op, Reason: reason, Err: cause}
}
