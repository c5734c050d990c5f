package moodle

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"github.com/hrsync/hrsync/connector"
)

// Batch sizes follow from max_input_vars: every leaf of a call's arrays is one
// form field, and PHP drops those beyond the limit without a word.

// perUserVars is how many form fields one user of a create or update takes.
func (c *Client) perUserVars() int {
	n := 8 // id or auth, createpassword, username, firstname, lastname, email, idnumber; one spare
	for _, e := range c.fields.entries() {
		switch {
		case e.name == "":
		case strings.HasPrefix(e.name, CustomFieldPrefix):
			n += 2
		default:
			n++
		}
	}
	return n
}

// headroom is the fields of the call itself (wstoken, wsfunction, format, a field name).
const headroom = 8

func (c *Client) writeBatch() int { return min(100, (c.maxVars-headroom)/c.perUserVars()) }
func (c *Client) readBatch() int  { return min(500, c.maxVars-headroom) }

// MaxCreateBatch implements connector.AccountCreator.
func (c *Client) MaxCreateBatch(context.Context) int { return c.writeBatch() }

// MaxUpdateBatch implements connector.AccountUpdater.
func (c *Client) MaxUpdateBatch(context.Context) int { return c.writeBatch() }

// MaxSetActiveBatch implements connector.ActiveSetter: two fields a user.
func (c *Client) MaxSetActiveBatch(context.Context) int { return min(400, (c.maxVars-headroom)/2) }

// MaxReadBatch implements connector.AccountBatchReader.
func (c *Client) MaxReadBatch(context.Context) int { return c.readBatch() }

// MaxBulkDeletes implements connector.BulkDeleter.
func (c *Client) MaxBulkDeletes(context.Context) int { return c.readBatch() }

// CreateAccounts implements connector.AccountCreator: the accounts go in one
// core_user_create_users call, then one core_user_update_users call suspends
// the inactive ones, then one call reads them all back.
//
// Moodle creates a batch all or nothing: one invalid or taken user fails the
// call and rolls back every other (user/externallib.php runs the loop in one
// delegated transaction), and without debugging on its answer does not say
// which. So that each account's result is its own, a failed batch is followed
// by one lookup of the userNames (those taken are conflicts), one more try of
// the rest together, and, if that fails as well, one call per account, each
// explained as CreateAccount explains it. Bounded: at most 3 + n calls.
func (c *Client) CreateAccounts(ctx context.Context, accs []connector.Account) ([]connector.ItemResult, error) {
	return c.createAccounts(ctx, "CreateAccounts", accs)
}

