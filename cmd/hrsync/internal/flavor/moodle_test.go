package flavor

import (
	"net/http/httptest"
	"testing"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/app"
	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
)

// TestMoodleFlavor serves the moodle flavor over HTTP, as sandbox-lms does, and
// reaches it through both the flavor's client and lms.type moodle's adapter.
func TestMoodleFlavor(t *testing.T) {
	t.Parallel()
	f, err := Get("moodle")
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"", "tok"} {
		sb := sandbox.New(f.Sandbox...)
		srv := httptest.NewServer(f.Handler(sb, secret))
		t.Cleanup(srv.Close)
		c, err := f.Open(srv.URL+f.Path, secret)
		if err != nil {
			t.Fatal(err)
		}
		a, err := c.CreateAccount(t.Context(), connector.Account{UserName: "anna@resort.example", ExternalID: "hr:w-1", Active: true,
			Profile: connector.Profile{Email: "anna@resort.example", GivenName: "Anna", FamilyName: "Berger"}})
		if err != nil {
			t.Fatalf("secret %q: CreateAccount: %v", secret, err)
		}
		// The id hrsync keeps is the sandbox's.
		if _, err := sb.GetAccount(t.Context(), a.ID); err != nil {
			t.Errorf("secret %q: sandbox account %s: %v", secret, a.ID, err)
		}
		set := f.Settings(srv.URL+f.Path, secret)
		if err := app.CheckLMS(set); err != nil {
			t.Errorf("secret %q: settings %+v: %v", secret, set, err)
		}
	}
	if err := app.CheckLMS(app.LMSSettings{Type: "moodle", URL: "https://moodle.example"}); err == nil {
		t.Errorf("lms.type moodle without a token: no error")
	}
	if err := app.CheckLMS(app.LMSSettings{Type: "moodle", URL: "https://moodle.example", Token: "t", ExternalIDField: "username"}); err == nil {
		t.Errorf("lms.type moodle with external_id_field username: no error")
	}
	if err := app.CheckLMS(app.LMSSettings{Type: "moodle", URL: "https://moodle.example", Token: "t", EmployeeNumberField: "colour"}); err == nil {
		t.Errorf("lms.type moodle with employee_number_field colour: no error")
	}
}
