package moodle

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/lmshttp"
)

// Exception is the error envelope of Moodle's REST protocol: most sites answer
// it with HTTP 200 (webservice/rest/locallib.php), so the body decides, not
// the status. DebugInfo is there only when the site has debugging on; it names
// the data at fault ("Username already exists: anna"), so it is read for
// classification and never copied into an error.
type Exception struct {
	Exception string `json:"exception"`
	ErrorCode string `json:"errorcode"`
	Message   string `json:"message"`
	DebugInfo string `json:"debuginfo,omitempty"`
}

// parseException returns the envelope in body, if body is one.
func parseException(body []byte) (Exception, bool) {
	b := strings.TrimSpace(string(body))
	if !strings.HasPrefix(b, "{") || !strings.Contains(b, `"exception"`) {
		return Exception{}, false
	}
	var e Exception
	if json.Unmarshal(body, &e) != nil || e.Exception == "" {
		return Exception{}, false
	}
	return e, true
}

// errorKinds is the one table from Moodle error codes to error kinds. Codes it
// does not name are judged by kindOfException.
var errorKinds = map[string]connector.ErrorKind{
	// The token, the service or the token's user may not do this.
	"invalidtoken":              connector.KindAuth, // wstoken unknown, expired, or from another IP
	"accessexception":           connector.KindAuth, // webservice_access_exception: function not in the service, user not authorised
	"nopermissions":             connector.KindAuth, // required_capability_exception: moodle/user:create, ...
	"requireloginerror":         connector.KindAuth,
	"servicerequireslogin":      connector.KindAuth,
	"usernotfullysetup":         connector.KindAuth,
	"sitepolicynotagreed":       connector.KindAuth,
	"invalidlogin":              connector.KindAuth,
	"enablewsdescription":       connector.KindAuth, // web services are off on the site
	"forcepasswordchangenotice": connector.KindAuth,
	// The user (or record) is not there.
	"invaliduserid":         connector.KindNotFound, // update_users warning (MDL-69194)
	"usernotupdateddeleted": connector.KindNotFound, // update_users warning: the user was deleted
	"invaliduser":           connector.KindNotFound,
	// Taken.
	"useremailduplicate": connector.KindConflict, // update_users warning: another user has the email
	"usernameexists":     connector.KindConflict,
	// Try again later.
	"sitemaintenance":    connector.KindUnavailable,
	"dbconnectionfailed": connector.KindUnavailable,
	"dmlreadexception":   connector.KindUnavailable,
	"dmlwriteexception":  connector.KindUnavailable, // also a unique index violated: callers that can tell, check
	"upgraderunning":     connector.KindUnavailable,
}

// A missing record (dml_missing_record_exception, "invalidrecord") is not
// "not found" here: Moodle says the same of a web service function it does not
// have. Only the calls where it means the user (core_user_delete_users) treat
// it so (see userGone).

// kindOfException classifies e. invalid_parameter_exception is invalid unless
// its debug information says what is taken; other exceptions the table does
// not know are invalid: the same call will fail the same way.
func kindOfException(e Exception) connector.ErrorKind {
	if k, ok := errorKinds[e.ErrorCode]; ok {
		return k
	}
	switch e.Exception {
	case "webservice_access_exception", "required_capability_exception", "require_login_exception":
		return connector.KindAuth
	case "dml_connection_exception", "dml_read_exception":
		return connector.KindUnavailable
	}
	if isTakenInfo(e.DebugInfo) {
		return connector.KindConflict
	}
	return connector.KindInvalid
}

// isTakenInfo reports whether debug information says a username or email is
// taken ("Username already exists: ...", "Email address already exists: ...").
func isTakenInfo(info string) bool { return strings.Contains(info, "already exists") }

// exceptionError turns an envelope into an LMSError of op. The reason is
// Moodle's message and error code; debug information stays out (it echoes data).
func exceptionError(op string, status int, e Exception) *connector.LMSError {
	le := &connector.LMSError{Kind: kindOfException(e), Op: op, Code: lmshttp.Truncate(e.ErrorCode, 100),
		Reason: lmshttp.Truncate(e.Message, 200)}
	if status != http.StatusOK {
		le.Status = status
	}
	if le.Reason == "" {
		le.Reason = e.Exception
	}
	if e.ErrorCode != "" && !strings.Contains(le.Reason, e.ErrorCode) {
		le.Reason += " (" + lmshttp.Truncate(e.ErrorCode, 100) + ")"
	}
	return le
}

// statusError classifies an answer that is not an envelope and not 200.
func statusError(op string, resp *http.Response, now time.Time) *connector.LMSError {
	e := &connector.LMSError{Op: op, Status: resp.StatusCode, Reason: http.StatusText(resp.StatusCode)}
	switch s := resp.StatusCode; {
	case s == http.StatusTooManyRequests:
		e.Kind = connector.KindRateLimited
		e.RetryAfter = lmshttp.RetryAfter(resp.Header.Get("Retry-After"), now)
	case s == http.StatusRequestTimeout || s >= 500:
		e.Kind = connector.KindUnavailable
		e.RetryAfter = lmshttp.RetryAfter(resp.Header.Get("Retry-After"), now)
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		e.Kind = connector.KindAuth
	case s == http.StatusNotFound:
		// Never "not found": that would say the account is gone. The endpoint is.
		e.Kind = connector.KindAuth
		e.Reason = "no web service endpoint at this URL: is the REST protocol enabled, and is the URL the site's root?"
	default:
		e.Kind = connector.KindInvalid
	}
	return e
}

// warning is one entry of a function's warnings (external_warnings).
type warning struct {
	Item        string `json:"item"`
	ItemID      int64  `json:"itemid"`
	WarningCode string `json:"warningcode"`
	Message     string `json:"message"`
}

// warningError is the error of one item that a warning reports.
func warningError(op string, w warning) *connector.LMSError {
	return exceptionError(op, http.StatusOK, Exception{Exception: "warning", ErrorCode: w.WarningCode, Message: w.Message})
}

// userGone turns a missing record of a call about users (core_user_delete_users:
// the id is no user, or a deleted one) into "not found".
func userGone(err error) error {
	var le *connector.LMSError
	if errors.As(err, &le) && le.Code == "invalidrecord" {
		cp := *le
		cp.Kind = connector.KindNotFound
		return &cp
	}
	return err
}