func (c *Client) createAccounts(ctx context.Context, op string, accs []connector.Account) ([]connector.ItemResult, error) {
	if n := c.writeBatch(); len(accs) > n {
		return nil, invalid(op, "more accounts than MaxCreateBatch "+strconv.Itoa(n))
	}
	rs := make([]connector.ItemResult, len(accs))
	ids := make([]int64, len(accs))
	var todo []int
	seen := map[string]int{}
	for i, a := range accs {
		un := normUserName(a.UserName)
		switch {
		case un == "":
			rs[i].Err = invalid(op, "userName is required")
		case a.Profile.Email != "" && !validEmail(a.Profile.Email):
			rs[i].Err = invalid(op, "the email is not an address Moodle accepts")
		case badNames(a):
			rs[i].Err = invalid(op, "a name has an HTML tag, which Moodle refuses (PARAM_NOTAGS)")
		default:
			if _, dup := seen[un]; dup {
				rs[i].Err = conflict(op, "the userName is twice in the batch", nil)
				continue
			}
			seen[un] = i
			todo = append(todo, i)
		}
	}
	if len(todo) > 0 {
		err := c.createCall(ctx, accs, todo, ids)
		switch {
		case err == nil:
		case wholeCall(err):
			return nil, err
		case len(todo) == 1:
			rs[todo[0]].Err = c.explainCreate(ctx, op, accs[todo[0]], err)
		default:
			if err := c.createApart(ctx, op, accs, todo, ids, rs); err != nil {
				return nil, err
			}
		}
	}
	// Moodle creates users active; suspend the inactive ones in one call.
	var suspend []int
	for i, a := range accs {
		if ids[i] > 0 && !a.Active {
			suspend = append(suspend, i)
		}
	}
	if len(suspend) > 0 {
		var sids []string
		for _, i := range suspend {
			sids = append(sids, strconv.FormatInt(ids[i], 10))
		}
		srs, err := c.setActive(ctx, op, sids, false, false)
		for k, i := range suspend {
			switch {
			case err != nil:
				rs[i].Err = &connector.LMSError{Kind: connector.KindUnavailable, Op: op, Reason: "created, but not suspended", Err: err}
			case srs[k].Err != nil:
				rs[i].Err = &connector.LMSError{Kind: connector.KindUnavailable, Op: op, Reason: "created, but not suspended", Err: srs[k].Err}
			}
		}
	}
	var created []int64
	for _, n := range ids {
		if n > 0 {
			created = append(created, n)
		}
	}
	got, rerr := c.readBack(ctx, created)
	for i, a := range accs {
		if ids[i] == 0 {
			continue
		}
		if acct, ok := got[ids[i]]; ok && rerr == nil {
			rs[i].Account = acct
			if acct.Active != a.Active && rs[i].Err == nil {
				// An older site skipped the suspension without a word.
				rs[i].Err = &connector.LMSError{Kind: connector.KindUnavailable, Op: op, Reason: "created, but not suspended"}
			}
			continue
		}
		// Created, but not read back: what was sent, with its id.
		a.ID, a.Version, a.UserName = strconv.FormatInt(ids[i], 10), "", normUserName(a.UserName)
		a.Active = a.Active || rs[i].Err != nil
		rs[i].Account = a
	}
	return rs, nil
}

// createCall creates accs[i] for each i of idx in one call and records their ids.
func (c *Client) createCall(ctx context.Context, accs []connector.Account, idx []int, ids []int64) error {
	fm := &form{}
	for k, i := range idx {
		setUser(fm, k, 0, accs[i], c.fields)
		fm.set("manual", "users", k, "auth")
		fm.set("1", "users", k, "createpassword")
	}
	var out []struct {
		ID       int64  `json:"id"`
		Username string `json:"username"`
	}
	if err := c.call(ctx, FnCreateUsers, fm, &out); err != nil {
		return err
	}
	if len(out) != len(idx) {
		return &connector.LMSError{Kind: connector.KindUnavailable, Op: FnCreateUsers,
			Reason: "created " + strconv.Itoa(len(out)) + " users for " + strconv.Itoa(len(idx))}
	}
	for k, i := range idx {
		ids[i] = out[k].ID
	}
	return nil
}

// createApart creates accs[idx] after their batch failed as a whole: taken
// userNames are conflicts, the rest are tried together once more, then one by one.
func (c *Client) createApart(ctx context.Context, op string, accs []connector.Account, idx []int, ids []int64, rs []connector.ItemResult) error {
	var names []string
	for _, i := range idx {
		names = append(names, normUserName(accs[i].UserName))
	}
	us, err := c.usersByField(ctx, "username", names)
	if err != nil && !isInvalidParameter(err) {
		return err
	}
	taken := map[string]bool{}
	for _, u := range us {
		taken[strings.ToLower(u.Username)] = true
	}
	var rest []int
	for _, i := range idx {
		if taken[normUserName(accs[i].UserName)] {
			rs[i].Err = conflict(op, "the userName is taken", nil)
			continue
		}
		rest = append(rest, i)
	}
	if len(rest) == 0 {
		return nil
	}
	if len(rest) < len(idx) && !isInvalidParameter(err) {
		err := c.createCall(ctx, accs, rest, ids)
		if err == nil {
			return nil
		}
		if wholeCall(err) {
			return err
		}
	}
	for _, i := range rest {
		err := c.createCall(ctx, accs, []int{i}, ids)
		switch {
		case err == nil:
		case wholeCall(err):
			rs[i].Err = err
		default:
			rs[i].Err = c.explainCreate(ctx, op, accs[i], err)
		}
	}
	return nil
}

