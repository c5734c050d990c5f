package sandbox_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/connector/lms/scim"
)

// WithDroppedAttributes behaves like SCIMMY: the attributes are accepted and not
// kept, on every way in (create, update, PUT, PATCH), and the rest is kept.
func TestWithDroppedAttributes(t *testing.T) {
	t.Parallel()
	l := sandbox.New(sandbox.WithDroppedAttributes("employeeNumber", "department", "manager"))
	full := connector.Profile{Email: "ada@example.com", GivenName: "Ada", FamilyName: "Lovelace", EmployeeNumber: "E1",
		OrgUnit: "R&D", JobTitle: "Engineer", ManagerID: "M1", Locale: "en-GB"}
	kept := full
	kept.EmployeeNumber, kept.OrgUnit, kept.ManagerID = "", "", ""
	check := func(how string, a connector.Account, want connector.Profile) {
		t.Helper()
		if a.Profile != want {
			t.Errorf("%s answered %+v, want %+v", how, a.Profile, want)
		}
		got, err := l.GetAccount(t.Context(), a.ID)
		if err != nil || got.Profile != want {
			t.Errorf("%s stored %+v (%v), want %+v", how, got.Profile, err, want)
		}
	}
	a, err := l.CreateAccount(t.Context(), connector.Account{ExternalID: "hr:1", UserName: "ada@example.com", Active: true, Profile: full})
	if err != nil {
		t.Fatal(err)
	}
	check("create", a, kept)
	if found, err := l.FindAccounts(t.Context(), connector.AccountFilter{Attr: connector.ByEmployeeNumber, Value: "E1"}); err != nil || len(found) != 0 {
		t.Errorf("a dropped employee number is found: %v, %v", found, err)
	}
	a.Profile = full
	a.Profile.JobTitle = "Lead"
	a, err = l.UpdateAccount(t.Context(), a)
	if err != nil {
		t.Fatal(err)
	}
	want := kept
	want.JobTitle = "Lead"
	check("update", a, want)
	if err := l.DeleteAccount(t.Context(), a.ID); err != nil { // its userName is Ada's below
		t.Fatal(err)
	}

	srv := httptest.NewServer(l.Handler(token))
	t.Cleanup(srv.Close)
	b := &httpBundle{srv: srv}
	var u scim.User
	b.do(t, "POST", "/scim/v2/Users", adaJSON).want(t, http.StatusCreated, &u)
	want = connector.Profile{Email: "ada@example.com", GivenName: "Ada", FamilyName: "Lovelace", JobTitle: "Engineer", Locale: "en-GB"}
	check("POST", scim.ToAccount(u), want)
	id := u.ID
	u = scim.User{}
	b.do(t, "PUT", "/scim/v2/Users/"+id, `{"userName":"Ada@Example.com","externalId":"hr:1","title":"Lead",
	  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "E2", "department": "Ops"}}`).want(t, http.StatusOK, &u)
	check("PUT", scim.ToAccount(u), connector.Profile{JobTitle: "Lead"})
	u = scim.User{}
	b.do(t, "PATCH", "/scim/v2/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
	  {"op":"replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber","value":"E3"},
	  {"op":"replace","path":"locale","value":"fr-FR"}]}`).want(t, http.StatusOK, &u)
	check("PATCH", scim.ToAccount(u), connector.Profile{JobTitle: "Lead", Locale: "fr-FR"})
}

func TestWithDroppedAttributesUnknown(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Error("an unknown attribute was accepted")
		}
	}()
	sandbox.New(sandbox.WithDroppedAttributes("shoeSize"))
}
