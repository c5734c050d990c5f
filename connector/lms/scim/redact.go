package scim

import (
	"errors"
	"net/url"
	"regexp"
)

// Errors of the client end up in logs, in the unauthenticated /readyz, in audit
// rows and review items, and in CLI output. So the client cleans them where it
// builds them, and every consumer gets the clean form:
//
//   - a request URL loses its userinfo and its query: the query of a lookup is a
//     filter such as `emails.value eq "jane@example.com"`;
//   - the LMS's own error detail loses quoted values and email addresses: servers
//     echo what they were sent ("userName \"jane@example.com\" is already taken").

// RedactURL returns rawURL without userinfo (a password, a token) and without its
// query and fragment; a dropped query shows as "?…". It is the form of an LMS
// request URL that errors and logs may carry.
func RedactURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparseable URL)"
	}
	u.User = nil
	hadQuery := u.RawQuery != "" || u.ForceQuery
	u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = "", false, "", ""
	s := u.String()
	if hadQuery {
		s += "?…"
	}
	return s
}

// redactURLError returns err with the URL of a *url.Error (what http.Client.Do
// returns) redacted by RedactURL. The cause is kept, so errors.Is still finds
// context.DeadlineExceeded or a refused connection, and Timeout() still answers.
func redactURLError(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err
	}
	return &url.Error{Op: ue.Op, URL: RedactURL(ue.URL), Err: ue.Err}
}

// quotedOrEmail matches what a server's error detail may echo of a request: a
// double-quoted value, or an email address.
var quotedOrEmail = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|[^\s"'<>()\[\],;:]+@[^\s"'<>()\[\],;:]+`)

// scrubDetail replaces the quoted values and email addresses in a server's error
// detail by "…", keeping the words around them.
func scrubDetail(s string) string {
	return quotedOrEmail.ReplaceAllString(s, "…")
}
