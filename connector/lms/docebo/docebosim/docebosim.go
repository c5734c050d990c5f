// Package docebosim simulates the parts of Docebo's REST API that hrsync uses,
// over the accounts and training history of a sandbox LMS: the OAuth2 token
// endpoint (client credentials, expiring tokens), the user endpoints (list with
// page, page_size and search_text; create; view; update; change_status;
// delete), branches (orgchart), and enrollments. It is built from Docebo's
// public documentation (docs/lms-compat-docebo.md lists each behaviour and its
// source), not from a real tenant.
//
// Answers use Docebo's envelope {"data": ...}; lists have data.items,
// has_more_data, current_page, count and (with get_total_count=1)
// total_count. Errors are {"name", "message", "code", "status"} with the
// HTTP status. A configurable hourly call limit answers 429 with Retry-After,
// and Fail503 makes the next calls answer 503, as Docebo does under overload.
//
// Docebo user ids are numbers. A sandbox whose ids are decimal numbers (see
// SandboxOptions) is served with the same ids; other sandbox ids are given
// numbers from 1,000,000,000 up the first time they are shown, stable for the
// simulator's life.
package docebosim

import (
	"cmp"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/docebo"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
)

// Fields are the additional fields the simulator has, by id: the adapter must
// be given these (docebo.WithFields) to keep every profile field.
var Fields = docebo.Fields{ExternalID: "1", EmployeeNumber: "2", OrgUnit: "3", JobTitle: "4", ManagerID: "5", Locale: "6"}

// fieldTitles names the additional fields as the view shows them.
var fieldTitles = map[int]string{1: "hrsync external id", 2: "Employee number", 3: "Department", 4: "Job title",
	5: "Manager id", 6: "Locale"}

// DefaultClientID is the OAuth2 client id the simulator accepts unless
// Config.ClientID says otherwise.
const DefaultClientID = "hrsync"

// SandboxOptions are the options a sandbox LMS served by the simulator should
// be made with: decimal ids, so that Docebo's user ids are the sandbox's own.
func SandboxOptions() []sandbox.Option {
	return []sandbox.Option{sandbox.WithIDs(strconv.Itoa)}
}

