// Package moodlesim simulates a Moodle site's web services (REST protocol)
// over the sandbox LMS, so that the moodle adapter is tested over HTTP and
// "hrsync sandbox-lms --flavor moodle" and "hrsync demo --lms moodle" run
// without a real site. It is built from Moodle's public code and
// documentation (docs/lms-compat-moodle.md says what each behaviour rests on):
//
//   - POST (or GET) /webservice/rest/server.php with wstoken, wsfunction,
//     moodlewsrestformat=json and the parameters form-encoded, arrays as
//     users[0][username]; at most MaxInputVars form fields are read, the rest
//     dropped, as PHP does;
//   - errors as HTTP 200 with {"exception", "errorcode", "message"}, and
//     "debuginfo" only when Debug is on (a production site says no more than
//     "Invalid parameter value detected");
//   - parameters validated as external_api does: a missing required key, an
//     unexpected key, or a value its type would clean (an upper-case username,
//     a malformed email, a non-numeric id) fails the whole call;
//   - core_user_create_users all or nothing (one transaction), users created
//     active; core_user_update_users one user at a time with a warning for each
//     it skips (MDL-69194), or, with LegacyUpdate, one transaction answering
//     null that skips users silently; core_user_delete_users all or nothing;
//   - core_user_get_users_by_field, core_user_get_users (email, firstname and
//     lastname compared with a case-insensitive LIKE),
//     core_enrol_get_users_courses and
//     core_completion_get_course_completion_status over the sandbox's training.
//
// Users are the sandbox's accounts. A user's numeric id is its sandbox id when
// that is a number (see SandboxOptions), else one the simulator hands out and
// keeps. A deleted user stays known as deleted, as Moodle keeps a scrubbed
// record: updating it answers usernotupdateddeleted, deleting it again fails.
// The sandbox's courses are Moodle courses whose short name is the sandbox's
// course name.
package moodlesim

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
)

// EndpointPath is where the simulator serves, as Moodle does.
const EndpointPath = "/webservice/rest/server.php"

// Config is the simulated site's settings. The zero value is a default site:
// usernames of lower-case letters, digits and -.@_ only, emails unique, debugging
// off, a database that compares case-sensitively (PostgreSQL), update_users as
// since MDL-69194, PHP's max_input_vars 1000, and the custom profile fields
// employeenumber, jobtitle, managerid and locale.
type Config struct {
	// Token is the wstoken callers must send; empty accepts any.
	Token string
	// ExtendedUsernameChars is the site setting extendedusernamechars.
	ExtendedUsernameChars bool
	// AllowAccountsSameEmail is the site setting allowaccountssameemail.
	AllowAccountsSameEmail bool
	// Debug adds debuginfo to errors, as a site with debugging on does.
	Debug bool
	// CaseInsensitiveDB compares usernames, idnumbers and emails in lookups
	// case-insensitively, as MySQL's default collation does.
	CaseInsensitiveDB bool
	// LegacyUpdate makes core_user_update_users behave as before MDL-69194.
	LegacyUpdate bool
	// MaxInputVars is PHP's max_input_vars; 0 means 1000.
	MaxInputVars int
}

// SandboxOptions make a sandbox that behaves as Moodle's user table: ids are
// numbers from 3 up (1 and 2 are Moodle's guest and first admin), so that the
// account ids hrsync keeps are the sandbox's, and idnumber (the externalId) is
// not unique.
func SandboxOptions() []sandbox.Option {
	return []sandbox.Option{sandbox.WithIDs(func(seq int) string { return strconv.Itoa(seq + 2) }),
		sandbox.WithDuplicateExternalIDs()}
}

// customFields are the site's custom user profile fields, by short name, and
// the sandbox profile field each is kept in. department is the standard field
// of the org unit.
var customFields = map[string]func(p *connector.Profile) *string{
	"employeenumber": func(p *connector.Profile) *string { return &p.EmployeeNumber },
	"jobtitle":       func(p *connector.Profile) *string { return &p.JobTitle },
	"managerid":      func(p *connector.Profile) *string { return &p.ManagerID },
	"locale":         func(p *connector.Profile) *string { return &p.Locale },
}

// Sim is the simulated site: an http.Handler.
type Sim struct {
	sb  *sandbox.LMS
	cfg Config

	// mu makes each call one transaction.
	mu      sync.Mutex
	ids     map[string]int64 // sandbox id → user id
	sbIDs   map[int64]string // user id → sandbox id
	deleted map[int64]bool
	next    int64
	courses map[string]int64 // course name → course id
	names   map[int64]string
	calls   map[string]int
}

