// Package lmshttp holds what every HTTP LMS adapter reads the same way: the
// error kind of an HTTP status, a Retry-After header, and how much of a
// server's message goes into an error. One table, so that the guard judges a
// 429 or a 503 from Docebo exactly as one from a SCIM server.
package lmshttp

import (
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hrsync/hrsync/connector"
)

// KindOf is the one table from HTTP status to error kind. Statuses it does not
// name are invalid (other 4xx: retrying the same request will not help) or
// unavailable (5xx and anything stranger). An adapter whose API gives a status
// another meaning (Moodle: a 404 is a missing endpoint, not a missing account)
// says so before it asks this table.
func KindOf(status int) connector.ErrorKind {
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

// RetryAfter reads a Retry-After header: delay-seconds or an HTTP-date (RFC
// 9110 §10.2.3). It returns 0 if the header is missing, malformed or past.
func RetryAfter(v string, now time.Time) time.Duration {
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

// Truncate cuts s to at most n bytes without splitting a rune, marking the cut.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