// explainCreate classifies the refusal err of creating a alone. Moodle says
// "invalid parameter" for a taken username or email as for a malformed one,
// and only a site with debugging on says which: the userName and the email are
// looked up to tell a conflict from an invalid account.
func (c *Client) explainCreate(ctx context.Context, op string, a connector.Account, err error) error {
	var le *connector.LMSError
	if !errors.As(err, &le) || le.Kind != connector.KindInvalid {
		return rename(err, op)
	}
	id, lerr := c.userNameTakenBy(ctx, a.UserName)
	if lerr != nil {
		return untold(op, err, lerr)
	}
	if id > 0 {
		return conflict(op, "the userName is taken", err)
	}
	if a.Profile.Email != "" {
		owners, lerr := c.emailTakenBy(ctx, a.Profile.Email)
		if lerr != nil {
			return untold(op, err, lerr)
		}
		if len(owners) > 0 {
			return conflict(op, "another account has the email (the site wants emails unique)", err)
		}
	}
	return rename(err, op)
}

// untold is the error of a refusal err whose reason could not be looked up
// (lerr): temporary, so that the caller tries again, and never a conflict or
// an invalid account, which it may not be.
func untold(op string, err, lerr error) error {
	return &connector.LMSError{Kind: connector.KindUnavailable, Op: op,
		Reason: "refused (" + err.Error() + "), and looking up why failed", Err: lerr}
}

// UpdateAccounts implements connector.AccountUpdater: one core_user_update_users
// call for all, then one read. Since MDL-69194 Moodle updates each user in a
// transaction of its own and answers a warning for each it did not update;
// older sites answer null and skip some users silently (a missing or deleted
// user, a taken email), so there the read back is what tells each result.
func (c *Client) UpdateAccounts(ctx context.Context, accs []connector.Account) ([]connector.ItemResult, error) {
	return c.updateAccounts(ctx, "UpdateAccounts", accs, false)
}

// UpdatesActive implements connector.ActiveUpdater: core_user_update_users
// takes suspended beside the other fields of a user.
func (c *Client) UpdatesActive(context.Context) bool { return true }

// UpdateAccountActive implements connector.ActiveUpdater: UpdateAccount with
// suspended set from a.Active in the same core_user_update_users item.
func (c *Client) UpdateAccountActive(ctx context.Context, a connector.Account) (connector.Account, error) {
	rs, err := c.updateAccounts(ctx, "UpdateAccountActive", []connector.Account{a}, true)
	if err != nil {
		return connector.Account{}, err
	}
	return rs[0].Account, rs[0].Err
}

// UpdateAccountsActive implements connector.ActiveUpdater: UpdateAccounts with
// each user's suspended set from its Active, in one call.
func (c *Client) UpdateAccountsActive(ctx context.Context, accs []connector.Account) ([]connector.ItemResult, error) {
	return c.updateAccounts(ctx, "UpdateAccountsActive", accs, true)
}

var _ connector.ActiveUpdater = (*Client)(nil)

