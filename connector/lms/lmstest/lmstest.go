// Package lmstest is the conformance suite of the connector.LMS port. Every
// adapter runs it, and so does the sandbox LMS, so that the fake and the real
// client keep each other honest.
//
// The suite makes its userNames and externalIds unique per run and deletes the
// accounts it created, so it can also run against a shared vendor sandbox.
package lmstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hrsync/hrsync/connector"
)

// Features says what the LMS under test supports beyond the port's minimum.
type Features struct {
	// ETags: every account has a Version that changes on each mutation, and an
	// UpdateAccount with a stale Version fails with connector.ErrPrecondition.
	ETags bool
	// DuplicateExternalIDs: the LMS lets two accounts share an externalId
	// (RFC 7643 gives externalId uniqueness "none"). CreateConflictExternalID is
	// skipped, and FindDuplicateExternalID checks that a lookup returns both
	// accounts, so that the converger sees two candidates and makes a review
	// item instead of guessing.
	DuplicateExternalIDs bool
	// NoActivity: the LMS does not report activity (plain SCIM). ActivityOf must
	// then say so (Activity.Known false), never "no activity".
	NoActivity bool
	// Train, when set, records a login for the account id in the LMS behind lms
	// (say, the sandbox's training), so that ActivityOf checks that activity
	// shows. It fails t itself.
	Train func(t *testing.T, lms connector.LMS, id string)
	// LostAnswers: the LMS sits behind faults that apply a request and lose its
	// answer, and behind retries (guard over faulty). A bulk deletion of an
	// account that was already gone may then be reported done (nil), as the
	// guard documents, instead of connector.ErrNotFound.
	LostAnswers bool
	// NamesWithoutTags: the LMS refuses HTML tags in given and family names
	// (Moodle declares them PARAM_NOTAGS and fails the call), so OddCharacters
	// gives a name with quotes and an entity but no tag.
	NamesWithoutTags bool
}

// suite holds one subtest's LMS and features, and makes names unique to it.
type suite struct {
	t   *testing.T
	lms connector.LMS
	f   Features
	tag string
}

func newSuite(t *testing.T, f Features, newLMS func(t *testing.T) connector.LMS) *suite {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return &suite{t: t, lms: newLMS(t), f: f, tag: hex.EncodeToString(b)}
}

// name returns a value unique to this subtest, e.g. "lmstest-1a2b3c4d-alice".
func (s *suite) name(base string) string { return "lmstest-" + s.tag + "-" + base }

// account returns a full account for person base; every profile field is set.
func (s *suite) account(base string) connector.Account {
	return connector.Account{
		ExternalID: "hr:" + s.name(base),
		UserName:   s.name(base) + "@example.com",
		Active:     true,
		Profile: connector.Profile{
			Email:          s.name(base) + "@example.com",
			GivenName:      "Given " + base,
			FamilyName:     "Family " + base,
			EmployeeNumber: "E-" + s.tag + "-" + base,
			OrgUnit:        "Org " + base,
			JobTitle:       "Title " + base,
			ManagerID:      "M-" + s.tag + "-" + base,
			Locale:         "en-GB",
		},
	}
}

// create creates a and deletes it when the test ends.
func (s *suite) create(a connector.Account) connector.Account {
	s.t.Helper()
	got, err := s.lms.CreateAccount(s.t.Context(), a)
	if err != nil {
		s.t.Fatalf("CreateAccount(%s): %v", a.UserName, err)
	}
	if got.ID == "" {
		s.t.Fatalf("CreateAccount(%s): empty ID", a.UserName)
	}
	s.t.Cleanup(func() { _ = s.lms.DeleteAccount(context.Background(), got.ID) })
	return got
}

func (s *suite) get(id string) connector.Account {
	s.t.Helper()
	a, err := s.lms.GetAccount(s.t.Context(), id)
	if err != nil {
		s.t.Fatalf("GetAccount(%q): %v", id, err)
	}
	return a
}

func (s *suite) find(attr connector.FilterAttr, value string) []connector.Account {
	s.t.Helper()
	got, err := s.lms.FindAccounts(s.t.Context(), connector.AccountFilter{Attr: attr, Value: value})
	if err != nil {
		s.t.Fatalf("FindAccounts(%s eq %q): %v", attr, value, err)
	}
	return got
}

// missingID returns an id the adapter made that no longer exists.
func (s *suite) missingID() string {
	s.t.Helper()
	a := s.create(s.account("gone"))
	if err := s.lms.DeleteAccount(s.t.Context(), a.ID); err != nil {
		s.t.Fatalf("DeleteAccount: %v", err)
	}
	return a.ID
}

