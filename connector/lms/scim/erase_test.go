package scim_test

import (
	"bytes"
	"encoding/json"
	"errors"
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

// trainingSpy serves a sandbox with quirks over HTTP and records every request
// (method, path, If-Match and body). intercept, if set, may answer a request
// itself (it returns true) instead of the sandbox.
type trainingSpy struct {
	lms    *sandbox.LMS
	client *scim.Client

	mu   sync.Mutex
	reqs []spiedRequest
}

type spiedRequest struct {
	method, path, ifMatch string
	body                  []byte
}

func newTrainingSpy(t *testing.T, q sandbox.Quirks, intercept func(w http.ResponseWriter, r spiedRequest) bool) *trainingSpy {
	t.Helper()
	s := &trainingSpy{lms: sandbox.New()}
	inner := s.lms.HandlerWith(token, q)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		sr := spiedRequest{method: r.Method, path: strings.TrimPrefix(r.URL.Path, sandbox.BasePath), ifMatch: r.Header.Get("If-Match"), body: body}
		s.mu.Lock()
		s.reqs = append(s.reqs, sr)
		s.mu.Unlock()
		if intercept != nil && intercept(w, sr) {
			return
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	s.client = mustNew(t, srv.URL+sandbox.BasePath, scim.WithBearerToken(token), scim.WithHTTPClient(srv.Client()))
	return s
}

// userRequests returns the "METHOD /path" of the requests to /Users/..., in order.
func (s *trainingSpy) userRequests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, r := range s.reqs {
		if strings.HasPrefix(r.path, "/Users/") {
			out = append(out, r.method+" "+r.path)
		}
	}
	return out
}

func (s *trainingSpy) patches() []spiedRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []spiedRequest
	for _, r := range s.reqs {
		if r.method == http.MethodPatch {
			out = append(out, r)
		}
	}
	return out
}

// trainedAccount creates an account in the sandbox with a login, an enrollment
// and a completion.
func trainedAccount(t *testing.T, l *sandbox.LMS) connector.Account {
	t.Helper()
	a, err := l.CreateAccount(t.Context(), connector.Account{ExternalID: "hr:e1", UserName: "erased-1@erased.invalid", Active: false,
		Profile: connector.Profile{Email: "erased-1@erased.invalid", GivenName: "Erased", FamilyName: "Erased"}})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	if _, err := l.AddTraining(a.ID, sandbox.Training{LastLogin: &at, Uploads: 2, Rewards: 1,
		Enrollments: []sandbox.Enrollment{{Course: "safety-101", EnrolledAt: at}},
		Completions: []sandbox.Completion{{Course: "safety-101", CompletedAt: at.Add(time.Hour)}}}); err != nil {
		t.Fatal(err)
	}
	return a
}

func hasNoTraining(t *testing.T, l *sandbox.LMS, id string) bool {
	t.Helper()
	tr, err := l.Training(id)
	if err != nil {
		t.Fatal(err)
	}
	return !tr.HasActivity()
}