// updateAccounts writes accs with one core_user_update_users call; withState
// also sets each user's suspended from its Active (the form field the
// per-user count keeps spare).
func (c *Client) updateAccounts(ctx context.Context, op string, accs []connector.Account, withState bool) ([]connector.ItemResult, error) {
	if n := c.writeBatch(); len(accs) > n {
		return nil, invalid(op, "more accounts than MaxUpdateBatch "+strconv.Itoa(n))
	}
	rs := make([]connector.ItemResult, len(accs))
	ids := make([]int64, len(accs))
	var todo []int
	for i, a := range accs {
		n, ok := parseID(a.ID)
		switch {
		case !ok:
			rs[i].Err = notFound(op)
		case normUserName(a.UserName) == "":
			rs[i].Err = invalid(op, "userName is required")
		case a.Profile.Email != "" && !validEmail(a.Profile.Email):
			rs[i].Err = invalid(op, "the email is not an address Moodle accepts")
		case badNames(a):
			rs[i].Err = invalid(op, "a name has an HTML tag, which Moodle refuses (PARAM_NOTAGS)")
		default:
			ids[i] = n
			todo = append(todo, i)
		}
	}
	write := func(fm *form, k, i int) {
		setUser(fm, k, ids[i], accs[i], c.fields)
		if withState {
			suspended := "1"
			if accs[i].Active {
				suspended = "0"
			}
			fm.set(suspended, "users", k, "suspended")
		}
	}
	applied, legacy, err := c.updateCall(ctx, op, todo, ids, write, rs)
	if err != nil {
		return nil, err
	}
	got, err := c.readBack(ctx, applied)
	if err != nil {
		return nil, err
	}
	for _, i := range todo {
		if rs[i].Err != nil {
			rs[i].Err = c.explainUpdate(ctx, op, accs[i], ids[i], rs[i].Err)
			continue
		}
		cur, ok := got[ids[i]]
		switch {
		case !ok:
			rs[i].Err = notFound(op)
		case legacy && (!sameData(cur, accs[i]) || withState && cur.Active != accs[i].Active):
			// An older site skipped it without a word.
			rs[i].Err = c.explainUpdate(ctx, op, accs[i], ids[i], invalid(op, "Moodle did not apply the update"))
		default:
			rs[i].Account = cur
		}
	}
	return rs, nil
}

// sameData reports whether got shows what want asked to write.
func sameData(got, want connector.Account) bool {
	return got.ExternalID == want.ExternalID && strings.EqualFold(got.UserName, want.UserName) &&
		strings.EqualFold(got.Profile.Email, want.Profile.Email) && got.Profile.GivenName == want.Profile.GivenName &&
		got.Profile.FamilyName == want.Profile.FamilyName
}

// explainUpdate tells a taken userName or email from other failures of
// updating a (the user id): a taken username fails in the database (a
// dmlwriteexception), a taken email is skipped (or, since MDL-69194, a
// useremailduplicate warning).
func (c *Client) explainUpdate(ctx context.Context, op string, a connector.Account, id int64, err error) error {
	if errors.Is(err, connector.ErrNotFound) || errors.Is(err, connector.ErrConflict) {
		return err
	}
	owner, lerr := c.userNameTakenBy(ctx, a.UserName)
	if lerr != nil {
		return untold(op, err, lerr)
	}
	if owner > 0 && owner != id {
		return conflict(op, "the userName is taken", err)
	}
	if a.Profile.Email != "" {
		owners, lerr := c.emailTakenBy(ctx, a.Profile.Email)
		if lerr != nil {
			return untold(op, err, lerr)
		}
		for _, o := range owners {
			if o != id {
				return conflict(op, "another account has the email (the site wants emails unique)", err)
			}
		}
	}
	return err
}

