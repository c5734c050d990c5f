package app

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/moodle/moodlesim"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
)

// TestOpenMoodle: lms.type moodle reaches a site with its token, and keeps the
// employee number where lms.employee_number_field says.
func TestOpenMoodle(t *testing.T) {
	t.Parallel()
	sb := sandbox.New()
	srv := httptest.NewServer(moodlesim.New(sb, moodlesim.Config{Token: "tok"}))
	t.Cleanup(srv.Close)
	// department keeps the org unit already.
	_, err := openLMS(LMSSettings{Type: "moodle", URL: srv.URL, Token: "tok", Timeout: 5 * time.Second,
		EmployeeNumberField: "department"})
	if err == nil {
		t.Fatal("employee_number_field department: no error, though department keeps the org unit")
	}
	l, err := openLMS(LMSSettings{Type: "moodle", URL: srv.URL + "/", Token: "tok", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	a, err := l.CreateAccount(t.Context(), connector.Account{UserName: "anna@resort.example", ExternalID: "hr:w-1", Active: true,
		Profile: connector.Profile{Email: "anna@resort.example", GivenName: "Anna", FamilyName: "Berger", EmployeeNumber: "E1"}})
	if err != nil {
		t.Fatal(err)
	}
	found, err := l.FindAccounts(t.Context(), connector.AccountFilter{Attr: connector.ByEmployeeNumber, Value: "E1"})
	if err != nil || len(found) != 1 || found[0].ID != a.ID {
		t.Errorf("FindAccounts by employee number: %+v, %v", found, err)
	}
	bad, err := openLMS(LMSSettings{Type: "moodle", URL: srv.URL, Token: "wrong", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.GetAccount(t.Context(), a.ID); err == nil {
		t.Error("a wrong token reached the site")
	}
}