// Config configures the simulator.
type Config struct {
	// ClientID and ClientSecret are the credentials the token endpoint
	// accepts; an empty ClientSecret accepts any client.
	ClientID, ClientSecret string
	// TokenTTL is how long an access token lives (default one hour, as Docebo's).
	TokenTTL time.Duration
	// HourlyLimit is how many API calls (token requests excluded) an hour are
	// answered; beyond it, 429 with Retry-After until the next hour. Zero
	// means no limit. Docebo's documented default is 1,000 an hour.
	HourlyLimit int
	// BranchHold keeps each branch call in flight this long, so that tests can
	// see whether branch calls overlap (BranchOverlaps).
	BranchHold time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Server is the simulator; it is an http.Handler.
type Server struct {
	sb  *sandbox.LMS
	cfg Config
	mux *http.ServeMux

	mu       sync.Mutex
	tokens   map[string]time.Time // access token -> expiry
	toNum    map[string]int64     // sandbox id -> user id, for non-numeric sandbox ids
	toSB     map[int64]string
	nextNum  int64
	window   time.Time // the hour the call count is for
	inWindow int
	fail503  int
	calls    map[string]int // "METHOD pattern" -> calls answered
	branches map[string]*branch
	branchID map[int]*branch
	members  map[string]string // sandbox id -> branch code, once set through the API
	courses  map[string]int

	tokenCalls atomic.Int32

	inBranch atomic.Int32
	overlaps atomic.Int32
}

type branch struct {
	ID   int
	Code string
	Name string
}

// New returns a simulator serving sb.
func New(sb *sandbox.LMS, cfg Config) *Server {
	if cfg.ClientID == "" {
		cfg.ClientID = DefaultClientID
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{sb: sb, cfg: cfg, mux: http.NewServeMux(), tokens: map[string]time.Time{}, toNum: map[string]int64{},
		toSB: map[int64]string{}, nextNum: 1_000_000_000, calls: map[string]int{}, branches: map[string]*branch{},
		branchID: map[int]*branch{}, members: map[string]string{}, courses: map[string]int{}}
	s.mux.HandleFunc("POST /oauth2/token", s.token)
	s.api("GET /manage/v1/user", s.listUsers)
	s.api("POST /manage/v1/user", s.createUser)
	s.api("GET /manage/v1/user/{id}", s.viewUser)
	s.api("PUT /manage/v1/user/{id}", s.updateUser)
	s.api("PUT /manage/v1/user/change_status", s.changeStatus)
	s.api("DELETE /manage/v1/user/delete", s.deleteUsers)
	s.api("POST /manage/v1/user/batch", s.batchImport)
	s.api("GET /learn/v1/enrollments", s.enrollments)
	s.branchAPI("GET /manage/v1/orgchart", s.listBranches)
	s.branchAPI("POST /manage/v1/orgchart", s.createBranch)
	s.branchAPI("POST /manage/v1/orgchart/assign_users", s.assignUsers)
	s.branchAPI("PUT /manage/v1/user/remove_from_branch", s.removeFromBranch)
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Calls returns how many API calls matching pattern ("PUT
// /manage/v1/user/change_status") were answered, whatever the answer; an
// empty pattern counts every API call. Token requests are not API calls.
func (s *Server) Calls(pattern string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if pattern != "" {
		return s.calls[pattern]
	}
	n := 0
	for _, c := range s.calls {
		n += c
	}
	return n
}

// Fail503 makes the next n API calls answer 503 Service Unavailable.
func (s *Server) Fail503(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail503 = n
}

// ExpireTokens revokes every access token issued so far: the next call with
// one is answered 401.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
}

// TokenRequests returns how many token requests were made, granted or not.
func (s *Server) TokenRequests() int { return int(s.tokenCalls.Load()) }

// BranchOverlaps returns how many branch calls arrived while another was in
// flight: Docebo warns that this can corrupt the branch tree.
func (s *Server) BranchOverlaps() int { return int(s.overlaps.Load()) }

// UserID returns the Docebo user id of the sandbox account sbID.
func (s *Server) UserID(sbID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strconv.FormatInt(s.numLocked(sbID), 10)
}

func (s *Server) numLocked(sbID string) int64 {
	if n, err := strconv.ParseInt(sbID, 10, 64); err == nil && n > 0 && n < 1_000_000_000 {
		return n
	}
	if n, ok := s.toNum[sbID]; ok {
		return n
	}
	n := s.nextNum
	s.nextNum++
	s.toNum[sbID], s.toSB[n] = n, sbID
	return n
}

// sandboxID returns the sandbox id of user id, or false.
func (s *Server) sandboxID(userID string) (string, bool) {
	n, err := strconv.ParseInt(strings.TrimSpace(userID), 10, 64)
	if err != nil || n <= 0 {
		return "", false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if sb, ok := s.toSB[n]; ok {
		return sb, true
	}
	if n < 1_000_000_000 {
		return strconv.FormatInt(n, 10), true
	}
	return "", false
}

// api registers an API route behind the token check, the hourly limit and
// the injected overload.
func (s *Server) api(pattern string, h http.HandlerFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if status, msg, retry := s.admit(pattern, r); status != 0 {
			if retry > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(retry))
			}
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			}
			writeError(w, status, msg)
			return
		}
		h(w, r)
	})
}

// branchAPI registers a branch route: as api, and counting overlaps.
func (s *Server) branchAPI(pattern string, h http.HandlerFunc) {
	s.api(pattern, func(w http.ResponseWriter, r *http.Request) {
		if s.inBranch.Add(1) > 1 {
			s.overlaps.Add(1)
		}
		defer s.inBranch.Add(-1)
		if s.cfg.BranchHold > 0 {
			t := time.NewTimer(s.cfg.BranchHold)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
			}
		}
		h(w, r)
	})
}

// admit counts the call and says why it is refused, if it is.
func (s *Server) admit(pattern string, r *http.Request) (status int, msg string, retryAfter int) {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[pattern]++
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	exp, known := s.tokens[strings.TrimSpace(tok)]
	switch {
	case !ok || !known:
		return http.StatusUnauthorized, "Invalid or missing access token", 0
	case !now.Before(exp):
		delete(s.tokens, tok)
		return http.StatusUnauthorized, "The access token provided has expired", 0
	}
	if hour := now.Truncate(time.Hour); !hour.Equal(s.window) {
		s.window, s.inWindow = hour, 0
	}
	s.inWindow++
	if s.cfg.HourlyLimit > 0 && s.inWindow > s.cfg.HourlyLimit {
		return http.StatusTooManyRequests, "Too Many Requests", max(1, int(s.window.Add(time.Hour).Sub(now).Seconds()))
	}
	if s.fail503 > 0 {
		s.fail503--
		return http.StatusServiceUnavailable, "Service temporarily unavailable", 0
	}
	return 0, "", 0
}