// sameAccount fails unless got has want's externalId, userName (case-insensitively),
// active and profile.
func sameAccount(t *testing.T, got, want connector.Account) {
	t.Helper()
	if got.ExternalID != want.ExternalID {
		t.Errorf("ExternalID = %q, want %q", got.ExternalID, want.ExternalID)
	}
	if !strings.EqualFold(got.UserName, want.UserName) {
		t.Errorf("UserName = %q, want %q", got.UserName, want.UserName)
	}
	if got.Active != want.Active {
		t.Errorf("Active = %v, want %v", got.Active, want.Active)
	}
	if got.Profile != want.Profile {
		t.Errorf("Profile =\n\t%+v\nwant\n\t%+v", got.Profile, want.Profile)
	}
}

func ids(as []connector.Account) []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		out = append(out, a.ID)
	}
	return out
}

func wantIDs(t *testing.T, what string, got []connector.Account, want ...string) {
	t.Helper()
	if g := ids(got); !slices.Equal(g, want) {
		t.Errorf("%s: ids %q, want %q", what, g, want)
	}
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: error %v, want one matching %q", what, err, target)
	}
}

// subTest is one named case of the suite; run gets a suite of its own.
type subTest struct {
	name string
	run  func(t *testing.T, s *suite)
}

// runTests runs each case as a parallel subtest named after it, each with a
// suite (and an LMS from newLMS) of its own.
func runTests(t *testing.T, f Features, newLMS func(t *testing.T) connector.LMS, tests ...[]subTest) {
	t.Helper()
	for _, tc := range slices.Concat(tests...) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newSuite(t, f, newLMS))
		})
	}
}

// Run checks that the LMS returned by newLMS honours the connector.LMS contract.
// newLMS is called once per subtest; it may return a fresh LMS each time or the
// same shared one.
func Run(t *testing.T, f Features, newLMS func(t *testing.T) connector.LMS) {
	t.Helper()
	runTests(t, f, newLMS, bulkTests, trainingTests, coreTests)
}

// RunConcurrency checks the LMS under concurrent calls. It is separate from Run
// because some backends need other settings for it.
func RunConcurrency(t *testing.T, newLMS func(t *testing.T) connector.LMS) {
	t.Helper()
	runTests(t, Features{}, newLMS, concurrencyTests)
}

// concurrentCalls is how many calls the concurrency cases make at once.
const concurrentCalls = 20

// coreTests check the methods every adapter has: create, get, find, list,
// update, activate and delete.
var coreTests = []subTest{
	{"CreateGetRoundTrip", testCreateGetRoundTrip},
	{"CreateInactive", testCreateInactive},
	{"CreateMinimal", testCreateMinimal},
	{"CreateConflictUserName", testCreateConflictUserName},
	{"CreateConflictExternalID", testCreateConflictExternalID},
	{"FindByExternalID", testFindByExternalID},
	{"FindDuplicateExternalID", testFindDuplicateExternalID},
	{"FindByUserName", testFindByUserName},
	{"FindByEmail", testFindByEmail},
	{"FindByEmployeeNumber", testFindByEmployeeNumber},
	{"FindSeveral", testFindSeveral},
	{"FindNone", testFindNone},
	{"SetActiveKeepsProfile", testSetActiveKeepsProfile},
	{"SetActiveIsIdempotent", testSetActiveIsIdempotent},
	{"UpdateAccount", testUpdateAccount},
	{"UpdateAccountKeepsActive", testUpdateAccountKeepsActive},
	{"UpdateAccountActive", testUpdateAccountActive},
	{"UpdateAccountConflict", testUpdateAccountConflict},
	{"UpdateAccountStaleVersion", testUpdateAccountStaleVersion},
	{"MissingAccount", testMissingAccount},
	{"DeleteAccount", testDeleteAccount},
	{"ListAccountsPaging", testListAccountsPaging},
	{"ListAccountsBeyondEnd", testListAccountsBeyondEnd},
	{"OddCharacters", testOddCharacters},
}

func testCreateGetRoundTrip(t *testing.T, s *suite) {
	want := s.account("alice")
	created := s.create(want)
	sameAccount(t, created, want)
	got := s.get(created.ID)
	sameAccount(t, got, want)
	if got.ID != created.ID {
		t.Errorf("GetAccount ID = %q, want %q", got.ID, created.ID)
	}
	if s.f.ETags && (created.Version == "" || got.Version != created.Version) {
		t.Errorf("Version: created %q, got %q; want equal and not empty", created.Version, got.Version)
	}
}

func testCreateInactive(t *testing.T, s *suite) {
	want := s.account("bob")
	want.Active = false
	sameAccount(t, s.get(s.create(want).ID), want)
}

func testCreateMinimal(t *testing.T, s *suite) {
	want := connector.Account{UserName: s.name("min"), Active: true}
	sameAccount(t, s.get(s.create(want).ID), want)
}