// TestDeleteTraining deletes an account's learning records over HTTP: one
// conditional PATCH that removes the training extension between two reads; the
// account stays as it was, and a second call finds nothing to remove.
func TestDeleteTraining(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		q           sandbox.Quirks
		wantIfMatch bool
	}{
		"Plain":              {sandbox.Quirks{}, true},
		"NoETags":            {sandbox.Quirks{NoETags: true}, false},
		"PatchNoContent":     {sandbox.Quirks{PatchNoContent: true}, true},
		"CaseSensitiveNames": {sandbox.Quirks{CaseSensitiveNames: true}, true},
		"NoDiscovery":        {sandbox.Quirks{NoServiceProviderConfig: true}, false},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := newTrainingSpy(t, tc.q, nil)
			ctx := t.Context()
			a := trainedAccount(t, s.lms)
			if err := s.client.DeleteTraining(ctx, a.ID); err != nil {
				t.Fatalf("DeleteTraining: %v", err)
			}
			if !hasNoTraining(t, s.lms, a.ID) {
				tr, _ := s.lms.Training(a.ID)
				t.Fatalf("training after DeleteTraining: %+v", tr)
			}
			got, err := s.lms.GetAccount(ctx, a.ID)
			if err != nil || got.ExternalID != a.ExternalID || got.UserName != a.UserName || got.Profile != a.Profile || got.Active != a.Active {
				t.Fatalf("account after DeleteTraining: %+v, %v; want it kept as %+v", got, err, a)
			}
			want := []string{"GET /Users/" + a.ID, "PATCH /Users/" + a.ID, "GET /Users/" + a.ID}
			if got := s.userRequests(); strings.Join(got, ", ") != strings.Join(want, ", ") {
				t.Errorf("requests %q, want %q", got, want)
			}
			p := s.patches()
			var body scim.PatchOp
			if err := json.Unmarshal(p[0].body, &body); err != nil || len(body.Operations) != 1 ||
				body.Operations[0].Op != "remove" || body.Operations[0].Path != scim.SchemaTrainingUser || body.Operations[0].Value != nil ||
				len(body.Schemas) != 1 || body.Schemas[0] != scim.MessagePatchOp {
				t.Errorf("PATCH body %s (%v)", p[0].body, err)
			}
			if (p[0].ifMatch != "") != tc.wantIfMatch || (tc.wantIfMatch && p[0].ifMatch != a.Version) {
				t.Errorf("If-Match %q, want the version read (%s) only where the server has ETags: %v", p[0].ifMatch, a.Version, tc.wantIfMatch)
			}

			// Again: the records are gone, one read says so, nothing is sent.
			if err := s.client.DeleteTraining(ctx, a.ID); err != nil {
				t.Fatalf("DeleteTraining again: %v", err)
			}
			if n := len(s.patches()); n != 1 {
				t.Errorf("%d PATCH requests after a second DeleteTraining, want still 1", n)
			}
			if err := s.client.DeleteTraining(ctx, "no-such-user"); !errors.Is(err, connector.ErrNotFound) {
				t.Errorf("DeleteTraining of a missing user = %v, want ErrNotFound", err)
			}
		})
	}
}

// TestDeleteTrainingRetriesStaleVersion: a write between the read and the PATCH
// (412) makes the client read again and PATCH with the new version.
func TestDeleteTrainingRetriesStaleVersion(t *testing.T) {
	t.Parallel()
	var s *trainingSpy
	var once sync.Once
	s = newTrainingSpy(t, sandbox.Quirks{}, func(w http.ResponseWriter, r spiedRequest) bool {
		if r.method == http.MethodPatch {
			once.Do(func() {
				// Another writer gets in first.
				id := strings.TrimPrefix(r.path, "/Users/")
				if _, err := s.lms.SetActive(t.Context(), id, false); err != nil {
					t.Error(err)
				}
			})
		}
		return false
	})
	a := trainedAccount(t, s.lms)
	if err := s.client.DeleteTraining(t.Context(), a.ID); err != nil {
		t.Fatalf("DeleteTraining: %v", err)
	}
	p := s.patches()
	if len(p) != 2 || p[0].ifMatch == p[1].ifMatch {
		t.Errorf("PATCH requests %+v; want two, the second on the newer version", p)
	}
	if !hasNoTraining(t, s.lms, a.ID) {
		t.Error("training left after DeleteTraining")
	}
}