// token is POST /oauth2/token with grant_type=client_credentials.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	s.tokenCalls.Add(1)
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	if r.PostForm.Get("grant_type") != "client_credentials" {
		writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	id, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if s.cfg.ClientSecret != "" && (id != s.cfg.ClientID || secret != s.cfg.ClientSecret) {
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	tok := rand.Text()
	s.mu.Lock()
	s.tokens[tok] = s.cfg.Now().Add(s.cfg.TokenTTL)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "token_type": "Bearer",
		"expires_in": int(s.cfg.TokenTTL.Seconds()), "scope": "api"})
}

func writeOAuthError(w http.ResponseWriter, status int, code string) {
	writeJSON(w, status, map[string]string{"error": code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeData(w http.ResponseWriter, data any) {
	writeJSON(w, http.StatusOK, map[string]any{"data": data, "version": "1.0.0", "_links": []any{}})
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"name": http.StatusText(status), "message": msg, "code": 0, "status": status})
}

// writeSandboxError answers a sandbox error with the status Docebo would use:
// a taken username is a 400 whose message says it exists.
func writeSandboxError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, connector.ErrNotFound):
		writeError(w, http.StatusNotFound, "User not found")
	case errors.Is(err, connector.ErrConflict):
		writeError(w, http.StatusBadRequest, "User already exists")
	default:
		writeError(w, http.StatusBadRequest, err.Error())
	}
}

// decode reads a JSON body of at most 4 MiB into v.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<20)).Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "Invalid JSON body: "+err.Error())
		return false
	}
	return true
}

// lenient reads a JSON string or number as text.
func lenient(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}

// boolish reads a JSON boolean, or "1"/"0"/"true"/"false"; def if absent.
func boolish(raw json.RawMessage, def bool) bool {
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		return b
	}
	switch lenient(raw) {
	case "1", "true":
		return true
	case "0", "false":
		return false
	}
	return def
}

// ids reads a list of ids given as numbers or strings.
func ids(raw []json.RawMessage) []string {
	out := make([]string, 0, len(raw))
	for _, r := range raw {
		out = append(out, lenient(r))
	}
	return out
}

const timeLayout = "2006-01-02 15:04:05"

func format(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UTC().Format(timeLayout)
}

// item is a user as GET /manage/v1/user lists it.
func (s *Server) item(a connector.Account, tr sandbox.Training) map[string]any {
	status := "0"
	if a.Active {
		status = "1"
	}
	m := map[string]any{"user_id": s.num(a.ID), "username": a.UserName, "first_name": a.Profile.GivenName,
		"last_name": a.Profile.FamilyName, "email": a.Profile.Email, "status": status, "level": "6",
		"last_access_date": format(tr.LastLogin), "creation_date": format(&a.Created), "language": "english"}
	for id, v := range fieldValues(a) {
		m["field_"+strconv.Itoa(id)] = v
	}
	return m
}

func (s *Server) num(sbID string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.numLocked(sbID)
}

// fieldValues returns a's additional field values by id.
func fieldValues(a connector.Account) map[int]string {
	return map[int]string{1: a.ExternalID, 2: a.Profile.EmployeeNumber, 3: a.Profile.OrgUnit, 4: a.Profile.JobTitle,
		5: a.Profile.ManagerID, 6: a.Profile.Locale}
}

// setField sets additional field id of a; false if there is no such field.
func setField(a *connector.Account, id int, v string) bool {
	switch id {
	case 1:
		a.ExternalID = v
	case 2:
		a.Profile.EmployeeNumber = v
	case 3:
		a.Profile.OrgUnit = v
	case 4:
		a.Profile.JobTitle = v
	case 5:
		a.Profile.ManagerID = v
	case 6:
		a.Profile.Locale = v
	default:
		return false
	}
	return true
}

