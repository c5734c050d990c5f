package flavor

import (
	"cmp"
	"fmt"
	"net/http"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/app"
	"github.com/hrsync/hrsync/connector/lms/docebo/docebosim"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
)

// sandboxSecret is the client secret the Docebo flavor uses when it is served
// without one (the simulator then accepts any client; the adapter still needs
// a secret to send).
const sandboxSecret = "sandbox"

// Docebo's REST API (docs/lms-compat-docebo.md), served at the root: the
// adapter is given the platform's root, as for a real tenant. The client id
// is docebosim.DefaultClientID; the secret is the one the sandbox was given.
func init() {
	Register(Flavor{
		Name: "docebo",
		Path: "",
		Handler: func(sb *sandbox.LMS, secret string) http.Handler {
			return docebosim.New(sb, docebosim.Config{ClientSecret: secret})
		},
		Settings: func(url, secret string) app.LMSSettings {
			return app.LMSSettings{Type: "docebo", URL: url, ClientID: docebosim.DefaultClientID,
				ClientSecret: cmp.Or(secret, sandboxSecret), ExternalIDField: docebosim.Fields.ExternalID,
				EmployeeNumberField: docebosim.Fields.EmployeeNumber,
				AdditionalFields: fmt.Sprintf("org_unit=%s,job_title=%s,manager_id=%s,locale=%s", docebosim.Fields.OrgUnit,
					docebosim.Fields.JobTitle, docebosim.Fields.ManagerID, docebosim.Fields.Locale)}
		},
		Sandbox: docebosim.SandboxOptions(),
	})
}
