package guard_test

import (
	"context"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
)

// TestQuarantineReasonCarriesNoData: the quarantine's reason, shown on the
// unauthenticated /readyz and logged at WARN, names the kind and the cause of
// the last failure, never the error's text: neither the URL (whose query holds
// the looked-up email) nor what the LMS said.
func TestQuarantineReasonCarriesNoData(t *testing.T) {
	t.Parallel()
	const leak = "jane.private"
	target := "http://lms.example/scim/v2/Users?filter=emails.value+eq+%22" + leak + "%40home.example%22"
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"Timeout", &connector.LMSError{Kind: connector.KindUnavailable, Op: "GET /Users",
			Err: &url.Error{Op: "Get", URL: target, Err: context.DeadlineExceeded}}, "unavailable (timeout)"},
		{"Refused", &connector.LMSError{Kind: connector.KindUnavailable, Op: "GET /Users",
			Err: &url.Error{Op: "Get", URL: target, Err: &net.OpError{Op: "dial", Net: "tcp",
				Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}}, "unavailable (connection refused)"},
		{"ServerError", &connector.LMSError{Kind: connector.KindUnavailable, Op: "GET /Users", Status: 503,
			Reason: "no user " + leak + " during maintenance"}, "unavailable (HTTP 503)"},
		{"Auth", &connector.LMSError{Kind: connector.KindAuth, Op: "GET /Users", Status: 401,
			Reason: "token of " + leak + " revoked"}, "auth (HTTP 401)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g, _, logs, _ := quarantineSetup(t, &failing{LMS: sandbox.New(), err: tc.err})
			for range 10 {
				_, _ = g.ListAccounts(t.Context(), 1, 1)
			}
			st := g.Status()
			if !st.Quarantined || !strings.HasSuffix(st.Reason, "; last: "+tc.want) {
				t.Errorf("Status %+v: want quarantined, last: %s", st, tc.want)
			}
			for where, s := range map[string]string{"status": st.String(), "log": logs.String()} {
				if strings.Contains(s, leak) || strings.Contains(s, "lms.example") {
					t.Errorf("%s carries the error's text: %s", where, s)
				}
			}
		})
	}
}