// listUsers is GET /manage/v1/user: page (from 1), page_size (at most 200),
// search_text (first name, last name, username), sort_attr and sort_dir.
func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	page, size, ok := paging(w, q.Get("page"), q.Get("page_size"))
	if !ok {
		return
	}
	search := strings.ToLower(q.Get("search_text"))
	var recs []sandbox.AccountRecord
	for _, rec := range s.sb.Snapshot() {
		a := rec.Account
		if search == "" || strings.Contains(strings.ToLower(a.UserName), search) ||
			strings.Contains(strings.ToLower(a.Profile.GivenName), search) ||
			strings.Contains(strings.ToLower(a.Profile.FamilyName), search) {
			recs = append(recs, rec)
		}
	}
	key := func(a connector.Account) string { return strings.ToLower(a.Profile.GivenName) }
	switch q.Get("sort_attr") {
	case "username":
		key = func(a connector.Account) string { return strings.ToLower(a.UserName) }
	case "email":
		key = func(a connector.Account) string { return strings.ToLower(a.Profile.Email) }
	case "", "first_name":
	default:
		writeError(w, http.StatusBadRequest, "Invalid sort_attr")
		return
	}
	slices.SortStableFunc(recs, func(a, b sandbox.AccountRecord) int {
		return cmp.Or(cmp.Compare(key(a.Account), key(b.Account)), cmp.Compare(s.num(a.Account.ID), s.num(b.Account.ID)))
	})
	if q.Get("sort_dir") != "asc" { // Docebo's default direction is desc
		slices.Reverse(recs)
	}
	from := min((page-1)*size, len(recs))
	to := min(from+size, len(recs))
	items := make([]map[string]any, 0, to-from)
	for _, rec := range recs[from:to] {
		items = append(items, s.item(rec.Account, rec.Training))
	}
	data := map[string]any{"items": items, "count": len(items), "has_more_data": to < len(recs),
		"current_page": page, "current_page_size": size}
	if q.Get("get_total_count") == "1" {
		data["total_count"] = len(recs)
	}
	writeData(w, data)
}

// paging reads page and page_size (defaults 1 and 200; page_size at most 200).
func paging(w http.ResponseWriter, p, ps string) (page, size int, ok bool) {
	page, size = 1, 200
	var err error
	if p != "" {
		if page, err = strconv.Atoi(p); err != nil || page < 1 {
			writeError(w, http.StatusBadRequest, "Invalid page")
			return 0, 0, false
		}
	}
	if ps != "" {
		if size, err = strconv.Atoi(ps); err != nil || size < 1 || size > 200 {
			writeError(w, http.StatusBadRequest, "Invalid page_size: at most 200")
			return 0, 0, false
		}
	}
	return page, size, true
}

// userFields is the body of POST /manage/v1/user and PUT /manage/v1/user/{id}.
type userFields struct {
	UserID     *string          `json:"userid"`
	Email      *string          `json:"email"`
	Password   *string          `json:"password"`
	FirstName  *string          `json:"firstname"`
	LastName   *string          `json:"lastname"`
	Valid      json.RawMessage  `json:"valid"`
	Additional []additionalItem `json:"additional_fields"`
}

type additionalItem struct {
	ID    json.RawMessage `json:"id"`
	Value json.RawMessage `json:"value"`
}

// apply lays b over a; it returns a message if a field is unknown.
func (b userFields) apply(a *connector.Account) string {
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&a.UserName, b.UserID)
	set(&a.Profile.Email, b.Email)
	set(&a.Profile.GivenName, b.FirstName)
	set(&a.Profile.FamilyName, b.LastName)
	for _, f := range b.Additional {
		id, err := strconv.Atoi(lenient(f.ID))
		if err != nil || !setField(a, id, lenient(f.Value)) {
			return "Invalid additional field id " + lenient(f.ID)
		}
	}
	return ""
}

// createUser is POST /manage/v1/user; userid and password are required.
func (s *Server) createUser(w http.ResponseWriter, r *http.Request) {
	var b userFields
	if !decode(w, r, &b) {
		return
	}
	if b.UserID == nil || *b.UserID == "" || b.Password == nil || *b.Password == "" {
		writeError(w, http.StatusBadRequest, "userid and password are required")
		return
	}
	a := connector.Account{Active: lenient(b.Valid) != "0"}
	if msg := b.apply(&a); msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	got, err := s.sb.CreateAccount(r.Context(), a)
	if err != nil {
		writeSandboxError(w, err)
		return
	}
	writeData(w, map[string]any{"success": true, "user_id": s.num(got.ID)})
}