// New returns a simulated site over sb.
func New(sb *sandbox.LMS, cfg Config) *Sim {
	if cfg.MaxInputVars <= 0 {
		cfg.MaxInputVars = 1000
	}
	return &Sim{sb: sb, cfg: cfg, ids: map[string]int64{}, sbIDs: map[int64]string{}, deleted: map[int64]bool{},
		next: 1000000, courses: map[string]int64{}, names: map[int64]string{}, calls: map[string]int{}}
}

// Calls returns how many calls of the web service function fn were served
// (all functions when fn is empty), failed ones included.
func (s *Sim) Calls(fn string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if fn != "" {
		return s.calls[fn]
	}
	n := 0
	for _, c := range s.calls {
		n += c
	}
	return n
}

// UserID returns the Moodle id of the sandbox account sandboxID.
func (s *Sim) UserID(sandboxID string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.idOf(sandboxID)
}

// SandboxID returns the sandbox account of the Moodle user id, "" if none.
func (s *Sim) SandboxID(id int64) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sandboxOf(id)
}

// sandboxOf returns the sandbox account of the user id, "" if none; s.mu must
// be held. A site answers for every user it has, so an account the simulator
// has not described yet is found by its own sandbox id when that is the number
// id (see SandboxOptions), not only once a listing or a lookup handed id out.
func (s *Sim) sandboxOf(id int64) string {
	if sbID := s.sbIDs[id]; sbID != "" {
		return sbID
	}
	sbID := strconv.FormatInt(id, 10)
	if _, known := s.ids[sbID]; known {
		return ""
	}
	if _, err := s.sb.GetAccount(context.Background(), sbID); err != nil || s.idOf(sbID) != id {
		return ""
	}
	return sbID
}

// idOf returns the user id of the sandbox account id, handing one out the
// first time; s.mu must be held.
func (s *Sim) idOf(sbID string) int64 {
	if n, ok := s.ids[sbID]; ok {
		return n
	}
	n, err := strconv.ParseInt(sbID, 10, 64)
	if err != nil || n <= 0 || strconv.FormatInt(n, 10) != sbID || s.sbIDs[n] != "" {
		for s.sbIDs[s.next] != "" {
			s.next++
		}
		n = s.next
		s.next++
	}
	s.ids[sbID], s.sbIDs[n] = n, sbID
	return n
}

// courseID returns the id of the course name; s.mu must be held.
func (s *Sim) courseID(name string) int64 {
	if n, ok := s.courses[name]; ok {
		return n
	}
	n := int64(len(s.courses) + 2) // course 1 is the site's front page
	s.courses[name], s.names[n] = n, name
	return n
}

// wsError is Moodle's error envelope.
type wsError struct {
	Exception string `json:"exception"`
	ErrorCode string `json:"errorcode"`
	Message   string `json:"message"`
	DebugInfo string `json:"debuginfo,omitempty"`
}

func (e *wsError) Error() string { return e.ErrorCode + ": " + e.Message }

func invalidParam(debug string) *wsError {
	return &wsError{Exception: "invalid_parameter_exception", ErrorCode: "invalidparameter",
		Message: "Invalid parameter value detected", DebugInfo: debug}
}

func missingRecord(table string) *wsError {
	return &wsError{Exception: "dml_missing_record_exception", ErrorCode: "invalidrecord",
		Message: "Can't find data record in database table " + table + "."}
}

func moodleException(code, message string) *wsError {
	return &wsError{Exception: "moodle_exception", ErrorCode: code, Message: message}
}

// ServeHTTP implements http.Handler.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != EndpointPath {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		http.Error(w, "cannot read the request", http.StatusBadRequest)
		return
	}
	params, _, err := parseForm(r.URL.RawQuery, string(body), s.cfg.MaxInputVars)
	if err != nil {
		s.answer(w, nil, invalidParam("malformed form encoding"))
		return
	}
	token, _ := params.get("wstoken").str()
	fn, _ := params.get("wsfunction").str()
	if format, _ := params.get("moodlewsrestformat").str(); format != "json" {
		// The XML answer is not simulated; Moodle's default format is XML.
		http.Error(w, "the simulator answers moodlewsrestformat=json only", http.StatusNotImplemented)
		return
	}
	s.mu.Lock()
	s.calls[fn]++
	s.mu.Unlock()
	if s.cfg.Token != "" && token != s.cfg.Token {
		s.answer(w, nil, moodleException("invalidtoken", "Invalid token - token not found"))
		return
	}
	h, ok := functions[fn]
	if !ok {
		s.answer(w, nil, missingRecord("external_functions"))
		return
	}
	for _, k := range []string{"wstoken", "wsfunction", "moodlewsrestformat"} {
		delete(params.kids, k)
		params.order = slices.DeleteFunc(params.order, func(o string) bool { return o == k })
	}
	s.mu.Lock()
	out, werr := h(s, r.Context(), params)
	s.mu.Unlock()
	s.answer(w, out, werr)
}

