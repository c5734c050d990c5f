package scim_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/connector/lms/scim"
)

// spyServer serves h behind a recorder of "METHOD /path" for each request.
type spyServer struct {
	srv    *httptest.Server
	client *scim.Client

	mu   sync.Mutex
	seen []string
}

func newSpyServer(t *testing.T, h http.Handler) *spyServer {
	t.Helper()
	s := &spyServer{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.seen = append(s.seen, r.Method+" "+strings.TrimPrefix(r.URL.Path, sandbox.BasePath))
		s.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(s.srv.Close)
	c, err := scim.New(s.srv.URL+sandbox.BasePath, scim.WithBearerToken(token), scim.WithHTTPClient(s.srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	s.client = c
	return s
}

// take returns the requests seen since the last take, but for discovery.
func (s *spyServer) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, r := range s.seen {
		if r != "GET /ServiceProviderConfig" {
			out = append(out, r)
		}
	}
	s.seen = nil
	return out
}

// rawUser is the user id as the server serves it, without meta.location (which
// names the server's address).
func (s *spyServer) rawUser(t *testing.T, id string) map[string]any {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, s.srv.URL+sandbox.BasePath+"/Users/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := s.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var u map[string]any
	if err := json.Unmarshal(b, &u); err != nil {
		t.Fatalf("GET user %s: %v: %s", id, err, b)
	}
	if m, ok := u["meta"].(map[string]any); ok {
		delete(m, "location")
	}
	return u
}

// TestUpdatePatchEqualsPut: an update over PATCH leaves the stored user exactly as
// the GET+PUT does, for accounts that set, change and clear each managed
// attribute (emails, names, the enterprise fields), active or not, with learning
// records, with and without a version; and it is one request where the server
// answers the PATCH with the user (two with 204).
func TestUpdatePatchEqualsPut(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	full := connector.Account{ExternalID: "hr:w1", UserName: "ada@example.com", Active: true, Organization: "Acme",
		Profile: connector.Profile{Email: "ada@example.com", GivenName: "Ada", FamilyName: "Lovelace", JobTitle: "Eng",
			Locale: "en-GB", EmployeeNumber: "E1", OrgUnit: "R&D", ManagerID: "m-1"}}
	bare := connector.Account{UserName: "bob", Active: true}
	inactive := full
	inactive.Active = false
	seeds := map[string]connector.Account{"full": full, "bare": bare, "inactive": inactive}

	type change func(a *connector.Account)
	changes := map[string]change{
		"same":         func(*connector.Account) {},
		"rename":       func(a *connector.Account) { a.Profile.FamilyName = "Byron" },
		"onlyGiven":    func(a *connector.Account) { a.Profile.GivenName, a.Profile.FamilyName = "Augusta", "" },
		"onlyFamily":   func(a *connector.Account) { a.Profile.GivenName, a.Profile.FamilyName = "", "King" },
		"noName":       func(a *connector.Account) { a.Profile.GivenName, a.Profile.FamilyName = "", "" },
		"newEmail":     func(a *connector.Account) { a.Profile.Email = "ada.king@example.com" },
		"noEmail":      func(a *connector.Account) { a.Profile.Email = "" },
		"rekey":        func(a *connector.Account) { a.ExternalID, a.UserName = "hr:w9", "ada.king@example.com" },
		"noExternalID": func(a *connector.Account) { a.ExternalID = "" },
		"newManager":   func(a *connector.Account) { a.Profile.ManagerID = "m-2" },
		"noManager":    func(a *connector.Account) { a.Profile.ManagerID = "" },
		"noEnterprise": func(a *connector.Account) {
			a.Profile.EmployeeNumber, a.Profile.OrgUnit, a.Profile.ManagerID = "", "", ""
		},
		"onlyEmployeeN": func(a *connector.Account) {
			a.Profile.EmployeeNumber, a.Profile.OrgUnit, a.Profile.ManagerID = "E7", "", ""
		},
		"titleLocale": func(a *connector.Account) { a.Profile.JobTitle, a.Profile.Locale = "", "de-DE" },
		// The caller's Active is not what an update changes; activation is SetActive's.
		"activeFlipped": func(a *connector.Account) { a.Active = !a.Active; a.Profile.JobTitle = "Lead" },
		"everything": func(a *connector.Account) {
			*a = connector.Account{ID: a.ID, Version: a.Version, ExternalID: "hr:w2", UserName: "x@example.com",
				Profile: connector.Profile{Email: "x@example.com", GivenName: "X", JobTitle: "CTO", EmployeeNumber: "E2", ManagerID: "m-3"}}
		},
		"clearAll": func(a *connector.Account) {
			*a = connector.Account{ID: a.ID, Version: a.Version, UserName: a.UserName}
		},
	}
	for name, q := range map[string]sandbox.Quirks{"200": {}, "204": {PatchNoContent: true}, "NoETags": {NoETags: true}} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			opts := []sandbox.Option{sandbox.WithClock(func() time.Time { return t0 })}
			viaPut, viaPatch := sandbox.New(opts...), sandbox.New(opts...)
			putQ := q
			putQ.NoPatch = true
			put := newSpyServer(t, viaPut.HandlerWith(token, putQ))
			patch := newSpyServer(t, viaPatch.HandlerWith(token, q))
			n := 0
			for seedName, seed := range seeds {
				for changeName, ch := range changes {
					for _, versioned := range []bool{true, false} {
						n++
						// The same account, with learning records, in both LMSs.
						var id string
						for _, l := range []*sandbox.LMS{viaPut, viaPatch} {
							a := seed
							a.UserName = fmt.Sprintf("%s-%d", seed.UserName, n)
							if a.ExternalID != "" {
								a.ExternalID = fmt.Sprintf("%s-%d", seed.ExternalID, n)
							}
							got, err := l.CreateAccount(t.Context(), a)
							if err != nil {
								t.Fatal(err)
							}
							if id != "" && got.ID != id {
								t.Fatalf("ids %s and %s: the two sandboxes went apart", id, got.ID)
							}
							id = got.ID
							if err := l.Enroll(id, "safety", t0); err != nil {
								t.Fatal(err)
							}
						}
						cur, err := patch.client.GetAccount(t.Context(), id)
						if err != nil {
							t.Fatal(err)
						}
						want := cur
						ch(&want)
						if want.ExternalID != "" && want.ExternalID != cur.ExternalID {
							want.ExternalID = fmt.Sprintf("%s-%d", want.ExternalID, n)
						}
						if want.UserName != cur.UserName {
							want.UserName = fmt.Sprintf("%s-%d", want.UserName, n)
						}
						if !versioned {
							want.Version = ""
						}
						_, _ = put.take(), patch.take()
						gotPut, errPut := put.client.UpdateAccount(t.Context(), want)
						gotPatch, errPatch := patch.client.UpdateAccount(t.Context(), want)
						what := fmt.Sprintf("%s/%s/versioned=%v", seedName, changeName, versioned)
						if errPut != nil || errPatch != nil {
							t.Fatalf("%s: PUT: %v; PATCH: %v", what, errPut, errPatch)
						}
						if gotPut != gotPatch {
							t.Errorf("%s: returned\nPUT   %+v\nPATCH %+v", what, gotPut, gotPatch)
						}
						wantReqs := []string{"PATCH /Users/" + id}
						if q.PatchNoContent {
							wantReqs = append(wantReqs, "GET /Users/"+id)
						}
						if got := patch.take(); strings.Join(got, ", ") != strings.Join(wantReqs, ", ") {
							t.Errorf("%s: requests %q, want %q", what, got, wantReqs)
						}
						if got := put.take(); len(got) != 2 || !strings.HasPrefix(got[0], "GET ") || !strings.HasPrefix(got[1], "PUT ") {
							t.Errorf("%s: requests without PATCH %q, want GET and PUT", what, got)
						}
						rp, rq := put.rawUser(t, id), patch.rawUser(t, id)
						bp, _ := json.Marshal(rp)
						bq, _ := json.Marshal(rq)
						if string(bp) != string(bq) {
							t.Errorf("%s: stored\nPUT   %s\nPATCH %s", what, bp, bq)
						}
					}
				}
			}
			// Both LMSs logged the same operations: no activation rode along.
			op := func(ops []sandbox.Op) string {
				var s []string
				for _, o := range ops {
					s = append(s, fmt.Sprintf("%s %s", o.Kind, o.AccountID))
				}
				return strings.Join(s, "\n")
			}
			if a, b := op(viaPut.Ops()), op(viaPatch.Ops()); a != b {
				t.Errorf("ops differ:\nPUT\n%s\nPATCH\n%s", a, b)
			}
		})
	}
}