func testCreateConflictUserName(t *testing.T, s *suite) {
	a := s.create(s.account("alice"))
	dup := s.account("other")
	dup.UserName = strings.ToUpper(a.UserName)
	_, err := s.lms.CreateAccount(t.Context(), dup)
	wantErr(t, "CreateAccount with a taken userName in other case", err, connector.ErrConflict)
}

func testCreateConflictExternalID(t *testing.T, s *suite) {
	if s.f.DuplicateExternalIDs {
		t.Skip("Features.DuplicateExternalIDs: the LMS lets accounts share an externalId")
	}
	a := s.create(s.account("alice"))
	dup := s.account("other")
	dup.ExternalID = a.ExternalID
	_, err := s.lms.CreateAccount(t.Context(), dup)
	wantErr(t, "CreateAccount with a taken externalId", err, connector.ErrConflict)
}

func testFindByExternalID(t *testing.T, s *suite) {
	a := s.create(s.account("alice"))
	s.create(s.account("bob"))
	wantIDs(t, "exact", s.find(connector.ByExternalID, a.ExternalID), a.ID)
	// externalId is caseExact (RFC 7643 §3.1).
	wantIDs(t, "other case", s.find(connector.ByExternalID, strings.ToUpper(a.ExternalID)))
}

func testFindDuplicateExternalID(t *testing.T, s *suite) {
	if !s.f.DuplicateExternalIDs {
		t.Skip("no Features.DuplicateExternalIDs: externalId is unique in the LMS")
	}
	a1, a2 := s.account("alice"), s.account("alice-again")
	a2.ExternalID = a1.ExternalID
	c1, c2 := s.create(a1), s.create(a2)
	got := ids(s.find(connector.ByExternalID, a1.ExternalID))
	slices.Sort(got)
	want := []string{c1.ID, c2.ID}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("ids %q, want both %q: the adapter must not pick one", got, want)
	}
}

func testFindByUserName(t *testing.T, s *suite) {
	a := s.create(s.account("alice"))
	s.create(s.account("bob"))
	wantIDs(t, "exact", s.find(connector.ByUserName, a.UserName), a.ID)
	wantIDs(t, "other case", s.find(connector.ByUserName, strings.ToUpper(a.UserName)), a.ID)
}

func testFindByEmail(t *testing.T, s *suite) {
	want := s.account("alice")
	want.UserName = s.name("alice-login") // the email is not the userName
	a := s.create(want)
	s.create(s.account("bob"))
	wantIDs(t, "exact", s.find(connector.ByEmail, a.Profile.Email), a.ID)
	wantIDs(t, "other case", s.find(connector.ByEmail, strings.ToUpper(a.Profile.Email)), a.ID)
}

func testFindByEmployeeNumber(t *testing.T, s *suite) {
	a := s.create(s.account("alice"))
	s.create(s.account("bob"))
	wantIDs(t, "exact", s.find(connector.ByEmployeeNumber, a.Profile.EmployeeNumber), a.ID)
}

func testFindSeveral(t *testing.T, s *suite) {
	a1, a2 := s.account("alice"), s.account("bob")
	a2.Profile.EmployeeNumber = a1.Profile.EmployeeNumber
	c1, c2 := s.create(a1), s.create(a2)
	got := ids(s.find(connector.ByEmployeeNumber, a1.Profile.EmployeeNumber))
	slices.Sort(got)
	want := []string{c1.ID, c2.ID}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("ids %q, want %q", got, want)
	}
}

func testFindNone(t *testing.T, s *suite) {
	s.create(s.account("alice"))
	for _, attr := range []connector.FilterAttr{connector.ByExternalID, connector.ByUserName, connector.ByEmail, connector.ByEmployeeNumber} {
		got, err := s.lms.FindAccounts(t.Context(), connector.AccountFilter{Attr: attr, Value: s.name("nobody")})
		if err != nil || len(got) != 0 {
			t.Errorf("FindAccounts(%s): %d accounts, error %v; want none and no error", attr, len(got), err)
		}
	}
}

func testSetActiveKeepsProfile(t *testing.T, s *suite) {
	want := s.account("alice")
	a := s.create(want)
	off, err := s.lms.SetActive(t.Context(), a.ID, false)
	if err != nil {
		t.Fatalf("SetActive(false): %v", err)
	}
	want.Active = false
	sameAccount(t, off, want)
	sameAccount(t, s.get(a.ID), want)
	on, err := s.lms.SetActive(t.Context(), a.ID, true)
	if err != nil {
		t.Fatalf("SetActive(true): %v", err)
	}
	want.Active = true
	sameAccount(t, on, want)
	sameAccount(t, s.get(a.ID), want)
	if s.f.ETags && (off.Version == a.Version || on.Version == off.Version) {
		t.Errorf("Version did not change: %q, %q, %q", a.Version, off.Version, on.Version)
	}
}

