package connector_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
)

// linkMap is a Matcher's Links: account id → worker.
type linkMap map[string]connector.WorkerKey

func (m linkMap) LinkedWorker(_ context.Context, accountID string) (connector.WorkerKey, error) {
	if w, ok := m[accountID]; ok {
		return w, nil
	}
	return connector.WorkerKey{}, connector.ErrNotFound
}

// failingFinder fails every lookup.
type failingFinder struct{}

func (failingFinder) FindAccounts(context.Context, connector.AccountFilter) ([]connector.Account, error) {
	return nil, errors.New("lms down")
}

// TestMatcher is the table of the matching rules (docs/design.md, "Matching a
// worker with no link") that the converger and the reconciler share. Each case
// names the accounts (by UserName) the LMS holds, the links, the worker's want,
// and the UserNames the match must return.
func TestMatcher(t *testing.T) {
	t.Parallel()
	hr := connector.DefaultFeed("hr", connector.FeedHR)
	acme := connector.DefaultFeed("partner-acme", connector.FeedPartner)
	acme.Scope.Organizations = []string{"Acme"}
	acct := func(user, extID, email, empNo, org string) connector.Account {
		return connector.Account{UserName: user, ExternalID: extID, Active: true, Organization: org,
			Profile: connector.Profile{Email: email, EmployeeNumber: empNo, GivenName: "G", FamilyName: "F"}}
	}
	want := func(feed, id string, prev []string, empNos, emails []string) connector.Wanted {
		return connector.Wanted{Worker: connector.WorkerKey{Feed: feed, WorkerID: id}, State: connector.StateActive,
			PreviousWorkerIDs: prev, EmployeeNumbers: empNos, Emails: emails}
	}
	tests := []struct {
		name      string
		feed      connector.Feed
		accounts  []connector.Account
		links     map[string]connector.WorkerKey // UserName → worker
		want      connector.Wanted
		match     string   // UserName of the match
		ambiguous []string // UserNames
		by        string
	}{
		{"None", hr, []connector.Account{acct("x", "hr:other", "x@example.com", "E9", "")}, nil,
			want("hr", "w1", nil, []string{"E1"}, []string{"ann@example.com"}), "", nil, "none of externalId, employee number, email"},
		{"ByExternalID", hr, []connector.Account{acct("a", "hr:w1", "a@example.com", "", "")}, nil,
			want("hr", "w1", nil, nil, []string{"ann@example.com"}), "a", nil, `externalId "hr:w1"`},
		{"ExternalIDBeforeEmployeeNumberBeforeEmail", hr, []connector.Account{
			acct("by-email", "", "ann@example.com", "", ""), acct("by-number", "", "n@example.com", "E1", ""), acct("by-ext", "hr:w1", "e@example.com", "", "")}, nil,
			want("hr", "w1", nil, []string{"E1"}, []string{"ann@example.com"}), "by-ext", nil, `externalId "hr:w1"`},
		{"EmployeeNumberBeforeEmail", hr, []connector.Account{
			acct("by-email", "", "ann@example.com", "", ""), acct("by-number", "", "n@example.com", "E1", "")}, nil,
			want("hr", "w1", nil, []string{"E1"}, []string{"ann@example.com"}), "by-number", nil, `employeeNumber "E1"`},
		{"EmailCaseInsensitive", hr, []connector.Account{acct("a", "", "Ann@Example.COM", "", "")}, nil,
			want("hr", "w1", nil, nil, []string{"ann@example.com"}), "a", nil, `emails.value "ann@example.com"`},
		{"EveryEmailNewestFirst", hr, []connector.Account{acct("old", "", "ann.old@example.com", "", "")}, nil,
			want("hr", "w1", nil, nil, []string{"ann@example.com", "ann.old@example.com"}), "old", nil, `emails.value "ann.old@example.com"`},
		{"TwoByEmailIsAmbiguous", hr, []connector.Account{acct("a1", "", "ann@example.com", "", ""), acct("a2", "", "ANN@example.com", "", "")}, nil,
			want("hr", "w1", nil, nil, []string{"ann@example.com"}), "", []string{"a1", "a2"}, `emails.value "ann@example.com"`},
		{"AmbiguityStopsTheSearch", hr, []connector.Account{
			acct("n1", "", "n1@example.com", "E1", ""), acct("n2", "", "n2@example.com", "E1", ""), acct("e", "", "ann@example.com", "", "")}, nil,
			want("hr", "w1", nil, []string{"E1"}, []string{"ann@example.com"}), "", []string{"n1", "n2"}, `employeeNumber "E1"`},
		{"RehireUnderNewIDFindsPredecessorsAccount", hr, []connector.Account{acct("old", "hr:w0", "old@example.com", "", "")}, nil,
			want("hr", "w1", []string{"w0"}, nil, []string{"new@example.com"}), "old", nil, `externalId "hr:w0"`},
		{"PredecessorsLinkedAccountStaysACandidate", hr, []connector.Account{acct("old", "", "ann@example.com", "", "")},
			map[string]connector.WorkerKey{"old": {Feed: "hr", WorkerID: "w0"}},
			want("hr", "w1", []string{"w0"}, nil, []string{"ann@example.com"}), "old", nil, `emails.value "ann@example.com"`},
		{"AnotherWorkersAccountIsNoCandidate", hr, []connector.Account{acct("theirs", "", "ann@example.com", "", ""), acct("mine", "", "ann@example.com", "", "")},
			map[string]connector.WorkerKey{"theirs": {Feed: "hr", WorkerID: "w2"}},
			want("hr", "w1", nil, nil, []string{"ann@example.com"}), "mine", nil, `emails.value "ann@example.com"`},
		{"SameWorkerIDOfAnotherFeedIsSomeoneElse", hr, []connector.Account{acct("a", "", "ann@example.com", "", "")},
			map[string]connector.WorkerKey{"a": {Feed: "partner-acme", WorkerID: "w1"}},
			want("hr", "w1", nil, nil, []string{"ann@example.com"}), "", nil, "none of externalId, employee number, email"},
		// A partner never reaches an employee's account, nor one outside its organisation.
		{"PartnerCannotReachEmployee", acme, []connector.Account{acct("emp", "hr:w9", "ann@example.com", "", "")}, nil,
			want("partner-acme", "p1", nil, nil, []string{"ann@example.com"}), "", nil, "none of externalId, employee number, email"},
		{"PartnerConfinedToItsOrganisation", acme, []connector.Account{
			acct("other-org", "partner-acme:p1", "ann@example.com", "", "Globex"), acct("own", "partner-acme:legacy-7", "ann@example.com", "", "acme")}, nil,
			want("partner-acme", "p1", nil, nil, []string{"ann@example.com"}), "own", nil, `emails.value "ann@example.com"`},
		// An HR feed adopts unmanaged accounts; a partner feed does not.
		{"PartnerDoesNotAdoptUnmanaged", acme, []connector.Account{acct("bare", "", "ann@example.com", "", "Acme")}, nil,
			want("partner-acme", "p1", nil, nil, []string{"ann@example.com"}), "", nil, "none of externalId, employee number, email"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			lms := sandbox.New()
			ids := map[string]string{} // UserName → id
			names := map[string]string{}
			for _, a := range tc.accounts {
				got, err := lms.CreateAccount(ctx, a)
				if err != nil {
					t.Fatal(err)
				}
				ids[a.UserName], names[got.ID] = got.ID, a.UserName
			}
			links := linkMap{}
			for user, w := range tc.links {
				links[ids[user]] = w
			}
			m, err := connector.Matcher{LMS: lms, Links: links}.Match(ctx, tc.feed, tc.want)
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if m.Account != nil {
				got = names[m.Account.ID]
			}
			var amb []string
			for _, a := range m.Ambiguous {
				amb = append(amb, names[a.ID])
			}
			slices.Sort(amb)
			if got != tc.match || !slices.Equal(amb, tc.ambiguous) || m.By() != tc.by {
				t.Fatalf("Match = %q ambiguous %v by %s; want %q %v by %s", got, amb, m.By(), tc.match, tc.ambiguous, tc.by)
			}
		})
	}

	t.Run("LMSErrorNamesTheRule", func(t *testing.T) {
		t.Parallel()
		_, err := connector.Matcher{LMS: failingFinder{}, Links: linkMap{}}.Match(t.Context(), hr, want("hr", "w1", nil, nil, nil))
		if err == nil || err.Error() != "find account by externalId: lms down" {
			t.Fatalf("err = %v", err)
		}
	})
}