// resolve returns the sandbox account of the path's {id}, or answers 404.
func (s *Server) resolve(w http.ResponseWriter, r *http.Request) (connector.Account, bool) {
	sbID, ok := s.sandboxID(r.PathValue("id"))
	if !ok {
		writeError(w, http.StatusNotFound, "User not found")
		return connector.Account{}, false
	}
	a, err := s.sb.GetAccount(r.Context(), sbID)
	if err != nil {
		writeSandboxError(w, err)
		return connector.Account{}, false
	}
	return a, true
}

// viewUser is GET /manage/v1/user/{id}: user_data, additional_fields, branches.
func (s *Server) viewUser(w http.ResponseWriter, r *http.Request) {
	a, ok := s.resolve(w, r)
	if !ok {
		return
	}
	tr, _ := s.sb.Training(a.ID)
	ud := s.item(a, tr)
	for k := range ud {
		if strings.HasPrefix(k, "field_") {
			delete(ud, k)
		}
	}
	ud["valid"] = ud["status"]
	delete(ud, "status")
	var afs []map[string]any
	for id, v := range fieldValues(a) {
		afs = append(afs, map[string]any{"id": id, "title": fieldTitles[id], "type": "textfield", "value": v})
	}
	slices.SortFunc(afs, func(x, y map[string]any) int { return cmp.Compare(x["id"].(int), y["id"].(int)) })
	branches := []map[string]any{}
	if b := s.branchOf(a); b != nil {
		branches = append(branches, map[string]any{"id": b.ID, "code": b.Code, "name": b.Name})
	}
	writeData(w, map[string]any{"user_data": ud, "additional_fields": afs, "branches": branches})
}

// updateUser is PUT /manage/v1/user/{id}: the fields given replace the user's;
// the status is not changed here.
func (s *Server) updateUser(w http.ResponseWriter, r *http.Request) {
	a, ok := s.resolve(w, r)
	if !ok {
		return
	}
	var b userFields
	if !decode(w, r, &b) {
		return
	}
	if msg := b.apply(&a); msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	a.Version = ""
	if _, err := s.sb.UpdateAccount(r.Context(), a); err != nil {
		writeSandboxError(w, err)
		return
	}
	writeData(w, map[string]any{"success": true})
}

// changeStatus is PUT /manage/v1/user/change_status {"user_ids": [...],
// "status": 0|1}: many users in one call.
func (s *Server) changeStatus(w http.ResponseWriter, r *http.Request) {
	var b struct {
		UserIDs []json.RawMessage `json:"user_ids"`
		Status  json.RawMessage   `json:"status"`
	}
	if !decode(w, r, &b) {
		return
	}
	st := lenient(b.Status)
	if st != "0" && st != "1" || len(b.UserIDs) == 0 {
		writeError(w, http.StatusBadRequest, "user_ids and status (0 or 1) are required")
		return
	}
	updated, notUpdated := []int64{}, []string{}
	for _, id := range ids(b.UserIDs) {
		sbID, ok := s.sandboxID(id)
		if ok {
			if _, err := s.sb.SetActive(r.Context(), sbID, st == "1"); err == nil {
				updated = append(updated, s.num(sbID))
				continue
			}
		}
		notUpdated = append(notUpdated, id)
	}
	writeData(w, map[string]any{"success": true, "updated_ids": updated, "not_updated_ids": notUpdated})
}

// deleteUsers is DELETE /manage/v1/user/delete {"user_ids": [...]} or
// {"user_names": [...]}.
func (s *Server) deleteUsers(w http.ResponseWriter, r *http.Request) {
	var b struct {
		UserIDs   []json.RawMessage `json:"user_ids"`
		UserNames []string          `json:"user_names"`
	}
	if !decode(w, r, &b) {
		return
	}
	targets := ids(b.UserIDs)
	for _, name := range b.UserNames {
		found, _ := s.sb.FindAccounts(r.Context(), connector.AccountFilter{Attr: connector.ByUserName, Value: name})
		for _, a := range found {
			targets = append(targets, strconv.FormatInt(s.num(a.ID), 10))
		}
	}
	deleted := []int64{}
	for _, id := range targets {
		if sbID, ok := s.sandboxID(id); ok && s.sb.DeleteAccount(r.Context(), sbID) == nil {
			deleted = append(deleted, s.num(sbID))
		}
	}
	writeData(w, map[string]any{"success": true, "deleted_user_ids": deleted})
}