func testSetActiveIsIdempotent(t *testing.T, s *suite) {
	a := s.create(s.account("alice"))
	for range 2 {
		got, err := s.lms.SetActive(t.Context(), a.ID, true)
		if err != nil || !got.Active {
			t.Fatalf("SetActive(true) on an active account: active %v, error %v", got.Active, err)
		}
	}
}

func testUpdateAccount(t *testing.T, s *suite) {
	a := s.create(s.account("alice"))
	want := s.account("alice2")
	want.ID, want.Version = a.ID, a.Version
	want.Profile.ManagerID = "" // cleared
	got, err := s.lms.UpdateAccount(t.Context(), want)
	if err != nil {
		t.Fatalf("UpdateAccount: %v", err)
	}
	sameAccount(t, got, want)
	sameAccount(t, s.get(a.ID), want)
	if s.f.ETags && (got.Version == "" || got.Version == a.Version) {
		t.Errorf("Version after update %q, before %q; want a new one", got.Version, a.Version)
	}
	wantIDs(t, "find by new externalId", s.find(connector.ByExternalID, want.ExternalID), a.ID)
	wantIDs(t, "find by old externalId", s.find(connector.ByExternalID, a.ExternalID))
}

func testUpdateAccountKeepsActive(t *testing.T, s *suite) {
	a := s.create(s.account("alice"))
	off, err := s.lms.SetActive(t.Context(), a.ID, false)
	if err != nil {
		t.Fatalf("SetActive: %v", err)
	}
	upd := off
	upd.Active = true // UpdateAccount must not touch active
	upd.Profile.JobTitle = "Rehired"
	got, err := s.lms.UpdateAccount(t.Context(), upd)
	if err != nil {
		t.Fatalf("UpdateAccount: %v", err)
	}
	if got.Active || s.get(a.ID).Active {
		t.Errorf("UpdateAccount activated the account")
	}
}

// testUpdateAccountActive: where the adapter updates an account and sets its
// state in one call (connector.ActiveUpdater), the call does both, one account
// at a time and many at once; elsewhere it is skipped.
func testUpdateAccountActive(t *testing.T, s *suite) {
	au, ok := s.lms.(connector.ActiveUpdater)
	if !ok || !au.UpdatesActive(t.Context()) {
		t.Skip("the adapter does not update and set the state in one call")
	}
	a := s.create(s.account("alice"))
	off, err := s.lms.SetActive(t.Context(), a.ID, false)
	if err != nil {
		t.Fatalf("SetActive: %v", err)
	}
	want := s.account("alice2") // re-keyed, active again: a rehire under a new id
	want.ID, want.Version = a.ID, off.Version
	got, err := au.UpdateAccountActive(t.Context(), want)
	if err != nil {
		t.Fatalf("UpdateAccountActive: %v", err)
	}
	sameAccount(t, got, want)
	sameAccount(t, s.get(a.ID), want)
	wantIDs(t, "find by new externalId", s.find(connector.ByExternalID, want.ExternalID), a.ID)

	b := s.create(s.account("bob"))
	ups := []connector.Account{s.account("alice3"), s.account("bob2")}
	ups[0].ID, ups[0].Active = a.ID, false
	ups[1].ID, ups[1].Active = b.ID, false
	if up, ok := s.lms.(connector.AccountUpdater); ok && up.MaxUpdateBatch(t.Context()) >= 2 {
		res, err := au.UpdateAccountsActive(t.Context(), ups)
		if err != nil || len(res) != 2 {
			t.Fatalf("UpdateAccountsActive: %v, %d results", err, len(res))
		}
		for i, r := range res {
			if r.Err != nil {
				t.Fatalf("UpdateAccountsActive item %d: %v", i, r.Err)
			}
			sameAccount(t, s.get(ups[i].ID), ups[i])
		}
	}
}

func testUpdateAccountConflict(t *testing.T, s *suite) {
	a := s.create(s.account("alice"))
	b := s.create(s.account("bob"))
	upd := b
	upd.UserName = strings.ToUpper(a.UserName)
	_, err := s.lms.UpdateAccount(t.Context(), upd)
	wantErr(t, "UpdateAccount to a taken userName", err, connector.ErrConflict)
	if !s.f.DuplicateExternalIDs {
		upd = b
		upd.ExternalID = a.ExternalID
		_, err = s.lms.UpdateAccount(t.Context(), upd)
		wantErr(t, "UpdateAccount to a taken externalId", err, connector.ErrConflict)
	}
	sameAccount(t, s.get(b.ID), b)
}

