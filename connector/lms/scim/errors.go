package scim

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hrsync/hrsync/connector"
)

// maxReason bounds how much of a server's error detail ends up in an LMSError.
const maxReason = 200

// kindOf is the one table from HTTP status to error kind. Statuses it does not name
// are invalid (other 4xx: retrying the same request will not help) or unavailable
// (5xx and anything stranger).
func kindOf(status int) connector.ErrorKind {
	switch {
	case status == http.StatusBadRequest:
		return connector.KindInvalid
	case status == http.StatusUnauthorized, status == http.StatusForbidden:
		return connector.KindAuth
	case status == http.StatusNotFound:
		return connector.KindNotFound
	case status == http.StatusConflict:
		return connector.KindConflict
	case status == http.StatusPreconditionFailed:
		return connector.KindPrecondition
	case status == http.StatusTooManyRequests:
		return connector.KindRateLimited
	case status == http.StatusRequestTimeout, status >= 500:
		return connector.KindUnavailable
	case status >= 400:
		return connector.KindInvalid
	}
	return connector.KindUnavailable
}

// statusError turns a non-2xx response into an *connector.LMSError: its kind from
// kindOf, the SCIM error detail (or the status text) as reason, with quoted values
// and email addresses scrubbed (see scrubDetail), its scimType as Code, and
// Retry-After.
func statusError(op string, resp *http.Response, body []byte, now time.Time) *connector.LMSError {
	e := &connector.LMSError{
		Kind:       kindOf(resp.StatusCode),
		Op:         op,
		Status:     resp.StatusCode,
		Reason:     http.StatusText(resp.StatusCode),
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), now),
	}
	var se Error
	if json.Unmarshal(body, &se) == nil {
		if se.Detail != "" {
			// Servers echo what they were sent; keep their words, not our data.
			e.Reason = truncate(scrubDetail(truncate(se.Detail, 16*maxReason)), maxReason)
		}
		e.Code = truncate(se.ScimType, maxReason)
	}
	return e
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP-date
// (RFC 9110 §10.2.3). It returns 0 if the header is missing, malformed or past.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		const maxSecs = int64(1<<63-1) / int64(time.Second)
		return time.Duration(min(secs, maxSecs)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// truncate cuts s to at most n bytes without splitting a rune.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
