package flavor

import (
	"net/http"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/app"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
)

// The sandbox's own API: SCIM 2.0 with its training extension.
func init() {
	Register(Flavor{
		Name:    "scim",
		Path:    "/scim/v2",
		Handler: func(sb *sandbox.LMS, secret string) http.Handler { return sb.Handler(secret) },
		Settings: func(url, secret string) app.LMSSettings {
			return app.LMSSettings{Type: "scim", URL: url, Token: secret}
		},
	})
}