func testUpdateAccountStaleVersion(t *testing.T, s *suite) {
	if !s.f.ETags {
		t.Skip("no Features.ETags: the LMS has no ETags")
	}
	a := s.create(s.account("alice"))
	if _, err := s.lms.SetActive(t.Context(), a.ID, false); err != nil {
		t.Fatalf("SetActive: %v", err)
	}
	stale := a
	stale.Profile.JobTitle = "Stale"
	_, err := s.lms.UpdateAccount(t.Context(), stale)
	wantErr(t, "UpdateAccount with a stale Version", err, connector.ErrPrecondition)
	if got := s.get(a.ID); got.Profile.JobTitle == "Stale" {
		t.Errorf("the stale update was applied")
	}
	fresh := s.get(a.ID)
	fresh.Profile.JobTitle = "Fresh"
	if _, err := s.lms.UpdateAccount(t.Context(), fresh); err != nil {
		t.Errorf("UpdateAccount with the current Version: %v", err)
	}
}

func testMissingAccount(t *testing.T, s *suite) {
	for _, id := range []string{s.missingID(), s.name("no-such-id")} {
		_, err := s.lms.GetAccount(t.Context(), id)
		wantErr(t, "GetAccount", err, connector.ErrNotFound)
		_, err = s.lms.SetActive(t.Context(), id, false)
		wantErr(t, "SetActive", err, connector.ErrNotFound)
		upd := s.account("ghost")
		upd.ID = id
		_, err = s.lms.UpdateAccount(t.Context(), upd)
		wantErr(t, "UpdateAccount", err, connector.ErrNotFound)
		err = s.lms.DeleteAccount(t.Context(), id)
		wantErr(t, "DeleteAccount", err, connector.ErrNotFound)
	}
}

func testDeleteAccount(t *testing.T, s *suite) {
	a := s.create(s.account("alice"))
	b := s.create(s.account("bob"))
	if err := s.lms.DeleteAccount(t.Context(), a.ID); err != nil {
		t.Fatalf("DeleteAccount: %v", err)
	}
	_, err := s.lms.GetAccount(t.Context(), a.ID)
	wantErr(t, "GetAccount after delete", err, connector.ErrNotFound)
	wantIDs(t, "find after delete", s.find(connector.ByExternalID, a.ExternalID))
	wantErr(t, "second DeleteAccount", s.lms.DeleteAccount(t.Context(), a.ID), connector.ErrNotFound)
	sameAccount(t, s.get(b.ID), b)
	// The userName and externalId are free again.
	s.create(s.account("alice"))
}

func testListAccountsPaging(t *testing.T, s *suite) {
	var mine []string
	for i := range 25 {
		mine = append(mine, s.create(s.account(fmt.Sprintf("p%02d", i))).ID)
	}
	// Pages advance by what each one held: the port allows short pages.
	pass := func() []string {
		var seen []string
		for start, pages := 1, 0; ; pages++ {
			if pages > 10000 {
				t.Fatalf("ListAccounts: more than 10000 pages")
			}
			page, err := s.lms.ListAccounts(t.Context(), start, 10)
			if err != nil {
				t.Fatalf("ListAccounts(%d, 10): %v", start, err)
			}
			if len(page.Accounts) > 10 {
				t.Fatalf("ListAccounts(%d, 10): %d accounts", start, len(page.Accounts))
			}
			if page.TotalResults < len(mine) {
				t.Fatalf("ListAccounts: TotalResults %d < %d", page.TotalResults, len(mine))
			}
			for _, a := range page.Accounts {
				if slices.Contains(mine, a.ID) {
					seen = append(seen, a.ID)
				}
			}
			if len(page.Accounts) == 0 || start+len(page.Accounts) > page.TotalResults {
				return seen
			}
			start += len(page.Accounts)
		}
	}
	first := pass()
	got := slices.Clone(first)
	slices.Sort(got)
	want := slices.Clone(mine)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("paging saw %d of our accounts (%q), want each of %d exactly once", len(first), first, len(mine))
	}
	if second := pass(); !slices.Equal(first, second) {
		t.Errorf("order changed between passes:\n%q\n%q", first, second)
	}
}

func testListAccountsBeyondEnd(t *testing.T, s *suite) {
	s.create(s.account("alice"))
	page, err := s.lms.ListAccounts(t.Context(), 1, 1)
	if err != nil {
		t.Fatalf("ListAccounts: %v", err)
	}
	past, err := s.lms.ListAccounts(t.Context(), page.TotalResults+1, 10)
	if err != nil || len(past.Accounts) != 0 {
		t.Errorf("ListAccounts past the end: %d accounts, error %v; want none", len(past.Accounts), err)
	}
}