func (s *Sim) answer(w http.ResponseWriter, out any, err error) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if err != nil {
		var we *wsError
		if !errors.As(err, &we) {
			we = &wsError{Exception: "moodle_exception", ErrorCode: "generalexceptionmessage", Message: err.Error()}
		}
		cp := *we
		if !s.cfg.Debug {
			cp.DebugInfo = ""
		}
		_ = json.NewEncoder(w).Encode(cp)
		return
	}
	b, merr := json.Marshal(out)
	if merr != nil {
		http.Error(w, merr.Error(), http.StatusInternalServerError)
		return
	}
	_, _ = w.Write(b)
}

type handler func(s *Sim, ctx context.Context, p *node) (any, error)

var functions = map[string]handler{
	"core_user_create_users":                       (*Sim).createUsers,
	"core_user_update_users":                       (*Sim).updateUsers,
	"core_user_delete_users":                       (*Sim).deleteUsers,
	"core_user_get_users_by_field":                 (*Sim).usersByField,
	"core_user_get_users":                          (*Sim).getUsers,
	"core_enrol_get_users_courses":                 (*Sim).usersCourses,
	"core_completion_get_course_completion_status": (*Sim).courseCompletion,
}

// structure checks the keys of a single structure: every required one is
// there, none is unknown (external_api::validate_parameters).
func structure(n *node, required, optional []string) error {
	if n == nil || n.kids == nil {
		return invalidParam("Only arrays accepted. The bad value is: ''")
	}
	for _, k := range required {
		if n.get(k) == nil {
			return invalidParam("Missing required key in single structure: " + k)
		}
	}
	var extra []string
	for _, k := range n.keysOf() {
		if !slices.Contains(required, k) && !slices.Contains(optional, k) {
			extra = append(extra, k)
		}
	}
	if len(extra) > 0 {
		return invalidParam("Unexpected keys (" + strings.Join(extra, ", ") + ") detected in parameter array.")
	}
	return nil
}

var (
	usernameStrict = regexp.MustCompile(`[^-.@_a-z0-9]`)
	tags           = regexp.MustCompile(`<[a-zA-Z/!?][^>]*>`)
	emailPattern   = regexp.MustCompile(`^[-!#$%&'*+\\/0-9=?A-Z^_` + "`" + `a-z{|}~]+(\.[-!#$%&'*+\\/0-9=?A-Z^_` + "`" + `a-z{|}~]+)*@[-!#$%&'*+\\/0-9=?A-Z^_` + "`" + `a-z{|}~]+\.[-!#$%&'*+\\./0-9=?A-Z^_` + "`" + `a-z{|}~]+$`)
)

// cleanUsername is clean_param(PARAM_USERNAME).
func (s *Sim) cleanUsername(v string) string {
	v = strings.ToLower(strings.TrimSpace(v))
	if !s.cfg.ExtendedUsernameChars {
		v = strings.ReplaceAll(v, " ", "")
		v = usernameStrict.ReplaceAllString(v, "")
	}
	return v
}

func validEmail(v string) bool { return emailPattern.MatchString(v) }

// cleanEmail is clean_param(PARAM_EMAIL): the address, or "" if it is none.
func cleanEmail(v string) string {
	if validEmail(v) {
		return v
	}
	return ""
}

// typed checks a leaf against the type it is declared with: a value that
// cleaning would change fails the call (validate_param).
func (s *Sim) typed(field, v string) error {
	var cleaned string
	switch field {
	case "username":
		cleaned = s.cleanUsername(v)
	case "email":
		cleaned = cleanEmail(v)
		if v == "" {
			cleaned = ""
		}
	case "firstname", "lastname", "middlename", "alternatename", "firstnamephonetic", "lastnamephonetic", "city":
		// PARAM_NOTAGS: strip_tags.
		cleaned = tags.ReplaceAllString(v, "")
	case "id", "userid", "courseid", "suspended", "createpassword":
		if _, err := strconv.ParseInt(v, 10, 64); err != nil {
			cleaned = "0"
		} else {
			cleaned = v
		}
	default:
		cleaned = v
	}
	if cleaned != v {
		return invalidParam(fmt.Sprintf("%s => Invalid parameter value detected (Invalid external api parameter: the value is \"%s\", the server was expecting \"%s\" type)", field, v, field))
	}
	return nil
}