// updateCall runs core_user_update_users for the items idx (write sets item i
// as users[k]) and records each item's warning in rs. It returns the ids it
// may have updated, and legacy when the site answered as before MDL-69194
// (null, or a failure of the whole batch): its silence then proves nothing,
// and callers check what they read back. A batch that failed whole is retried
// one user per call.
func (c *Client) updateCall(ctx context.Context, op string, idx []int, ids []int64, write func(fm *form, k, i int), rs []connector.ItemResult) (applied []int64, legacy bool, err error) {
	if len(idx) == 0 {
		return nil, false, nil
	}
	once := func(part []int) error {
		fm := &form{}
		for k, i := range part {
			write(fm, k, i)
		}
		var raw json.RawMessage
		if err := c.call(ctx, FnUpdateUsers, fm, &raw); err != nil {
			return err
		}
		var out struct {
			Warnings []warning `json:"warnings"`
		}
		if len(raw) == 0 || string(raw) == "null" {
			legacy = true
		} else {
			if err := json.Unmarshal(raw, &out); err != nil {
				return &connector.LMSError{Kind: connector.KindUnavailable, Op: FnUpdateUsers, Reason: "unexpected answer", Err: err}
			}
		}
		for _, w := range out.Warnings {
			for _, i := range part {
				if ids[i] == w.ItemID && (w.Item == "" || w.Item == "user") {
					rs[i].Err = warningError(op, w)
				}
			}
		}
		return nil
	}
	err = once(idx)
	switch {
	case err == nil:
	case wholeCall(err):
		return nil, false, err
	case len(idx) == 1:
		// Only a site that runs the batch in one transaction fails it whole.
		legacy = true
		rs[idx[0]].Err = rename(err, op)
	default:
		legacy = true
		for _, i := range idx {
			if err := once([]int{i}); err != nil {
				if wholeCall(err) {
					return nil, false, err
				}
				rs[i].Err = rename(err, op)
			}
		}
	}
	for _, i := range idx {
		if rs[i].Err == nil {
			applied = append(applied, ids[i])
		}
	}
	return applied, legacy, nil
}

// SetActiveMany implements connector.ActiveSetter: one core_user_update_users
// call with suspended 0 or 1 for every id, then one read. Suspension keeps a
// user's enrolments, grades and completions; a suspended user cannot log in.
func (c *Client) SetActiveMany(ctx context.Context, ids []string, active bool) ([]connector.ItemResult, error) {
	return c.setActive(ctx, "SetActiveMany", ids, active, true)
}

// setActive sets ids active or not; with read, it reads them back (one call)
// for their results' accounts.
func (c *Client) setActive(ctx context.Context, op string, ids []string, active, read bool) ([]connector.ItemResult, error) {
	if n := c.MaxSetActiveBatch(ctx); len(ids) > n {
		return nil, invalid(op, "more ids than MaxSetActiveBatch "+strconv.Itoa(n))
	}
	rs := make([]connector.ItemResult, len(ids))
	ns, bad := idsOf(ids)
	var todo []int
	for i := range ids {
		if bad[i] {
			rs[i].Err = notFound(op)
			continue
		}
		todo = append(todo, i)
	}
	suspended := "1"
	if active {
		suspended = "0"
	}
	write := func(fm *form, k, i int) {
		fm.set(strconv.FormatInt(ns[i], 10), "users", k, "id")
		fm.set(suspended, "users", k, "suspended")
	}
	applied, legacy, err := c.updateCall(ctx, op, todo, ns, write, rs)
	if err != nil || !read {
		return rs, err
	}
	got, err := c.readBack(ctx, applied)
	if err != nil {
		return nil, err
	}
	for _, i := range todo {
		if rs[i].Err != nil {
			continue
		}
		cur, ok := got[ns[i]]
		switch {
		case !ok:
			rs[i].Err = notFound(op)
		case legacy && cur.Active != active:
			// An older site skips admins, the guest user and remote users without a word.
			rs[i].Err = invalid(op, "Moodle did not apply the change (an admin, the guest user or a remote user?)")
		default:
			rs[i].Account = cur
		}
	}
	return rs, nil
}

// GetAccounts implements connector.AccountBatchReader: one
// core_user_get_users_by_field call by id.
func (c *Client) GetAccounts(ctx context.Context, ids []string) (map[string]connector.Account, error) {
	ns, bad := idsOf(ids)
	var ok []int64
	for i, n := range ns {
		if !bad[i] {
			ok = append(ok, n)
		}
	}
	got, err := c.readBack(ctx, ok)
	if err != nil {
		return nil, err
	}
	out := map[string]connector.Account{}
	for _, a := range got {
		out[a.ID] = a
	}
	return out, nil
}