func testOddCharacters(t *testing.T, s *suite) {
	want := s.account("odd")
	want.ExternalID = `hr:` + s.name(`w/1 ?#%&+"\é`)
	want.UserName = s.name(`o'brien+tag`) + "@example.com"
	want.Profile.Email = want.UserName
	want.Profile.GivenName = `Zoë "Z" <b>&amp;`
	if s.f.NamesWithoutTags {
		want.Profile.GivenName = `Zoë "Z" &amp; 'Q'`
	}
	want.Profile.EmployeeNumber = `E/1 ?#"\`
	a := s.create(want)
	sameAccount(t, s.get(a.ID), want)
	wantIDs(t, "find by externalId", s.find(connector.ByExternalID, want.ExternalID), a.ID)
	wantIDs(t, "find by userName", s.find(connector.ByUserName, want.UserName), a.ID)
	wantIDs(t, "find by employeeNumber", s.find(connector.ByEmployeeNumber, want.Profile.EmployeeNumber), a.ID)
	if _, err := s.lms.SetActive(t.Context(), a.ID, false); err != nil {
		t.Errorf("SetActive: %v", err)
	}
}

// bulkTests check the optional capabilities connector.BulkDeleter and
// connector.ActivityLister; each skips when the LMS does not offer its capability.
var bulkTests = []subTest{
	{"DeleteAccountsBulk", testDeleteAccountsBulk},
	{"DeleteAccountsMany", testDeleteAccountsMany},
	{"ActivityOf", testActivityOf},
	{"BatchReads", testBatchReads},
}

func testDeleteAccountsBulk(t *testing.T, s *suite) {
	bd := s.bulkDeleter()
	a := s.create(s.account("alice"))
	b := s.create(s.account("bob"))
	c := s.create(s.account("carol"))
	gone := s.missingID()
	dels := []connector.Deletion{{ID: a.ID, Version: a.Version}, {ID: gone}, {ID: b.ID}}
	if s.f.ETags {
		// carol changes after her version was read: the deletion is refused.
		if _, err := s.lms.SetActive(t.Context(), c.ID, false); err != nil {
			t.Fatalf("SetActive: %v", err)
		}
		dels = append(dels, connector.Deletion{ID: c.ID, Version: c.Version})
	}
	errs := s.deleteAccounts(bd, dels)
	if errs[0] != nil || errs[2] != nil {
		t.Errorf("deleting existing accounts: %v, %v; want nil", errs[0], errs[2])
	}
	if !errors.Is(errs[1], connector.ErrNotFound) && (!s.f.LostAnswers || errs[1] != nil) {
		t.Errorf("deleting an account already gone: %v, want one matching %q", errs[1], connector.ErrNotFound)
	}
	for _, id := range []string{a.ID, b.ID} {
		_, err := s.lms.GetAccount(t.Context(), id)
		wantErr(t, "GetAccount after a bulk delete", err, connector.ErrNotFound)
	}
	if s.f.ETags {
		wantErr(t, "deleting with a stale version", errs[3], connector.ErrPrecondition)
		if got := s.get(c.ID); got.Active {
			t.Errorf("the account with the stale version changed: %+v", got)
		}
	}
}

func testDeleteAccountsMany(t *testing.T, s *suite) {
	bd := s.bulkDeleter()
	var dels []connector.Deletion
	var ids []string
	for i := range 12 {
		a := s.create(s.account(fmt.Sprintf("m%02d", i)))
		dels = append(dels, connector.Deletion{ID: a.ID, Version: a.Version})
		ids = append(ids, a.ID)
	}
	if al, ok := s.lms.(connector.ActivityLister); ok && al.MaxActivityBatch(t.Context()) > 0 {
		if got := s.activityOf(al, ids); len(got) != len(ids) {
			t.Errorf("ActivityOf: %d of %d accounts", len(got), len(ids))
		}
	}
	for i, err := range s.deleteAccounts(bd, dels) {
		if err != nil {
			t.Errorf("deleting %s: %v", dels[i].ID, err)
		}
	}
	for _, id := range ids {
		_, err := s.lms.GetAccount(t.Context(), id)
		wantErr(t, "GetAccount after a bulk delete", err, connector.ErrNotFound)
	}
}

func testActivityOf(t *testing.T, s *suite) {
	al, ok := s.lms.(connector.ActivityLister)
	if !ok || al.MaxActivityBatch(t.Context()) <= 0 {
		t.Skip("no connector.ActivityLister: the LMS does not read activity in batches")
	}
	a, b, gone := s.twoAndGone()
	got := s.activityOf(al, []string{a.ID, gone, b.ID, s.name("no-such-id"), a.ID})
	if len(got) != 2 {
		t.Errorf("ActivityOf: %d accounts, want alice and bob: %+v", len(got), got)
	}
	for _, want := range []connector.Account{a, b} {
		aa, ok := got[want.ID]
		if !ok {
			t.Errorf("ActivityOf: no %s", want.ID)
			continue
		}
		if aa.Account.ID != want.ID {
			t.Errorf("ActivityOf[%s].Account.ID = %q", want.ID, aa.Account.ID)
		}
		sameAccount(t, aa.Account, want)
		if s.f.ETags && aa.Account.Version != s.get(want.ID).Version {
			t.Errorf("ActivityOf[%s].Account.Version = %q, want %q", want.ID, aa.Account.Version, s.get(want.ID).Version)
		}
		switch {
		case s.f.NoActivity && aa.Activity.Known:
			t.Errorf("ActivityOf[%s]: %+v from an LMS that does not report activity; want Known false", want.ID, aa.Activity)
		case aa.Activity.Known && aa.Activity.Any():
			t.Errorf("ActivityOf[%s]: %+v for a new account", want.ID, aa.Activity)
		}
	}
	if s.f.Train == nil {
		return
	}
	s.f.Train(t, s.lms, a.ID)
	after := s.activityOf(al, []string{a.ID, b.ID})
	if act := after[a.ID].Activity; !act.Known || act.LastLogin == nil {
		t.Errorf("ActivityOf after a login: %+v, want a known last login", act)
	}
	if act := after[b.ID].Activity; act.Any() {
		t.Errorf("ActivityOf of an unused account: %+v", act)
	}
}

// testBatchReads checks connector.AccountBatchReader: GetAccounts answers the
// accounts that exist and leaves out one that is gone, and FindAccountsIn
// answers, for each value it vouches for, the accounts FindAccounts finds.
func testBatchReads(t *testing.T, s *suite) {
	br, ok := s.lms.(connector.AccountBatchReader)
	if !ok || br.MaxReadBatch(t.Context()) <= 0 {
		t.Skip("no connector.AccountBatchReader: the LMS reads accounts one by one")
	}
	a, b, gone := s.twoAndGone()
	got, err := br.GetAccounts(t.Context(), []string{a.ID, gone, b.ID})
	if err != nil {
		t.Fatalf("GetAccounts: %v", err)
	}
	if _, ok := got[gone]; ok || len(got) != 2 {
		t.Errorf("GetAccounts: %d accounts (gone one answered: %v), want alice and bob", len(got), ok)
	}
	for _, want := range []connector.Account{a, b} {
		if g, ok := got[want.ID]; !ok {
			t.Errorf("GetAccounts: no %s", want.ID)
		} else {
			sameAccount(t, g, want)
		}
	}
	nobody := s.account("nobody")
	for attr, values := range map[connector.FilterAttr][]string{
		connector.ByExternalID:     {a.ExternalID, nobody.ExternalID, b.ExternalID},
		connector.ByUserName:       {a.UserName, nobody.UserName},
		connector.ByEmail:          {b.Profile.Email, nobody.Profile.Email},
		connector.ByEmployeeNumber: {a.Profile.EmployeeNumber, nobody.Profile.EmployeeNumber},
	} {
		found, err := br.FindAccountsIn(t.Context(), attr, values)
		if err != nil {
			t.Errorf("FindAccountsIn by %s: %v", attr, err)
			continue
		}
		for v, accs := range found {
			if !slices.Contains(values, v) {
				t.Errorf("FindAccountsIn by %s answered %q, which was not asked for", attr, v)
				continue
			}
			want, err := s.lms.FindAccounts(t.Context(), connector.AccountFilter{Attr: attr, Value: v})
			if err != nil {
				t.Fatalf("FindAccounts(%s %q): %v", attr, v, err)
			}
			if accountIDs(accs) != accountIDs(want) {
				t.Errorf("FindAccountsIn by %s, %q: %s; FindAccounts finds %s", attr, v, accountIDs(accs), accountIDs(want))
			}
		}
	}
}

// accountIDs lists the ids of as, sorted, for comparison.
func accountIDs(as []connector.Account) string {
	var out []string
	for _, a := range as {
		out = append(out, a.ID)
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}

// twoAndGone creates alice and bob, and returns them with the id of an account
// that was deleted.
func (s *suite) twoAndGone() (a, b connector.Account, gone string) {
	s.t.Helper()
	return s.create(s.account("alice")), s.create(s.account("bob")), s.missingID()
}

// bulkDeleter returns the LMS as a BulkDeleter, or skips the test.
func (s *suite) bulkDeleter() connector.BulkDeleter {
	s.t.Helper()
	bd, ok := s.lms.(connector.BulkDeleter)
	if !ok || bd.MaxBulkDeletes(s.t.Context()) <= 0 {
		s.t.Skip("no connector.BulkDeleter: the LMS does not delete in bulk")
	}
	return bd
}

// deleteAccounts deletes dels in calls of at most MaxBulkDeletes, and checks
// that each call answers one result per deletion.
func (s *suite) deleteAccounts(bd connector.BulkDeleter, dels []connector.Deletion) []error {
	s.t.Helper()
	n := bd.MaxBulkDeletes(s.t.Context())
	var out []error
	for from := 0; from < len(dels); from += n {
		chunk := dels[from:min(from+n, len(dels))]
		errs, err := bd.DeleteAccounts(s.t.Context(), chunk)
		if err != nil {
			s.t.Fatalf("DeleteAccounts(%d): %v", len(chunk), err)
		}
		if len(errs) != len(chunk) {
			s.t.Fatalf("DeleteAccounts(%d): %d results", len(chunk), len(errs))
		}
		out = append(out, errs...)
	}
	return out
}

// activityOf reads the activity of ids in calls of at most MaxActivityBatch.
func (s *suite) activityOf(al connector.ActivityLister, ids []string) map[string]connector.AccountActivity {
	s.t.Helper()
	n := al.MaxActivityBatch(s.t.Context())
	out := map[string]connector.AccountActivity{}
	for from := 0; from < len(ids); from += n {
		chunk := ids[from:min(from+n, len(ids))]
		got, err := al.ActivityOf(s.t.Context(), chunk)
		if err != nil {
			s.t.Fatalf("ActivityOf(%d): %v", len(chunk), err)
		}
		for id, aa := range got {
			if !slices.Contains(chunk, id) {
				s.t.Errorf("ActivityOf: %q was not asked for", id)
			}
			out[id] = aa
		}
	}
	return out
}

// concurrencyTests check the LMS under concurrent calls.
var concurrencyTests = []subTest{
	{"CreateDistinct", testCreateDistinct},
	{"CreateSameUserName", testCreateSameUserName},
	{"MutateOneAccount", testMutateOneAccount},
}

func testCreateDistinct(t *testing.T, s *suite) {
	var wg sync.WaitGroup
	created := make([]connector.Account, concurrentCalls)
	errs := make([]error, concurrentCalls)
	for i := range concurrentCalls {
		wg.Go(func() {
			created[i], errs[i] = s.lms.CreateAccount(t.Context(), s.account(fmt.Sprintf("c%02d", i)))
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, a := range created {
		if errs[i] != nil {
			t.Errorf("create %d: %v", i, errs[i])
			continue
		}
		t.Cleanup(func() { _ = s.lms.DeleteAccount(context.Background(), a.ID) })
		if seen[a.ID] {
			t.Errorf("id %q handed out twice", a.ID)
		}
		seen[a.ID] = true
		wantIDs(t, "find "+a.ExternalID, s.find(connector.ByExternalID, a.ExternalID), a.ID)
	}
}

func testCreateSameUserName(t *testing.T, s *suite) {
	var wg sync.WaitGroup
	errs := make([]error, concurrentCalls)
	for i := range concurrentCalls {
		wg.Go(func() {
			a := s.account(fmt.Sprintf("s%02d", i))
			a.UserName = s.name("same") + "@example.com"
			if i%2 == 1 {
				a.UserName = strings.ToUpper(a.UserName)
			}
			var got connector.Account
			got, errs[i] = s.lms.CreateAccount(t.Context(), a)
			if errs[i] == nil {
				t.Cleanup(func() { _ = s.lms.DeleteAccount(context.Background(), got.ID) })
			}
		})
	}
	wg.Wait()
	wins := 0
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, connector.ErrConflict):
			t.Errorf("create %d: %v, want a conflict", i, err)
		}
	}
	if wins != 1 {
		t.Errorf("%d creates of the same userName succeeded, want exactly 1", wins)
	}
	if got := s.find(connector.ByUserName, s.name("same")+"@example.com"); len(got) != 1 {
		t.Errorf("find: %d accounts, want 1", len(got))
	}
}

func testMutateOneAccount(t *testing.T, s *suite) {
	a := s.create(s.account("busy"))
	var wg sync.WaitGroup
	for i := range concurrentCalls {
		wg.Go(func() {
			if _, err := s.lms.SetActive(t.Context(), a.ID, i%2 == 0); err != nil {
				t.Errorf("SetActive: %v", err)
			}
			if _, err := s.lms.GetAccount(t.Context(), a.ID); err != nil {
				t.Errorf("GetAccount: %v", err)
			}
		})
	}
	wg.Wait()
	want := a
	want.Active = s.get(a.ID).Active
	sameAccount(t, s.get(a.ID), want)
}