// TestUpdatePatchStale: a versioned PATCH on a newer account is ErrPrecondition,
// and nothing changes; a missing account is ErrNotFound.
func TestUpdatePatchStale(t *testing.T) {
	t.Parallel()
	l := sandbox.New()
	s := newSpyServer(t, l.Handler(token))
	a, err := s.client.CreateAccount(t.Context(), connector.Account{UserName: "ada", Profile: connector.Profile{JobTitle: "Eng"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.SetActive(t.Context(), a.ID, false); err != nil { // behind hrsync's back
		t.Fatal(err)
	}
	_ = s.take()
	stale := a
	stale.Profile.JobTitle = "Lead"
	if _, err := s.client.UpdateAccount(t.Context(), stale); !errors.Is(err, connector.ErrPrecondition) {
		t.Errorf("UpdateAccount on a stale version: %v, want precondition", err)
	}
	if got := s.take(); len(got) != 1 || !strings.HasPrefix(got[0], "PATCH ") {
		t.Errorf("requests %q, want one PATCH", got)
	}
	if got, _ := l.GetAccount(t.Context(), a.ID); got.Profile.JobTitle != "Eng" {
		t.Errorf("after a 412 the title is %q", got.Profile.JobTitle)
	}
	stale.ID = "nobody"
	if _, err := s.client.UpdateAccount(t.Context(), stale); !errors.Is(err, connector.ErrNotFound) {
		t.Errorf("UpdateAccount of a missing account: %v, want not found", err)
	}
}

// TestUpdatePatchFallback: a server that refuses the update's PATCH as
// unsupported gets GET+PUT. 405 and 501 turn PATCH off for SetActive too; a 400
// that names the path turns it off for updates only; a 400 about a value is
// that update's answer, with no PUT and nothing learnt.
func TestUpdatePatchFallback(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		status    int
		scimType  string
		fallback  bool // the update gets GET+PUT
		patchSet  bool // SetActive still PATCHes afterwards
		secondPut bool // a second update goes straight to GET+PUT
	}{
		"405":          {http.StatusMethodNotAllowed, "", true, false, true},
		"501":          {http.StatusNotImplemented, "", true, false, true},
		"InvalidPath":  {http.StatusBadRequest, scim.ErrInvalidPath, true, true, true},
		"NoTarget":     {http.StatusBadRequest, scim.ErrNoTarget, true, true, true},
		"Bare400":      {http.StatusBadRequest, "", true, true, true},
		"InvalidValue": {http.StatusBadRequest, scim.ErrInvalidValue, false, true, false},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			l := sandbox.New()
			inner := l.Handler(token)
			// Refuse every PATCH that is not SetActive's.
			s := newSpyServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodPatch {
					body, _ := io.ReadAll(r.Body)
					if !strings.Contains(string(body), `"path":"active"`) {
						w.Header().Set("Content-Type", scim.MediaType)
						w.WriteHeader(tc.status)
						_ = json.NewEncoder(w).Encode(scim.NewError(tc.status, tc.scimType, "no"))
						return
					}
					r.Body = io.NopCloser(strings.NewReader(string(body)))
				}
				inner.ServeHTTP(w, r)
			}))
			a, err := s.client.CreateAccount(t.Context(), connector.Account{UserName: "ada", Active: true})
			if err != nil {
				t.Fatal(err)
			}
			_ = s.take()
			a.Profile.JobTitle = "Eng"
			got, err := s.client.UpdateAccount(t.Context(), a)
			reqs := s.take()
			if tc.fallback {
				if err != nil || got.Profile.JobTitle != "Eng" {
					t.Fatalf("UpdateAccount = %+v, %v", got, err)
				}
				if want := "PATCH /Users/" + a.ID + ", GET /Users/" + a.ID + ", PUT /Users/" + a.ID; strings.Join(reqs, ", ") != want {
					t.Errorf("requests %q, want %s", reqs, want)
				}
			} else {
				if le, ok := errors.AsType[*connector.LMSError](err); !ok || le.Kind != connector.KindInvalid {
					t.Errorf("UpdateAccount: %v, want invalid", err)
				}
				if len(reqs) != 1 {
					t.Errorf("requests %q, want the PATCH alone", reqs)
				}
			}
			a.Version = ""
			a.Profile.JobTitle = "Lead"
			_, _ = s.client.UpdateAccount(t.Context(), a)
			reqs = s.take()
			if secondPut := len(reqs) == 2 && strings.HasPrefix(reqs[0], "GET ") && strings.HasPrefix(reqs[1], "PUT "); secondPut != tc.secondPut {
				t.Errorf("second update: requests %q, want straight to GET+PUT: %v", reqs, tc.secondPut)
			}
			if _, err := s.client.SetActive(t.Context(), a.ID, false); err != nil {
				t.Fatal(err)
			}
			reqs = s.take()
			if patched := len(reqs) == 1 && strings.HasPrefix(reqs[0], "PATCH "); patched != tc.patchSet {
				t.Errorf("SetActive afterwards: requests %q, want one PATCH: %v", reqs, tc.patchSet)
			}
		})
	}
}