// batchImport is POST /manage/v1/user/batch: one result per item, by
// row_index, as the SDK's ManageUserBatchResponse has it (success, message);
// existing users are an error for their row unless
// options.update_user_info.
func (s *Server) batchImport(w http.ResponseWriter, r *http.Request) {
	var b struct {
		Items   []map[string]json.RawMessage `json:"items"`
		Options struct {
			UpdateUserInfo bool `json:"update_user_info"`
		} `json:"options"`
	}
	if !decode(w, r, &b) {
		return
	}
	if len(b.Items) == 0 || len(b.Items) > 1000 {
		writeError(w, http.StatusBadRequest, "items: between 1 and 1000 users")
		return
	}
	rows := make([]map[string]any, 0, len(b.Items))
	for i, it := range b.Items {
		row := map[string]any{"row_index": i, "success": false}
		a := connector.Account{UserName: lenient(it["username"]), Active: boolish(it["active"], true),
			Profile: connector.Profile{Email: lenient(it["email"]), GivenName: lenient(it["firstname"]), FamilyName: lenient(it["lastname"])}}
		for k, v := range it {
			if id, ok := strings.CutPrefix(k, "field_"); ok {
				n, _ := strconv.Atoi(id)
				setField(&a, n, lenient(v))
			}
		}
		if a.UserName == "" {
			row["message"] = "username is required"
			rows = append(rows, row)
			continue
		}
		// The documented row has no user id: the simulator sends none.
		switch _, err := s.sb.CreateAccount(r.Context(), a); {
		case err != nil && errors.Is(err, connector.ErrConflict):
			row["message"] = "User already exists"
		case err != nil:
			row["message"] = err.Error()
		default:
			row["success"] = true
		}
		rows = append(rows, row)
	}
	writeData(w, rows)
}

// course returns the simulator's id of the course named name.
func (s *Server) course(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.courses[name]
	if !ok {
		id = len(s.courses) + 1
		s.courses[name] = id
	}
	return id
}

// enrollments is GET /learn/v1/enrollments?id_user[]=...: one item per user
// and course, "completed" with course_complete_date (the latest completion)
// once the sandbox has a completion, "subscribed" before.
func (s *Server) enrollments(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	page, size, ok := paging(w, q.Get("page"), q.Get("page_size"))
	if !ok {
		return
	}
	var sbIDs []string
	for _, id := range append(q["id_user[]"], q["id_user"]...) {
		if sbID, ok := s.sandboxID(id); ok {
			sbIDs = append(sbIDs, sbID)
		}
	}
	if len(q["id_user[]"])+len(q["id_user"]) == 0 {
		for _, rec := range s.sb.Snapshot() {
			sbIDs = append(sbIDs, rec.Account.ID)
		}
	}
	var items []map[string]any
	for _, sbID := range sbIDs {
		tr, err := s.sb.Training(sbID)
		if err != nil {
			continue
		}
		type course struct {
			enrolled, done *time.Time
		}
		byCourse := map[string]*course{}
		var order []string
		get := func(name string) *course {
			c, ok := byCourse[name]
			if !ok {
				c = &course{}
				byCourse[name] = c
				order = append(order, name)
			}
			return c
		}
		for _, e := range tr.Enrollments {
			c := get(e.Course)
			if at := e.EnrolledAt; c.enrolled == nil || at.Before(*c.enrolled) {
				c.enrolled = &at
			}
		}
		for _, d := range tr.Completions {
			c := get(d.Course)
			if at := d.CompletedAt; c.done == nil || at.After(*c.done) {
				c.done = &at
			}
			if c.enrolled == nil {
				at := d.CompletedAt
				c.enrolled = &at
			}
		}
		for _, name := range order {
			c := byCourse[name]
			status := "subscribed"
			if c.done != nil {
				status = "completed"
			}
			items = append(items, map[string]any{"id": s.course(name), "name": name, "code": name, "type": "elearning",
				"user_id": s.num(sbID), "status": status, "enroll_begin_date": format(c.enrolled),
				"course_complete_date": format(c.done), "level": "learner"})
		}
	}
	from := min((page-1)*size, len(items))
	to := min(from+size, len(items))
	pageItems := append([]map[string]any{}, items[from:to]...)
	writeData(w, map[string]any{"items": pageItems, "count": to - from,
		"has_more_data": to < len(items), "current_page": page, "current_page_size": size, "total_count": len(items)})
}