// userIn is one user of a create or an update, as given.
type userIn struct {
	fields map[string]string
	custom [][2]string // short name, value
}

func (u userIn) has(k string) bool { _, ok := u.fields[k]; return ok }

var (
	createRequired = []string{"username", "firstname", "lastname", "email"}
	createOptional = []string{"createpassword", "auth", "password", "maildisplay", "city", "country", "timezone",
		"description", "firstnamephonetic", "lastnamephonetic", "middlename", "alternatename", "interests", "idnumber",
		"institution", "department", "phone1", "phone2", "address", "lang", "calendartype", "theme", "mailformat",
		"customfields", "preferences"}
	updateRequired = []string{"id"}
	updateOptional = append([]string{"username", "auth", "suspended", "password", "firstname", "lastname", "email",
		"userpicture"}, slices.DeleteFunc(slices.Clone(createOptional), func(k string) bool {
		return k == "createpassword" || k == "password" || k == "auth"
	})...)
)

// users reads and validates the users[] of a create or an update.
func (s *Sim) users(p *node, required, optional []string) ([]userIn, error) {
	if err := structure(p, []string{"users"}, nil); err != nil {
		return nil, err
	}
	var out []userIn
	for _, n := range p.get("users").items() {
		if err := structure(n, required, optional); err != nil {
			return nil, err
		}
		u := userIn{fields: map[string]string{}}
		for _, k := range n.keysOf() {
			switch k {
			case "customfields":
				for _, cf := range n.get(k).items() {
					if err := structure(cf, []string{"type", "value"}, nil); err != nil {
						return nil, err
					}
					t, _ := cf.get("type").str()
					v, _ := cf.get("value").str()
					u.custom = append(u.custom, [2]string{t, v})
				}
			case "preferences":
			default:
				v, ok := n.get(k).str()
				if !ok {
					return nil, invalidParam(k + " => Invalid parameter value detected (Scalar type expected, array or object received.)")
				}
				if err := s.typed(k, v); err != nil {
					return nil, err
				}
				u.fields[k] = v
			}
		}
		out = append(out, u)
	}
	return out, nil
}

// apply lays the fields and custom fields of u over a.
func apply(a *connector.Account, u userIn) {
	set := func(k string, dst *string) {
		if v, ok := u.fields[k]; ok {
			*dst = v
		}
	}
	set("username", &a.UserName)
	set("idnumber", &a.ExternalID)
	set("firstname", &a.Profile.GivenName)
	set("lastname", &a.Profile.FamilyName)
	set("email", &a.Profile.Email)
	set("department", &a.Profile.OrgUnit)
	for _, c := range u.custom {
		// profile_save_data saves the fields the site has; others are dropped.
		if f, ok := customFields[c[0]]; ok {
			*f(&a.Profile) = c[1]
		}
	}
}

// internalAuth are the auth plugins that keep passwords in Moodle.
var internalAuth = map[string]bool{"manual": true, "email": true}

// knownAuth are the auth plugins the simulated site has.
var knownAuth = map[string]bool{"manual": true, "email": true, "nologin": true, "ldap": true, "oauth2": true,
	"saml2": true, "shibboleth": true, "cas": true, "db": true, "lti": true}

// emailTaken reports whether another user than self has email
// (case-insensitively, as create_users and update_users check).
func (s *Sim) emailTaken(email, self string) bool {
	found, _ := s.sb.FindAccounts(context.Background(), connector.AccountFilter{Attr: connector.ByEmail, Value: email})
	for _, a := range found {
		if a.ID != self {
			return true
		}
	}
	return false
}

