package moodle_test

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/moodle"
	"github.com/hrsync/hrsync/connector/lms/moodle/moodlesim"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
)

func hire(i int) connector.Account {
	return connector.Account{ExternalID: fmt.Sprintf("hr:w-%04d", i), UserName: fmt.Sprintf("person.%d@resort.example", i), Active: true,
		Profile: connector.Profile{Email: fmt.Sprintf("person.%d@resort.example", i), GivenName: "Given", FamilyName: "Family",
			EmployeeNumber: fmt.Sprintf("E%05d", i), OrgUnit: "Spa", JobTitle: "Seasonal associate", Locale: "de-AT"}}
}

// callsOf returns the simulator's call count of each function, by name.
func callsOf(sim *moodlesim.Sim) map[string]int {
	out := map[string]int{}
	for _, fn := range []string{moodle.FnCreateUsers, moodle.FnUpdateUsers, moodle.FnDeleteUsers, moodle.FnGetUsersByField,
		moodle.FnGetUsers, moodle.FnUsersCourses, moodle.FnCourseCompletion} {
		if n := sim.Calls(fn); n > 0 {
			out[fn] = n
		}
	}
	return out
}

func wantCalls(t *testing.T, sim *moodlesim.Sim, want map[string]int) {
	t.Helper()
	got := callsOf(sim)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("calls %v, want %v", got, want)
	}
}

