package scim

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/lmshttp"
)

// maxReason bounds how much of a server's error detail ends up in an LMSError.
const maxReason = 200

// statusError turns a non-2xx response into an *connector.LMSError: its kind from
// kindOf, the SCIM error detail (or the status text) as reason, with quoted values
// and email addresses scrubbed (see scrubDetail), its scimType as Code, and
// Retry-After.
func statusError(op string, resp *http.Response, body []byte, now time.Time) *connector.LMSError {
	e := &connector.LMSError{
		Kind:       lmshttp.KindOf(resp.StatusCode),
		Op:         op,
		Status:     resp.StatusCode,
		Reason:     http.StatusText(resp.StatusCode),
		RetryAfter: lmshttp.RetryAfter(resp.Header.Get("Retry-After"), now),
	}
	var se Error
	if json.Unmarshal(body, &se) == nil {
		if se.Detail != "" {
			// Servers echo what they were sent; keep their words, not our data.
			e.Reason = lmshttp.Truncate(scrubDetail(lmshttp.Truncate(se.Detail, 16*maxReason)), maxReason)
		}
		e.Code = lmshttp.Truncate(se.ScimType, maxReason)
	}
	return e
}