func (s *Sim) createUsers(ctx context.Context, p *node) (any, error) {
	in, err := s.users(p, createRequired, createOptional)
	if err != nil {
		return nil, err
	}
	// The checks of create_users' loop, against the site and the users before
	// in the batch; nothing is written unless all pass (one transaction).
	names, emails := map[string]bool{}, map[string]bool{}
	accs := make([]connector.Account, len(in))
	for i, u := range in {
		for _, f := range []string{"username", "firstname", "lastname"} {
			if strings.TrimSpace(u.fields[f]) == "" {
				return nil, invalidParam("The field " + f + " cannot be blank")
			}
		}
		un := u.fields["username"]
		if found, _ := s.sb.FindAccounts(ctx, connector.AccountFilter{Attr: connector.ByUserName, Value: un}); len(found) > 0 || names[un] {
			return nil, invalidParam("Username already exists: " + un)
		}
		auth := cmp.Or(u.fields["auth"], "manual")
		if !knownAuth[auth] {
			return nil, invalidParam("Invalid authentication type: " + auth)
		}
		if internalAuth[auth] && u.fields["password"] == "" && (u.fields["createpassword"] == "" || u.fields["createpassword"] == "0") {
			return nil, invalidParam("Invalid password: you must provide a password, or set createpassword.")
		}
		email := u.fields["email"]
		if !validEmail(email) {
			return nil, invalidParam("Email address is invalid: " + email)
		}
		if !s.cfg.AllowAccountsSameEmail && (s.emailTaken(email, "") || emails[strings.ToLower(email)]) {
			return nil, invalidParam("Email address already exists: " + email)
		}
		names[un], emails[strings.ToLower(email)] = true, true
		accs[i].Active = true
		apply(&accs[i], u)
	}
	type created struct {
		ID       int64  `json:"id"`
		Username string `json:"username"`
	}
	out := []created{}
	var done []string
	for _, a := range accs {
		got, err := s.sb.CreateAccount(ctx, a)
		if err != nil {
			for _, id := range done { // roll back
				_ = s.sb.DeleteAccount(context.WithoutCancel(ctx), id)
			}
			if errors.Is(err, connector.ErrConflict) {
				return nil, &wsError{Exception: "dml_write_exception", ErrorCode: "dmlwriteexception", Message: "Error writing to database"}
			}
			return nil, err
		}
		done = append(done, got.ID)
		out = append(out, created{ID: s.idOf(got.ID), Username: got.UserName})
	}
	return out, nil
}

// warningOut is one entry of external_warnings.
type warningOut struct {
	Item        string `json:"item"`
	ItemID      int64  `json:"itemid"`
	WarningCode string `json:"warningcode"`
	Message     string `json:"message"`
}

// existing returns the sandbox account of the user id in u, or the warning
// update_users gives for it.
func (s *Sim) existing(ctx context.Context, u userIn) (connector.Account, int64, *warningOut) {
	id, _ := strconv.ParseInt(u.fields["id"], 10, 64)
	if s.deleted[id] {
		return connector.Account{}, id, &warningOut{Item: "user", ItemID: id, WarningCode: "usernotupdateddeleted", Message: "User is a deleted user"}
	}
	sbID := s.sandboxOf(id)
	a, err := s.sb.GetAccount(ctx, sbID)
	if sbID == "" || err != nil {
		return connector.Account{}, id, &warningOut{Item: "user", ItemID: id, WarningCode: "invaliduserid", Message: "Invalid user ID"}
	}
	return a, id, nil
}

// check runs update_users' checks of u against cur; nil if it may be applied.
func (s *Sim) check(cur connector.Account, id int64, u userIn) *warningOut {
	if email, ok := u.fields["email"]; ok && email != cur.Profile.Email {
		if !validEmail(email) {
			return &warningOut{Item: "user", ItemID: id, WarningCode: "useremailinvalid", Message: "Invalid email address"}
		}
		if !s.cfg.AllowAccountsSameEmail && s.emailTaken(email, cur.ID) {
			return &warningOut{Item: "user", ItemID: id, WarningCode: "useremailduplicate", Message: "Duplicate email address"}
		}
	}
	if un, ok := u.fields["username"]; ok && !strings.EqualFold(un, cur.UserName) {
		found, _ := s.sb.FindAccounts(context.Background(), connector.AccountFilter{Attr: connector.ByUserName, Value: un})
		for _, o := range found {
			if o.ID != cur.ID {
				// The unique index on (mnethostid, username) refuses the write.
				return &warningOut{Item: "user", ItemID: id, WarningCode: "dmlwriteexception", Message: "Error writing to database"}
			}
		}
	}
	return nil
}

// write applies u to cur: the profile if u changes any of it, then suspended.
func (s *Sim) write(ctx context.Context, cur connector.Account, u userIn) error {
	next := cur
	apply(&next, u)
	if next.ExternalID != cur.ExternalID || next.UserName != cur.UserName || next.Profile != cur.Profile {
		next.Version = ""
		if _, err := s.sb.UpdateAccount(ctx, next); err != nil {
			return err
		}
	}
	if v, ok := u.fields["suspended"]; ok {
		if _, err := s.sb.SetActive(ctx, cur.ID, v == "0"); err != nil {
			return err
		}
	}
	return nil
}