// TestOnboardingBatches: a batch of hires is looked up by all three matching
// rules and created in a handful of calls, however many hires it holds.
func TestOnboardingBatches(t *testing.T) {
	t.Parallel()
	b := setup(t, moodlesim.Config{Token: testToken})
	ctx := t.Context()
	n := b.client.MaxCreateBatch(ctx)
	if n < 40 {
		t.Fatalf("MaxCreateBatch %d: want at least 40 with the default fields", n)
	}
	var accs []connector.Account
	var exts, nums, emails []string
	for i := range n {
		a := hire(i)
		a.Active = i%5 != 0 // some are created inactive (future-dated)
		accs = append(accs, a)
		exts, nums, emails = append(exts, a.ExternalID), append(nums, a.Profile.EmployeeNumber), append(emails, a.Profile.Email)
	}
	for attr, vals := range map[connector.FilterAttr][]string{connector.ByExternalID: exts, connector.ByEmployeeNumber: nums, connector.ByEmail: emails} {
		got, err := b.client.FindAccountsIn(ctx, attr, vals)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(vals) {
			t.Errorf("FindAccountsIn(%s): %d values vouched, want all %d", attr, len(got), len(vals))
		}
	}
	rs, err := b.client.CreateAccounts(ctx, accs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rs {
		if r.Err != nil || r.Account.ID == "" || r.Account.Active != accs[i].Active || r.Account.Profile != accs[i].Profile {
			t.Errorf("%d: %+v, %v", i, r.Account, r.Err)
		}
	}
	wantCalls(t, b.sim, map[string]int{
		moodle.FnGetUsersByField: 3, // externalIds, emails, read back
		moodle.FnGetUsers:        1, // employee numbers: every user
		moodle.FnCreateUsers:     1,
		moodle.FnUpdateUsers:     1, // suspend the inactive ones
	})
	if b.sb.Count() != n {
		t.Errorf("%d accounts, want %d", b.sb.Count(), n)
	}
}

// TestCreateAccountsAllOrNothing: Moodle refuses a whole batch for one taken
// username or email; each account still gets its own result, and the others
// are created exactly once.
func TestCreateAccountsAllOrNothing(t *testing.T) {
	t.Parallel()
	for _, debug := range []bool{false, true} {
		t.Run(fmt.Sprintf("Debug=%v", debug), func(t *testing.T) {
			t.Parallel()
			b := setup(t, moodlesim.Config{Token: testToken, Debug: debug})
			ctx := t.Context()
			taken, err := b.client.CreateAccount(ctx, hire(100))
			if err != nil {
				t.Fatal(err)
			}
			other := hire(101)
			if _, err := b.client.CreateAccount(ctx, other); err != nil {
				t.Fatal(err)
			}
			before := b.sim.Calls("")
			accs := []connector.Account{hire(1), hire(2), hire(3), hire(4), hire(5)}
			accs[1].UserName = strings.ToUpper(taken.UserName) // taken, in other case
			accs[3].Profile.Email = strings.ToUpper(other.Profile.Email)
			rs, err := b.client.CreateAccounts(ctx, accs)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range rs {
				switch i {
				case 1, 3:
					if !errors.Is(r.Err, connector.ErrConflict) {
						t.Errorf("%d: %v, want a conflict", i, r.Err)
					}
				default:
					if r.Err != nil || r.Account.ID == "" {
						t.Errorf("%d: %+v, %v", i, r.Account, r.Err)
					}
				}
			}
			creates := 0
			for _, op := range b.sb.Ops() {
				if op.Kind == sandbox.OpCreate {
					creates++
				}
			}
			if creates != 2+3 {
				t.Errorf("%d creates, want 5 (2 before, 3 of the batch)", creates)
			}
			if calls := b.sim.Calls("") - before; calls > 3+len(accs)+2 {
				t.Errorf("%d calls for a batch of %d", calls, len(accs))
			}
		})
	}
}

// TestCreateAccountsRefusedLocally: what Moodle would refuse for the whole
// batch is refused for its account alone, before any call.
func TestCreateAccountsRefusedLocally(t *testing.T) {
	t.Parallel()
	b := setup(t, moodlesim.Config{Token: testToken})
	accs := []connector.Account{hire(1), hire(2), hire(3), hire(4), hire(5)}
	accs[0].UserName = " "
	accs[1].Profile.Email = "not-an-address"
	accs[2].Profile.GivenName = "<b>Bold</b>"
	accs[4].UserName = strings.ToUpper(accs[3].UserName)
	rs, err := b.client.CreateAccounts(t.Context(), accs)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []error{connector.ErrNotFound, connector.ErrNotFound, connector.ErrNotFound, nil, connector.ErrConflict} {
		var le *connector.LMSError
		switch {
		case want == nil && rs[i].Err != nil:
			t.Errorf("%d: %v", i, rs[i].Err)
		case want == connector.ErrNotFound && (!errors.As(rs[i].Err, &le) || le.Kind != connector.KindInvalid):
			t.Errorf("%d: %v, want invalid", i, rs[i].Err)
		case want == connector.ErrConflict && !errors.Is(rs[i].Err, connector.ErrConflict):
			t.Errorf("%d: %v, want a conflict", i, rs[i].Err)
		}
	}
	wantCalls(t, b.sim, map[string]int{moodle.FnCreateUsers: 1, moodle.FnGetUsersByField: 1})
}

func TestUserNamesLowerCase(t *testing.T) {
	t.Parallel()
	b := setup(t, moodlesim.Config{Token: testToken})
	ctx := t.Context()
	a := hire(1)
	a.UserName = "Anna.Berger@Resort.Example"
	got, err := b.client.CreateAccount(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if got.UserName != "anna.berger@resort.example" {
		t.Errorf("userName %q, want it lower-case", got.UserName)
	}
	found, err := b.client.FindAccounts(ctx, connector.AccountFilter{Attr: connector.ByUserName, Value: "ANNA.berger@resort.example"})
	if err != nil || len(found) != 1 || found[0].ID != got.ID {
		t.Errorf("FindAccounts in other case: %+v, %v", found, err)
	}
	in, err := b.client.FindAccountsIn(ctx, connector.ByUserName, []string{"ANNA.BERGER@RESORT.EXAMPLE", "nobody"})
	if err != nil || len(in["ANNA.BERGER@RESORT.EXAMPLE"]) != 1 || in["nobody"] == nil || len(in["nobody"]) != 0 {
		t.Errorf("FindAccountsIn: %+v, %v", in, err)
	}
}

// TestStrictUsernames: on a site without extended username characters a
// userName with an apostrophe cannot exist: creating it is invalid, looking it
// up finds nobody (Moodle refuses the lookup call for it).
func TestStrictUsernames(t *testing.T) {
	t.Parallel()
	b := setup(t, moodlesim.Config{Token: testToken})
	ctx := t.Context()
	a := hire(1)
	a.UserName = "o'brien@resort.example"
	_, err := b.client.CreateAccount(ctx, a)
	var le *connector.LMSError
	if !errors.As(err, &le) || le.Kind != connector.KindInvalid {
		t.Errorf("CreateAccount: %v, want invalid", err)
	}
	found, err := b.client.FindAccounts(ctx, connector.AccountFilter{Attr: connector.ByUserName, Value: a.UserName})
	if err != nil || len(found) != 0 {
		t.Errorf("FindAccounts: %+v, %v", found, err)
	}
	in, err := b.client.FindAccountsIn(ctx, connector.ByUserName, []string{a.UserName, "x@resort.example"})
	if err != nil || len(in) != 0 {
		t.Errorf("FindAccountsIn: %+v, %v; want nothing vouched", in, err)
	}
}

func TestWrongToken(t *testing.T) {
	t.Parallel()
	b := setup(t, moodlesim.Config{Token: testToken})
	c, err := moodle.New(b.url, "wrong")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.GetAccount(t.Context(), "3")
	var le *connector.LMSError
	if !errors.As(err, &le) || le.Kind != connector.KindAuth || le.Code != "invalidtoken" {
		t.Errorf("GetAccount with a wrong token: %v, want auth (invalidtoken)", err)
	}
}

// TestSetActiveMany: one update call and one read for the whole list; a
// missing and a deleted user are not found, the others keep their training.
func TestSetActiveMany(t *testing.T) {
	t.Parallel()
	for _, legacy := range []bool{false, true} {
		t.Run(fmt.Sprintf("Legacy=%v", legacy), func(t *testing.T) {
			t.Parallel()
			b := setup(t, moodlesim.Config{Token: testToken, LegacyUpdate: legacy})
			ctx := t.Context()
			var accs []connector.Account
			for i := range 30 {
				accs = append(accs, hire(i))
			}
			rs, err := b.client.CreateAccounts(ctx, accs)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, r := range rs {
				ids = append(ids, r.Account.ID)
			}
			first := ids[0]
			n, _ := strconv.ParseInt(first, 10, 64)
			if err := b.sb.CompleteCourse(b.sim.SandboxID(n), "safety-101", time.Time{}); err != nil {
				t.Fatal(err)
			}
			if err := b.client.DeleteAccount(ctx, ids[1]); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, "999999", "not-a-number")
			before := callsOf(b.sim)
			out, err := b.client.SetActiveMany(ctx, ids, false)
			if err != nil {
				t.Fatal(err)
			}
			after := callsOf(b.sim)
			if after[moodle.FnUpdateUsers]-before[moodle.FnUpdateUsers] != 1 || after[moodle.FnGetUsersByField]-before[moodle.FnGetUsersByField] != 1 {
				t.Errorf("calls before %v, after %v: want one update and one read", before, after)
			}
			for i, r := range out {
				gone := i == 1 || i >= 30
				switch {
				case gone && !errors.Is(r.Err, connector.ErrNotFound):
					t.Errorf("%s: %v, want not found", ids[i], r.Err)
				case !gone && (r.Err != nil || r.Account.Active):
					t.Errorf("%s: %+v, %v", ids[i], r.Account, r.Err)
				}
			}
			tr, err := b.sb.Training(b.sim.SandboxID(n))
			if err != nil || len(tr.Completions) != 1 {
				t.Errorf("training after suspension: %+v, %v", tr, err)
			}
		})
	}
}

// TestUpdateAccountsResults: each account of a batch update gets its own
// result, on a site with per-user warnings and on an older one.
func TestUpdateAccountsResults(t *testing.T) {
	t.Parallel()
	for _, legacy := range []bool{false, true} {
		t.Run(fmt.Sprintf("Legacy=%v", legacy), func(t *testing.T) {
			t.Parallel()
			b := setup(t, moodlesim.Config{Token: testToken, LegacyUpdate: legacy})
			ctx := t.Context()
			rs, err := b.client.CreateAccounts(ctx, []connector.Account{hire(1), hire(2), hire(3), hire(4)})
			if err != nil {
				t.Fatal(err)
			}
			a := make([]connector.Account, 4)
			for i, r := range rs {
				a[i] = r.Account
			}
			if err := b.client.DeleteAccount(ctx, a[3].ID); err != nil {
				t.Fatal(err)
			}
			upd := []connector.Account{a[0], a[1], a[2], a[3]}
			upd[0].Profile.JobTitle = "Head of spa"
			upd[1].Profile.Email = strings.ToUpper(a[2].Profile.Email) // taken
			upd[2].UserName = a[0].UserName                            // taken
			out, err := b.client.UpdateAccounts(ctx, upd)
			if err != nil {
				t.Fatal(err)
			}
			if out[0].Err != nil || out[0].Account.Profile.JobTitle != "Head of spa" {
				t.Errorf("0: %+v, %v", out[0].Account, out[0].Err)
			}
			for i, want := range []error{nil, connector.ErrConflict, connector.ErrConflict, connector.ErrNotFound} {
				if want != nil && !errors.Is(out[i].Err, want) {
					t.Errorf("%d: %v, want %v", i, out[i].Err, want)
				}
			}
			if got, _ := b.client.GetAccount(ctx, a[1].ID); got.Profile.Email != a[1].Profile.Email {
				t.Errorf("the refused email was written: %q", got.Profile.Email)
			}
		})
	}
}

// TestDeleteAccountsBulk: Moodle fails a whole deletion for one missing id, so
// the ids are read first: one read and one delete call.
func TestDeleteAccountsBulk(t *testing.T) {
	t.Parallel()
	b := setup(t, moodlesim.Config{Token: testToken})
	ctx := t.Context()
	rs, err := b.client.CreateAccounts(ctx, []connector.Account{hire(1), hire(2), hire(3)})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.client.DeleteAccount(ctx, rs[1].Account.ID); err != nil {
		t.Fatal(err)
	}
	before := b.sim.Calls("")
	errs, err := b.client.DeleteAccounts(ctx, []connector.Deletion{{ID: rs[0].Account.ID}, {ID: rs[1].Account.ID}, {ID: rs[2].Account.ID}})
	if err != nil {
		t.Fatal(err)
	}
	if errs[0] != nil || !errors.Is(errs[1], connector.ErrNotFound) || errs[2] != nil {
		t.Errorf("errors %v", errs)
	}
	if calls := b.sim.Calls("") - before; calls != 2 {
		t.Errorf("%d calls, want 2", calls)
	}
	if b.sb.Count() != 0 {
		t.Errorf("%d accounts left", b.sb.Count())
	}
	// Deleted users stay deleted: a second deletion and an update say so.
	if err := b.client.DeleteAccount(ctx, rs[0].Account.ID); !errors.Is(err, connector.ErrNotFound) {
		t.Errorf("second DeleteAccount: %v", err)
	}
	if _, err := b.client.SetActive(ctx, rs[0].Account.ID, true); !errors.Is(err, connector.ErrNotFound) {
		t.Errorf("SetActive of a deleted user: %v", err)
	}
}

// TestListAccountsOneCallAPass: Moodle cannot page users; a whole pass of
// ListAccounts is one call.
func TestListAccountsOneCallAPass(t *testing.T) {
	t.Parallel()
	b := setup(t, moodlesim.Config{Token: testToken})
	ctx := t.Context()
	var accs []connector.Account
	for i := range 25 {
		accs = append(accs, hire(i))
	}
	if _, err := b.client.CreateAccounts(ctx, accs); err != nil {
		t.Fatal(err)
	}
	// The site's guest user is no one's account.
	if _, err := b.sb.CreateAccount(ctx, connector.Account{UserName: "guest", Active: true,
		Profile: connector.Profile{Email: "root@localhost.example", GivenName: "Guest user", FamilyName: " "}}); err != nil {
		t.Fatal(err)
	}
	before := b.sim.Calls(moodle.FnGetUsers)
	seen := 0
	for start := 1; ; {
		p, err := b.client.ListAccounts(ctx, start, 10)
		if err != nil {
			t.Fatal(err)
		}
		seen += len(p.Accounts)
		if len(p.Accounts) == 0 || start+len(p.Accounts) > p.TotalResults {
			break
		}
		start += len(p.Accounts)
	}
	if seen != 25 || b.sim.Calls(moodle.FnGetUsers)-before != 1 {
		t.Errorf("saw %d accounts in %d calls", seen, b.sim.Calls(moodle.FnGetUsers)-before)
	}
}

// TestBatchesFitMaxInputVars: the largest batch a Client makes stays within
// PHP's max_input_vars, so the site reads every user of it.
func TestBatchesFitMaxInputVars(t *testing.T) {
	t.Parallel()
	for _, vars := range []int{1000, 300} {
		b := setup(t, moodlesim.Config{Token: testToken, MaxInputVars: vars}, moodle.WithMaxInputVars(vars))
		ctx := t.Context()
		var accs []connector.Account
		for i := range b.client.MaxCreateBatch(ctx) {
			accs = append(accs, hire(i))
		}
		rs, err := b.client.CreateAccounts(ctx, accs)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for i, r := range rs {
			if r.Err != nil || r.Account.Profile != accs[i].Profile {
				t.Fatalf("vars %d: %d: %+v, %v", vars, i, r.Account, r.Err)
			}
			ids = append(ids, r.Account.ID)
		}
		for len(ids) < b.client.MaxSetActiveBatch(ctx) {
			ids = append(ids, "999999")
		}
		out, err := b.client.SetActiveMany(ctx, ids, false)
		if err != nil || out[0].Err != nil || out[0].Account.Active {
			t.Fatalf("vars %d: SetActiveMany: %v", vars, err)
		}
	}
}