// branchOf returns the branch of a: the one set through the API, else the
// sandbox account's Organization (registered as a branch on first sight).
func (s *Server) branchOf(a connector.Account) *branch {
	s.mu.Lock()
	defer s.mu.Unlock()
	code, set := s.members[a.ID]
	if !set {
		code = a.Organization
	}
	if code == "" {
		return nil
	}
	return s.branchLocked(code, code)
}

func (s *Server) branchLocked(code, name string) *branch {
	key := strings.ToLower(code)
	if b, ok := s.branches[key]; ok {
		return b
	}
	b := &branch{ID: len(s.branches) + 1, Code: code, Name: name}
	s.branches[key], s.branchID[b.ID] = b, b
	return b
}

// listBranches is GET /manage/v1/orgchart?search_text=: branches whose code or
// name contains the text.
func (s *Server) listBranches(w http.ResponseWriter, r *http.Request) {
	text := strings.ToLower(r.URL.Query().Get("search_text"))
	s.mu.Lock()
	items := []map[string]any{}
	for _, b := range s.branchID {
		if strings.Contains(strings.ToLower(b.Code), text) || strings.Contains(strings.ToLower(b.Name), text) {
			items = append(items, map[string]any{"id": b.ID, "code": b.Code, "title": b.Name, "name": b.Name})
		}
	}
	s.mu.Unlock()
	slices.SortFunc(items, func(x, y map[string]any) int { return cmp.Compare(x["id"].(int), y["id"].(int)) })
	writeData(w, map[string]any{"items": items, "count": len(items), "has_more_data": false})
}

// createBranch is POST /manage/v1/orgchart {"code", "translations"}.
func (s *Server) createBranch(w http.ResponseWriter, r *http.Request) {
	var b struct {
		Code         string            `json:"code"`
		Translations map[string]string `json:"translations"`
	}
	if !decode(w, r, &b) {
		return
	}
	if b.Code == "" {
		writeError(w, http.StatusBadRequest, "code is required")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.branches[strings.ToLower(b.Code)]; dup {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("Branch code %q already exists", b.Code))
		return
	}
	br := s.branchLocked(b.Code, cmp.Or(b.Translations["english"], b.Code))
	writeData(w, map[string]any{"id": br.ID})
}

// assignUsers is POST /manage/v1/orgchart/assign_users {"branch_id", "user_ids"}.
func (s *Server) assignUsers(w http.ResponseWriter, r *http.Request) {
	var b struct {
		BranchID json.RawMessage   `json:"branch_id"`
		UserIDs  []json.RawMessage `json:"user_ids"`
	}
	if !decode(w, r, &b) {
		return
	}
	id, _ := strconv.Atoi(lenient(b.BranchID))
	var targets []string
	for _, u := range ids(b.UserIDs) {
		if sbID, ok := s.sandboxID(u); ok {
			targets = append(targets, sbID)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	br, ok := s.branchID[id]
	if !ok {
		writeError(w, http.StatusNotFound, "Branch not found")
		return
	}
	for _, sbID := range targets {
		s.members[sbID] = br.Code
	}
	writeData(w, map[string]any{"success": true})
}

// removeFromBranch is PUT /manage/v1/user/remove_from_branch {"branch_ids", "user_ids"}.
func (s *Server) removeFromBranch(w http.ResponseWriter, r *http.Request) {
	var b struct {
		BranchIDs []json.RawMessage `json:"branch_ids"`
		UserIDs   []json.RawMessage `json:"user_ids"`
	}
	if !decode(w, r, &b) {
		return
	}
	for _, u := range ids(b.UserIDs) {
		sbID, ok := s.sandboxID(u)
		if !ok {
			continue
		}
		a, err := s.sb.GetAccount(r.Context(), sbID)
		if err != nil {
			continue
		}
		cur := s.branchOf(a)
		s.mu.Lock()
		for _, bid := range ids(b.BranchIDs) {
			if n, _ := strconv.Atoi(bid); cur != nil && cur.ID == n {
				s.members[sbID] = ""
			}
		}
		s.mu.Unlock()
	}
	writeData(w, map[string]any{"success": true})
}