func (s *Sim) updateUsers(ctx context.Context, p *node) (any, error) {
	in, err := s.users(p, updateRequired, updateOptional)
	if err != nil {
		return nil, err
	}
	if s.cfg.LegacyUpdate {
		// One transaction: skipped users are skipped silently, a failed write
		// rolls back everything (so nothing is written before all pass).
		type todo struct {
			cur connector.Account
			u   userIn
		}
		var apply []todo
		for _, u := range in {
			cur, id, w := s.existing(ctx, u)
			if w != nil {
				continue
			}
			if w := s.check(cur, id, u); w != nil {
				if w.WarningCode == "dmlwriteexception" {
					return nil, &wsError{Exception: "dml_write_exception", ErrorCode: "dmlwriteexception", Message: "Error writing to database"}
				}
				continue
			}
			apply = append(apply, todo{cur, u})
		}
		for _, t := range apply {
			if err := s.write(ctx, t.cur, t.u); err != nil {
				return nil, err
			}
		}
		return nil, nil
	}
	warnings := []warningOut{}
	for _, u := range in {
		cur, id, w := s.existing(ctx, u)
		if w == nil {
			w = s.check(cur, id, u)
		}
		if w == nil {
			if err := s.write(ctx, cur, u); err != nil {
				w = &warningOut{Item: "user", ItemID: id, WarningCode: "dmlwriteexception", Message: "Error writing to database"}
			}
		}
		if w != nil {
			warnings = append(warnings, *w)
		}
	}
	return map[string]any{"warnings": warnings}, nil
}

func (s *Sim) deleteUsers(ctx context.Context, p *node) (any, error) {
	if err := structure(p, []string{"userids"}, nil); err != nil {
		return nil, err
	}
	var sbIDs []string
	var ids []int64
	for _, n := range p.get("userids").items() {
		v, _ := n.str()
		if err := s.typed("id", v); err != nil {
			return nil, err
		}
		id, _ := strconv.ParseInt(v, 10, 64)
		sbID := s.sandboxOf(id)
		if sbID == "" || s.deleted[id] {
			return nil, missingRecord("user")
		}
		if _, err := s.sb.GetAccount(ctx, sbID); err != nil {
			return nil, missingRecord("user")
		}
		sbIDs, ids = append(sbIDs, sbID), append(ids, id)
	}
	for i, sbID := range sbIDs {
		// delete_user scrubs the record and removes grades, enrolments and
		// completions: the sandbox account and its training go.
		if err := s.sb.DeleteAccount(ctx, sbID); err != nil {
			return nil, missingRecord("user")
		}
		s.deleted[ids[i]] = true
	}
	return nil, nil
}

// userOut is a user as user_get_user_details describes it to an admin.
func (s *Sim) userOut(a connector.Account) map[string]any {
	id := s.idOf(a.ID)
	u := map[string]any{
		"id": id, "username": a.UserName, "firstname": a.Profile.GivenName, "lastname": a.Profile.FamilyName,
		"fullname": strings.TrimSpace(a.Profile.GivenName + " " + a.Profile.FamilyName), "email": a.Profile.Email,
		"auth": "manual", "suspended": !a.Active, "confirmed": true, "lang": "en", "theme": "", "timezone": "99",
		"mailformat": 1, "firstaccess": 0, "lastaccess": 0,
		"profileimageurlsmall": "", "profileimageurl": "",
	}
	if a.ExternalID != "" {
		u["idnumber"] = a.ExternalID
	}
	if a.Profile.OrgUnit != "" {
		u["department"] = a.Profile.OrgUnit
	}
	if tr, err := s.sb.Training(a.ID); err == nil && tr.LastLogin != nil {
		u["firstaccess"], u["lastaccess"] = tr.LastLogin.Unix(), tr.LastLogin.Unix()
	}
	var cfs []map[string]any
	shorts := make([]string, 0, len(customFields))
	for k := range customFields {
		shorts = append(shorts, k)
	}
	slices.Sort(shorts)
	for _, short := range shorts {
		p := a.Profile
		if v := *customFields[short](&p); v != "" {
			cfs = append(cfs, map[string]any{"type": "text", "value": v, "displayvalue": v, "name": short, "shortname": short})
		}
	}
	if len(cfs) > 0 {
		u["customfields"] = cfs
	}
	return u
}