// TestUpdatePatchEqualsPutElimity: the same on a third-party server
// (elimity-com/scim) whose users carry attributes hrsync does not manage
// (nickName, phoneNumbers, name.middleName, the enterprise costCenter and
// manager.displayName): PATCH and GET+PUT leave equal users. An attribute that is
// unassigned and one that is an empty object are the same state (RFC 7643 §2.5),
// and schemas are the server's to list, so the comparison ignores both.
func TestUpdatePatchEqualsPutElimity(t *testing.T) {
	t.Parallel()
	body := `{"schemas":["` + scim.SchemaUser + `","` + scim.SchemaEnterpriseUser + `"],"userName":"ada","externalId":"hr:w1","active":false,
		"nickName":"Countess","title":"Eng","phoneNumbers":[{"value":"+44 1","type":"work"}],
		"name":{"givenName":"Ada","familyName":"Lovelace","middleName":"Augusta"},
		"emails":[{"value":"ada@example.com","type":"work","primary":true},{"value":"ada@home.example","type":"home"}],
		"` + scim.SchemaEnterpriseUser + `":{"employeeNumber":"7","costCenter":"CC-1","department":"R&D","manager":{"value":"m-1","displayName":"Babbage"}}}`
	changes := map[string]func(a *connector.Account){
		"title":   func(a *connector.Account) { a.Profile.JobTitle = "Mathematician" },
		"names":   func(a *connector.Account) { a.Profile.GivenName, a.Profile.FamilyName = "Augusta", "" },
		"email":   func(a *connector.Account) { a.Profile.Email = "ada.king@example.com" },
		"noEmail": func(a *connector.Account) { a.Profile.Email = "" },
		"enterprise": func(a *connector.Account) {
			a.Profile.EmployeeNumber, a.Profile.OrgUnit, a.Profile.ManagerID = "8", "", "m-2"
		},
		"clearAll": func(a *connector.Account) {
			*a = connector.Account{ID: a.ID, UserName: "ada"}
		},
	}
	for name, ch := range changes {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var stored [2]map[string]any
			var patches [2]int
			for i, refusePatch := range []bool{true, false} {
				hs, base := newElimityServer(t)
				resp, err := hs.Client().Post(base+"/Users", scim.MediaType, strings.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				var created map[string]any
				err = json.NewDecoder(resp.Body).Decode(&created)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusCreated {
					t.Fatalf("create: %d %v", resp.StatusCode, err)
				}
				id := created["id"].(string)
				inner := hs.Config.Handler
				front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.Method == http.MethodPatch {
						patches[i]++
						if refusePatch {
							http.Error(w, "no PATCH here", http.StatusNotImplemented)
							return
						}
					}
					inner.ServeHTTP(w, r)
				}))
				t.Cleanup(front.Close)
				c := mustNew(t, front.URL+"/v2", scim.WithHTTPClient(front.Client()))
				a, err := c.GetAccount(t.Context(), id)
				if err != nil {
					t.Fatal(err)
				}
				ch(&a)
				if _, err := c.UpdateAccount(t.Context(), a); err != nil {
					t.Fatal(err)
				}
				resp, err = hs.Client().Get(base + "/Users/" + id)
				if err != nil {
					t.Fatal(err)
				}
				var u map[string]any
				err = json.NewDecoder(resp.Body).Decode(&u)
				resp.Body.Close()
				if err != nil {
					t.Fatal(err)
				}
				delete(u, "id")
				delete(u, "meta")
				delete(u, "schemas")
				for k, v := range u {
					if m, ok := v.(map[string]any); ok && len(m) == 0 {
						delete(u, k)
					}
				}
				stored[i] = u
			}
			bp, _ := json.Marshal(stored[0])
			bq, _ := json.Marshal(stored[1])
			if string(bp) != string(bq) {
				t.Errorf("stored\nPUT   %s\nPATCH %s", bp, bq)
			}
			if patches[1] != 1 {
				t.Errorf("%d PATCH requests, want 1", patches[1])
			}
			for _, want := range []string{`"nickName":"Countess"`, `"+44 1"`, `"costCenter":"CC-1"`, `"active":false`} {
				if !strings.Contains(string(bq), want) {
					t.Errorf("after the PATCH the user lacks %s: %s", want, bq)
				}
			}
		})
	}
}