// TestDeleteTrainingUnsupported: a server that cannot remove the training
// extension is reported as such (connector.ErrTrainingNotDeletable), and the
// records are untouched; nothing is claimed.
func TestDeleteTrainingUnsupported(t *testing.T) {
	t.Parallel()
	refuse := func(status int, scimType string) func(w http.ResponseWriter, r spiedRequest) bool {
		return func(w http.ResponseWriter, r spiedRequest) bool {
			if r.method != http.MethodPatch || !bytes.Contains(r.body, []byte(scim.SchemaTrainingUser)) {
				return false
			}
			w.Header().Set("Content-Type", scim.MediaType)
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(scim.NewError(status, scimType, "no such attribute"))
			return true
		}
	}
	for name, tc := range map[string]struct {
		q         sandbox.Quirks
		intercept func(w http.ResponseWriter, r spiedRequest) bool
		wantPatch int
	}{
		"NoPatchDiscovered": {q: sandbox.Quirks{NoPatch: true}, wantPatch: 0},
		"NoPatch405":        {q: sandbox.Quirks{NoPatch: true, NoServiceProviderConfig: true}, wantPatch: 1},
		"NoPatch501":        {q: sandbox.Quirks{NoPatch: true, NoPatchStatus: 501, NoServiceProviderConfig: true}, wantPatch: 1},
		"NoTarget":          {intercept: refuse(http.StatusBadRequest, scim.ErrNoTarget), wantPatch: 1},
		"InvalidPath":       {intercept: refuse(http.StatusBadRequest, scim.ErrInvalidPath), wantPatch: 1},
		"Mutability":        {intercept: refuse(http.StatusBadRequest, scim.ErrMutability), wantPatch: 1},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := newTrainingSpy(t, tc.q, tc.intercept)
			a := trainedAccount(t, s.lms)
			err := s.client.DeleteTraining(t.Context(), a.ID)
			if !errors.Is(err, connector.ErrTrainingNotDeletable) {
				t.Fatalf("DeleteTraining = %v, want ErrTrainingNotDeletable", err)
			}
			if hasNoTraining(t, s.lms, a.ID) {
				t.Error("the records were deleted after all")
			}
			if n := len(s.patches()); n != tc.wantPatch {
				t.Errorf("%d PATCH requests, want %d", n, tc.wantPatch)
			}
			res, err := connector.EraseAccount(t.Context(), s.client, a, strings.Repeat("ab", 32), false)
			if err != nil || res.Training != connector.TrainingUnsupported {
				t.Errorf("EraseAccount = %+v, %v; want the records reported not deleted", res, err)
			}
		})
	}
	// Any other refusal is an error, and not "unsupported".
	t.Run("InvalidSyntax", func(t *testing.T) {
		t.Parallel()
		s := newTrainingSpy(t, sandbox.Quirks{}, refuse(http.StatusBadRequest, scim.ErrInvalidSyntax))
		a := trainedAccount(t, s.lms)
		err := s.client.DeleteTraining(t.Context(), a.ID)
		if errors.Is(err, connector.ErrTrainingNotDeletable) || errors.Is(err, connector.ErrTrainingUnknown) {
			t.Fatalf("DeleteTraining = %v, want an error that does not say unsupported", err)
		}
		if le := asLMSError(t, err); le.Kind != connector.KindInvalid || le.Code != scim.ErrInvalidSyntax {
			t.Fatalf("DeleteTraining = %+v, want invalid with scimType %s", le, scim.ErrInvalidSyntax)
		}
		if hasNoTraining(t, s.lms, a.ID) {
			t.Error("the records were deleted after all")
		}
	})
}

// TestDeleteTrainingNotApplied: a server that answers 200 to the removal but
// still reports the records (it ignored the operation) is an error, not success.
func TestDeleteTrainingNotApplied(t *testing.T) {
	t.Parallel()
	s := newTrainingSpy(t, sandbox.Quirks{}, func(w http.ResponseWriter, r spiedRequest) bool {
		if r.method != http.MethodPatch {
			return false
		}
		w.WriteHeader(http.StatusNoContent)
		return true
	})
	a := trainedAccount(t, s.lms)
	err := s.client.DeleteTraining(t.Context(), a.ID)
	if err == nil || errors.Is(err, connector.ErrTrainingNotDeletable) || !strings.Contains(err.Error(), "still carries 1 enrollments, 1 completions") {
		t.Fatalf("DeleteTraining = %v, want the records reported still there", err)
	}
	if _, err := connector.EraseAccount(t.Context(), s.client, a, strings.Repeat("ab", 32), false); err == nil {
		t.Error("EraseAccount succeeded although the records are still there")
	}
}

// TestDeleteTrainingElimity: a third-party server whose users carry no training
// extension does not report learning records, so the client cannot delete them
// or check a deletion: connector.ErrTrainingUnknown, and the user is unchanged.
func TestDeleteTrainingElimity(t *testing.T) {
	t.Parallel()
	c := newElimityClient(t)
	a, err := c.CreateAccount(t.Context(), connector.Account{ExternalID: "hr:e2", UserName: "e2@example.com", Active: true,
		Profile: connector.Profile{Email: "e2@example.com", GivenName: "Eve"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteTraining(t.Context(), a.ID); !errors.Is(err, connector.ErrTrainingUnknown) {
		t.Fatalf("DeleteTraining = %v, want ErrTrainingUnknown", err)
	}
	got, err := c.GetAccount(t.Context(), a.ID)
	if err != nil || got.Profile != a.Profile || got.UserName != a.UserName || !got.Active {
		t.Fatalf("account after DeleteTraining: %+v, %v", got, err)
	}
	res, err := connector.EraseAccount(t.Context(), c, a, strings.Repeat("cd", 32), false)
	if err != nil || res.Training != connector.TrainingUnsupported {
		t.Fatalf("EraseAccount = %+v, %v; want the records reported not deleted", res, err)
	}
}