func (s *Sim) sameValue(a, b string) bool {
	if s.cfg.CaseInsensitiveDB {
		return strings.EqualFold(a, b)
	}
	return a == b
}

func (s *Sim) usersByField(ctx context.Context, p *node) (any, error) {
	if err := structure(p, []string{"field", "values"}, nil); err != nil {
		return nil, err
	}
	field, _ := p.get("field").str()
	switch field {
	case "id", "idnumber", "username", "email":
	default:
		return nil, &wsError{Exception: "coding_exception", ErrorCode: "codingerror",
			Message: "Coding error detected, it must be fixed by a programmer: invalid field parameter"}
	}
	var values []string
	for _, n := range p.get("values").items() {
		v, _ := n.str()
		var cleaned string
		switch field {
		case "id":
			if _, err := strconv.ParseInt(v, 10, 64); err == nil {
				cleaned = v
			} else {
				cleaned = "0"
			}
		case "username":
			cleaned = s.cleanUsername(v)
		case "email":
			cleaned = cleanEmail(v)
		default:
			cleaned = v
		}
		if cleaned != v {
			return nil, invalidParam("The field '" + field + "' value is invalid: " + v + "(cleaned value: " + cleaned + ")")
		}
		values = append(values, v)
	}
	found := map[string]connector.Account{}
	for _, v := range values {
		var as []connector.Account
		switch field {
		case "id":
			n, _ := strconv.ParseInt(v, 10, 64)
			if sbID := s.sandboxOf(n); sbID != "" && !s.deleted[n] {
				if a, err := s.sb.GetAccount(ctx, sbID); err == nil {
					as = append(as, a)
				}
			}
		case "idnumber":
			if s.cfg.CaseInsensitiveDB {
				for _, r := range s.sb.Snapshot() {
					if strings.EqualFold(r.Account.ExternalID, v) {
						as = append(as, r.Account)
					}
				}
			} else {
				as, _ = s.sb.FindAccounts(ctx, connector.AccountFilter{Attr: connector.ByExternalID, Value: v})
			}
		case "username":
			as, _ = s.sb.FindAccounts(ctx, connector.AccountFilter{Attr: connector.ByUserName, Value: v})
		case "email":
			cands, _ := s.sb.FindAccounts(ctx, connector.AccountFilter{Attr: connector.ByEmail, Value: v})
			for _, a := range cands {
				if s.sameValue(a.Profile.Email, v) {
					as = append(as, a)
				}
			}
		}
		for _, a := range as {
			found[a.ID] = a
		}
	}
	return s.sorted(found, field), nil
}

// sorted returns the users of found ordered by id, leaving out those whose
// searched field is empty (get_users_by_field returns a user only if the field is).
func (s *Sim) sorted(found map[string]connector.Account, field string) []map[string]any {
	out := []map[string]any{}
	for _, a := range found {
		u := s.userOut(a)
		if v, ok := u[field]; field != "" && (!ok || v == "") {
			continue
		}
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b map[string]any) int { return cmp.Compare(a["id"].(int64), b["id"].(int64)) })
	return out
}

