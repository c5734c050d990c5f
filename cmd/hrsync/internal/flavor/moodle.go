package flavor

import (
	"cmp"
	"net/http"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/app"
	"github.com/hrsync/hrsync/connector/lms/moodle/moodlesim"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
)

// sandboxToken is the token hrsync sends to a simulator started without one
// (it then accepts any): Moodle always wants a wstoken.
const sandboxToken = "sandbox"

// Moodle's web services (REST protocol) at the site's root, simulated by
// moodlesim with a default site's settings, spoken to by the moodle adapter.
func init() {
	Register(Flavor{
		Name:    "moodle",
		Path:    "",
		Sandbox: moodlesim.SandboxOptions(),
		Handler: func(sb *sandbox.LMS, secret string) http.Handler {
			return moodlesim.New(sb, moodlesim.Config{Token: secret})
		},
		Settings: func(url, secret string) app.LMSSettings {
			return app.LMSSettings{Type: "moodle", URL: url, Token: cmp.Or(secret, sandboxToken)}
		},
	})
}
