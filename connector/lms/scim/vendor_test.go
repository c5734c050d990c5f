package scim_test

import (
	"os"
	"testing"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/lmstest"
	"github.com/hrsync/hrsync/connector/lms/scim"
)

// TestConformanceVendorSandbox runs the suite against a vendor's SCIM sandbox:
// LMS_SANDBOX_URL is its SCIM root, LMS_SANDBOX_TOKEN a bearer token, and
// LMS_SANDBOX_CA_FILE an optional CA bundle. ETag support is taken from the
// server's ServiceProviderConfig; LMS_SANDBOX_DUPLICATE_EXTERNAL_IDS=1 declares
// that externalId is not unique there. The suite makes its names unique and
// deletes what it created. Skipped unless LMS_SANDBOX_URL is set.
func TestConformanceVendorSandbox(t *testing.T) {
	base := os.Getenv("LMS_SANDBOX_URL")
	if base == "" {
		t.Skip("LMS_SANDBOX_URL is not set: no vendor sandbox to run against")
	}
	t.Parallel()
	opts := []scim.Option{scim.WithUserAgent("hrsync-lmstest/1")}
	if tok := os.Getenv("LMS_SANDBOX_TOKEN"); tok != "" {
		opts = append(opts, scim.WithBearerToken(tok))
	}
	if ca := os.Getenv("LMS_SANDBOX_CA_FILE"); ca != "" {
		opts = append(opts, scim.WithCACertFile(ca))
	}
	c, err := scim.New(base, opts...)
	if err != nil {
		t.Fatal(err)
	}
	caps := c.Capabilities(t.Context())
	t.Logf("vendor sandbox capabilities: %+v", caps)
	lmstest.Run(t, lmstest.Features{
		ETags:                caps.ETag,
		DuplicateExternalIDs: os.Getenv("LMS_SANDBOX_DUPLICATE_EXTERNAL_IDS") == "1",
	}, func(t *testing.T) connector.LMS { return c })
}