// like is SQL's case-insensitive LIKE with % and _ and \ as escape.
func like(value, pattern string) bool {
	var re strings.Builder
	re.WriteString("(?is)^")
	esc := false
	for _, r := range pattern {
		switch {
		case esc:
			re.WriteString(regexp.QuoteMeta(string(r)))
			esc = false
		case r == '\\':
			esc = true
		case r == '%':
			re.WriteString(".*")
		case r == '_':
			re.WriteString(".")
		default:
			re.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	re.WriteString("$")
	m, err := regexp.MatchString(re.String(), value)
	return err == nil && m
}

func (s *Sim) getUsers(ctx context.Context, p *node) (any, error) {
	if err := structure(p, []string{"criteria"}, nil); err != nil {
		return nil, err
	}
	type crit struct{ key, value string }
	var cs []crit
	warnings := []warningOut{}
	used := map[string]bool{}
	for _, n := range p.get("criteria").items() {
		if err := structure(n, []string{"key", "value"}, nil); err != nil {
			return nil, err
		}
		k, _ := n.get("key").str()
		v, _ := n.get("value").str()
		if used[k] {
			return nil, moodleException("keyalreadyset", "The key "+k+" can only be sent once")
		}
		used[k] = true
		switch k {
		case "id", "idnumber", "username", "email", "auth", "firstname", "lastname":
			cs = append(cs, crit{k, v})
		default:
			warnings = append(warnings, warningOut{Item: k, WarningCode: "invalidfieldparameter",
				Message: "The search key '" + k + "' is not supported, look at the web service documentation"})
		}
	}
	found := map[string]connector.Account{}
	for _, r := range s.sb.Snapshot() {
		a := r.Account
		ok := true
		for _, c := range cs {
			switch c.key {
			case "id":
				ok = ok && strconv.FormatInt(s.idOf(a.ID), 10) == c.value
			case "idnumber":
				ok = ok && s.sameValue(a.ExternalID, c.value)
			case "username":
				ok = ok && s.sameValue(a.UserName, c.value)
			case "auth":
				ok = ok && c.value == "manual"
			case "email":
				ok = ok && like(a.Profile.Email, c.value)
			case "firstname":
				ok = ok && like(a.Profile.GivenName, c.value)
			case "lastname":
				ok = ok && like(a.Profile.FamilyName, c.value)
			}
		}
		if ok {
			found[a.ID] = a
		}
	}
	users := s.sorted(found, "")
	// A user is returned only if every searched field is.
	users = slices.DeleteFunc(users, func(u map[string]any) bool {
		for _, c := range cs {
			if v, ok := u[c.key]; !ok || v == "" {
				return true
			}
		}
		return false
	})
	return map[string]any{"users": users, "warnings": warnings}, nil
}

// trainingOf returns the sandbox training of the user in p's field name.
func (s *Sim) trainingOf(p *node, name string) (int64, sandbox.Training, error) {
	v, _ := p.get(name).str()
	if err := s.typed(name, v); err != nil {
		return 0, sandbox.Training{}, err
	}
	id, _ := strconv.ParseInt(v, 10, 64)
	sbID := s.sandboxOf(id)
	if sbID == "" || s.deleted[id] {
		return 0, sandbox.Training{}, missingRecord("user")
	}
	tr, err := s.sb.Training(sbID)
	if err != nil {
		return 0, sandbox.Training{}, missingRecord("user")
	}
	return id, tr, nil
}

func (s *Sim) usersCourses(_ context.Context, p *node) (any, error) {
	if err := structure(p, []string{"userid"}, []string{"returnusercount"}); err != nil {
		return nil, err
	}
	_, tr, err := s.trainingOf(p, "userid")
	if err != nil {
		return nil, err
	}
	completed := map[string]bool{}
	var names []string
	for _, e := range tr.Enrollments {
		if !slices.Contains(names, e.Course) {
			names = append(names, e.Course)
		}
	}
	for _, c := range tr.Completions {
		completed[c.Course] = true
		if !slices.Contains(names, c.Course) {
			names = append(names, c.Course)
		}
	}
	out := []map[string]any{}
	for _, n := range names {
		progress := 0
		if completed[n] {
			progress = 100
		}
		out = append(out, map[string]any{"id": s.courseID(n), "shortname": n, "fullname": n, "displayname": n,
			"idnumber": "", "visible": 1, "format": "topics", "enablecompletion": true, "completionhascriteria": true,
			"completionusertracked": true, "completed": completed[n], "progress": progress})
	}
	return out, nil
}

func (s *Sim) courseCompletion(_ context.Context, p *node) (any, error) {
	if err := structure(p, []string{"courseid", "userid"}, nil); err != nil {
		return nil, err
	}
	cv, _ := p.get("courseid").str()
	if err := s.typed("courseid", cv); err != nil {
		return nil, err
	}
	cid, _ := strconv.ParseInt(cv, 10, 64)
	name, ok := s.names[cid]
	if !ok {
		return nil, missingRecord("course")
	}
	_, tr, err := s.trainingOf(p, "userid")
	if err != nil {
		return nil, err
	}
	tracked := false
	var last int64
	done := false
	for _, e := range tr.Enrollments {
		tracked = tracked || e.Course == name
	}
	for _, c := range tr.Completions {
		if c.Course == name {
			tracked, done = true, true
			last = max(last, c.CompletedAt.Unix())
		}
	}
	if !tracked {
		return nil, moodleException("nottracked", "User not tracked for completion in this course")
	}
	var tc any
	status := "Not yet completed"
	if done {
		tc, status = last, "Yes"
	}
	return map[string]any{
		"completionstatus": map[string]any{
			"completed": done, "aggregation": 1,
			"completions": []map[string]any{{"type": 1, "title": "Self completion", "status": status, "complete": done,
				"timecompleted": tc, "details": map[string]any{"type": "Self completion", "criteria": "Self completion",
					"requirement": "Marking yourself complete", "status": ""}}},
		},
		"warnings": []warningOut{},
	}, nil
}