// FindAccountsIn implements connector.AccountBatchReader: externalIds,
// userNames and emails in one core_user_get_users_by_field call each;
// employee numbers by one read of every user.
//
// Emails are looked up as given and lower-case. Moodle compares them in the
// database, so on a site whose database compares case-sensitively
// (PostgreSQL) an account whose stored email differs in case from both is
// missed here; its create then fails, as Moodle keeps emails unique
// case-insensitively, and the converger reads again with FindAccounts, which
// compares case-insensitively.
func (c *Client) FindAccountsIn(ctx context.Context, attr connector.FilterAttr, values []string) (map[string][]connector.Account, error) {
	out := map[string][]connector.Account{}
	var us []user
	var err error
	switch attr {
	case connector.ByExternalID:
		var q []string
		for _, v := range values {
			if v != "" {
				q = append(q, v)
			}
		}
		us, err = c.usersByField(ctx, "idnumber", dedupe(q))
	case connector.ByUserName:
		var q []string
		for _, v := range values {
			if n := normUserName(v); n != "" {
				q = append(q, n)
			}
		}
		us, err = c.usersByField(ctx, "username", dedupe(q))
		if isInvalidParameter(err) {
			// One of them is no username Moodle would store, and the call
			// says no more: vouch for none, FindAccounts asks one by one.
			return out, nil
		}
	case connector.ByEmail:
		var q []string
		for _, v := range values {
			if validEmail(v) {
				q = append(q, v, strings.ToLower(v))
			}
		}
		us, err = c.usersByField(ctx, "email", dedupe(q))
	case connector.ByEmployeeNumber:
		if c.fields.EmployeeNumber != "" && len(values) > 0 {
			us, err = c.allUsers(ctx)
		}
	default:
		return nil, invalid("FindAccountsIn", "cannot filter on "+string(attr))
	}
	if err != nil {
		return nil, err
	}
	accs := c.accounts(us)
	for _, v := range values {
		f := connector.AccountFilter{Attr: attr, Value: v}
		found := []connector.Account{}
		for _, a := range accs {
			if f.Matches(a) {
				found = append(found, a)
			}
		}
		out[v] = found
	}
	return out, nil
}

func dedupe(vs []string) []string {
	seen := map[string]bool{}
	out := vs[:0:0]
	for _, v := range vs {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// DeleteAccounts implements connector.BulkDeleter. Moodle deletes a batch all
// or nothing (one transaction; a missing or deleted id fails the whole call),
// so the ids are read first in one call (those gone are ErrNotFound), the rest
// deleted in one call, and, if that fails all the same (a deletion in
// between), one call per id. Moodle has no versions: Deletion.Version is
// ignored.
func (c *Client) DeleteAccounts(ctx context.Context, dels []connector.Deletion) ([]error, error) {
	const op = "DeleteAccounts"
	if n := c.readBatch(); len(dels) > n {
		return nil, invalid(op, "more deletions than MaxBulkDeletes "+strconv.Itoa(n))
	}
	errs := make([]error, len(dels))
	ids := make([]string, len(dels))
	for i, d := range dels {
		ids[i] = d.ID
	}
	have, err := c.GetAccounts(ctx, ids)
	if err != nil {
		return nil, err
	}
	var todo []int
	for i, id := range ids {
		if _, ok := have[id]; !ok {
			errs[i] = notFound(op)
			continue
		}
		todo = append(todo, i)
	}
	if len(todo) == 0 {
		return errs, nil
	}
	fm := &form{}
	for k, i := range todo {
		fm.set(ids[i], "userids", k)
	}
	err = userGone(c.call(ctx, FnDeleteUsers, fm, nil))
	switch {
	case err == nil:
		return errs, nil
	case wholeCall(err):
		return nil, err
	case len(todo) == 1:
		errs[todo[0]] = rename(err, op)
		return errs, nil
	}
	for _, i := range todo {
		errs[i] = c.DeleteAccount(ctx, ids[i])
		if errs[i] != nil && wholeCall(errs[i]) {
			return nil, errs[i]
		}
	}
	return errs, nil
}
