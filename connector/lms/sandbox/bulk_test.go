package sandbox_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/connector/lms/scim"
)

func TestDeleteAccounts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a1 := b.create(t, "a1@example.com", "hr:1")
	a2 := b.create(t, "a2@example.com", "hr:2")
	a3 := b.create(t, "a3@example.com", "hr:3")
	if _, err := b.lms.SetActive(t.Context(), a3.ID, false); err != nil {
		t.Fatal(err)
	}
	before := len(b.lms.Ops())
	errs, err := b.lms.DeleteAccounts(t.Context(), []connector.Deletion{
		{ID: a1.ID, Version: a1.Version}, {ID: "nope"}, {ID: a3.ID, Version: a3.Version}, {ID: a2.ID},
	})
	if err != nil || len(errs) != 4 {
		t.Fatalf("DeleteAccounts: %v, %v", errs, err)
	}
	if errs[0] != nil || !errors.Is(errs[1], connector.ErrNotFound) || !errors.Is(errs[2], connector.ErrPrecondition) || errs[3] != nil {
		t.Errorf("DeleteAccounts: %v", errs)
	}
	var deleted []string
	for _, op := range b.lms.Ops()[before:] {
		if op.Kind != sandbox.OpDelete {
			t.Errorf("op %+v", op)
		}
		deleted = append(deleted, op.AccountID)
	}
	if !slices.Equal(deleted, []string{a1.ID, a2.ID}) || b.lms.Count() != 1 {
		t.Errorf("deleted %q, %d left; want a1 and a2 deleted, a3 kept", deleted, b.lms.Count())
	}
}

func TestMaxBulk(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		opts []sandbox.Option
		want int
	}{
		{nil, sandbox.DefaultMaxBulk},
		{[]sandbox.Option{sandbox.WithMaxBulk(2)}, 2},
		{[]sandbox.Option{sandbox.WithMaxBulk(0)}, 0},
	} {
		l := sandbox.New(tc.opts...)
		if got := l.MaxBulkDeletes(t.Context()); got != tc.want {
			t.Errorf("MaxBulkDeletes = %d, want %d", got, tc.want)
		}
		_, err := l.DeleteAccounts(t.Context(), make([]connector.Deletion, tc.want+1))
		if le, ok := errors.AsType[*connector.LMSError](err); !ok || le.Kind != connector.KindInvalid {
			t.Errorf("DeleteAccounts of %d (max %d): %v, want invalid", tc.want+1, tc.want, err)
		}
	}
}

func TestActivityOf(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a1 := b.create(t, "a1@example.com", "hr:1")
	a2 := b.create(t, "a2@example.com", "hr:2")
	login := day0.Add(time.Hour)
	if _, err := b.lms.AddTraining(a1.ID, sandbox.Training{LastLogin: &login, Uploads: 2,
		Completions: []sandbox.Completion{{Course: "c1", CompletedAt: day0}}}); err != nil {
		t.Fatal(err)
	}
	got, err := b.lms.ActivityOf(t.Context(), []string{a2.ID, "nope", a1.ID})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]connector.AccountActivity{
		a1.ID: {Account: a1, Activity: connector.Activity{Known: true, LastLogin: &login, Completions: 1, Uploads: 2}},
		a2.ID: {Account: a2, Activity: connector.Activity{Known: true}},
	}
	if len(got) != len(want) {
		t.Fatalf("ActivityOf: %+v", got)
	}
	for id, w := range want {
		g := got[id]
		if g.Account != w.Account || g.Activity.Known != w.Activity.Known || g.Activity.Completions != w.Activity.Completions ||
			g.Activity.Uploads != w.Activity.Uploads || (g.Activity.LastLogin == nil) != (w.Activity.LastLogin == nil) {
			t.Errorf("ActivityOf[%s] = %+v, want %+v", id, g, w)
		}
	}
	if _, err := b.lms.ActivityOf(t.Context(), make([]string, sandbox.MaxResults+1)); err == nil {
		t.Errorf("ActivityOf of more than MaxActivityBatch ids: no error")
	}
}

// serve serves l with quirks q behind the test token.
func serve(t *testing.T, l *sandbox.LMS, q sandbox.Quirks) *httpBundle {
	t.Helper()
	srv := httptest.NewServer(l.HandlerWith(token, q))
	t.Cleanup(srv.Close)
	return &httpBundle{testBundle: &testBundle{lms: l}, srv: srv}
}

func bulkBody(failOnErrors int, ops ...scim.BulkOperation) string {
	b, _ := json.Marshal(scim.BulkRequest{Schemas: []string{scim.MessageBulkRequest}, FailOnErrors: failOnErrors, Operations: ops})
	return string(b)
}

func del(id, version, bulkID string) scim.BulkOperation {
	return scim.BulkOperation{Method: "DELETE", Path: "/Users/" + url.PathEscape(id), Version: version, BulkID: bulkID}
}

func TestHandlerBulk(t *testing.T) {
	t.Parallel()
	b := setupHTTP(t)
	a1 := b.testBundle.create(t, "a1@example.com", "hr:1")
	a2 := b.testBundle.create(t, "a2@example.com", "hr:2")
	a3 := b.testBundle.create(t, "a3@example.com", "hr:3")
	if _, err := b.lms.SetActive(t.Context(), a3.ID, false); err != nil {
		t.Fatal(err)
	}
	var resp scim.BulkResponse
	b.do(t, "POST", "/scim/v2/Bulk", bulkBody(0,
		del(a1.ID, a1.Version, "one"), del("nope", "", "two"), del(a3.ID, a3.Version, "three"), del(a2.ID, "", ""),
		scim.BulkOperation{Method: "GET", Path: "/Users", BulkID: "five"},
		scim.BulkOperation{Method: "DELETE", Path: "/Groups/x"},
	)).want(t, http.StatusOK, &resp)
	if len(resp.Schemas) != 1 || resp.Schemas[0] != scim.MessageBulkResponse || len(resp.Operations) != 6 {
		t.Fatalf("response %+v", resp)
	}
	for i, w := range []struct {
		status, bulkID, location, scimType string
	}{
		{"204", "one", a1.ID, ""}, {"404", "two", "nope", ""}, {"412", "three", a3.ID, ""}, {"204", "", a2.ID, ""},
		{"405", "five", "", ""}, {"400", "", "", scim.ErrInvalidPath},
	} {
		op := resp.Operations[i]
		if op.Status != w.status || op.BulkID != w.bulkID {
			t.Errorf("operation %d: %+v, want status %s, bulkId %q", i, op, w.status, w.bulkID)
		}
		if w.location != "" && op.Location != b.srv.URL+"/scim/v2/Users/"+w.location {
			t.Errorf("operation %d: location %q", i, op.Location)
		}
		if w.status[0] != '2' {
			var e scim.Error
			if err := json.Unmarshal(op.Response, &e); err != nil || e.Status != w.status || e.ScimType != w.scimType || e.Detail == "" {
				t.Errorf("operation %d: response %s", i, op.Response)
			}
		}
	}
	if b.lms.Count() != 1 {
		t.Errorf("%d accounts left, want a3", b.lms.Count())
	}
}

func TestHandlerBulkFailOnErrors(t *testing.T) {
	t.Parallel()
	b := setupHTTP(t)
	a1 := b.testBundle.create(t, "a1@example.com", "hr:1")
	a2 := b.testBundle.create(t, "a2@example.com", "hr:2")
	var resp scim.BulkResponse
	b.do(t, "POST", "/scim/v2/Bulk", bulkBody(1, del(a1.ID, "", "1"), del("nope", "", "2"), del(a2.ID, "", "3"))).
		want(t, http.StatusOK, &resp)
	if len(resp.Operations) != 2 || resp.Operations[1].Status != "404" {
		t.Errorf("failOnErrors 1: %+v, want the first two results", resp.Operations)
	}
	if _, err := b.lms.GetAccount(t.Context(), a2.ID); err != nil {
		t.Errorf("the operation after the failure was performed: %v", err)
	}
}

func TestHandlerBulkLimits(t *testing.T) {
	t.Parallel()
	b := serve(t, sandbox.New(sandbox.WithMaxBulk(2)), sandbox.Quirks{})
	var c scim.ServiceProviderConfig
	b.do(t, "GET", "/scim/v2/ServiceProviderConfig", "").want(t, http.StatusOK, &c)
	if c.Bulk != (scim.BulkConfig{Supported: true, MaxOperations: 2, MaxPayloadSize: 1 << 20}) {
		t.Errorf("bulk %+v", c.Bulk)
	}
	b.do(t, "POST", "/scim/v2/Bulk", bulkBody(0, del("a", "", ""), del("b", "", ""), del("c", "", ""))).
		wantError(t, http.StatusRequestEntityTooLarge, "")
	big := bulkBody(0, scim.BulkOperation{Method: "DELETE", Path: "/Users/" + strings.Repeat("x", 1<<20)})
	b.do(t, "POST", "/scim/v2/Bulk", big).wantError(t, http.StatusRequestEntityTooLarge, "")
	b.do(t, "POST", "/scim/v2/Bulk", `{"schemas":["nope"],"Operations":[]}`).wantError(t, http.StatusBadRequest, scim.ErrInvalidSyntax)
	b.do(t, "GET", "/scim/v2/Bulk", "").wantError(t, http.StatusMethodNotAllowed, "")

	for name, nb := range map[string]*httpBundle{
		"Quirk":    serve(t, sandbox.New(), sandbox.Quirks{NoBulk: true}),
		"Option":   serve(t, sandbox.New(sandbox.WithMaxBulk(0)), sandbox.Quirks{}),
		"QuirkAll": serve(t, sandbox.New(), sandbox.Quirks{NoBulk: true, NoETags: true}),
	} {
		var c scim.ServiceProviderConfig
		nb.do(t, "GET", "/scim/v2/ServiceProviderConfig", "").want(t, http.StatusOK, &c)
		if c.Bulk.Supported {
			t.Errorf("%s: bulk %+v", name, c.Bulk)
		}
		nb.do(t, "POST", "/scim/v2/Bulk", bulkBody(0, del("a", "", ""))).wantError(t, http.StatusNotImplemented, "")
	}
}

func TestHandlerBulkQuirks(t *testing.T) {
	t.Parallel()
	l := sandbox.New()
	b := serve(t, l, sandbox.Quirks{NoETags: true, GoneIs500: true, NoLocation: true})
	a := b.testBundle.create(t, "a@example.com", "")
	var resp scim.BulkResponse
	b.do(t, "POST", "/scim/v2/Bulk", bulkBody(0, del(a.ID, `W/"99"`, ""), del("nope", "", ""))).want(t, http.StatusOK, &resp)
	if len(resp.Operations) != 2 || resp.Operations[0].Status != "204" || resp.Operations[1].Status != "500" ||
		resp.Operations[0].Location != "" {
		t.Errorf("NoETags ignores the version, GoneIs500 answers 500, NoLocation leaves it out: %+v", resp.Operations)
	}
}

func TestHandlerFilterOr(t *testing.T) {
	t.Parallel()
	b := setupHTTP(t)
	var ids []string
	for i := range 4 {
		ids = append(ids, b.testBundle.create(t, fmt.Sprintf("u%d@example.com", i), fmt.Sprintf("hr:%d", i)).ID)
	}
	if err := b.lms.RecordLogin(ids[2], day0); err != nil {
		t.Fatal(err)
	}
	for f, want := range map[string][]string{
		scim.IDFilter([]string{ids[2], "nope", ids[0]}):                          {ids[0], ids[2]},
		`id eq "` + ids[3] + `" OR userName eq "U1@example.com"`:                 {ids[1], ids[3]},
		`externalId eq "hr:0" or externalId eq "hr:0" or id eq "` + ids[0] + `"`: {ids[0]},
		`id eq "NOPE"`: {},
	} {
		var lr scim.ListResponse
		b.do(t, "GET", "/scim/v2/Users?filter="+url.QueryEscape(f), "").want(t, http.StatusOK, &lr)
		var got []string
		for _, u := range lr.Resources {
			got = append(got, u.ID)
			if u.Training == nil {
				t.Errorf("%s: user %s without the training extension", f, u.ID)
			} else if (u.Training.LastLogin != nil) != (u.ID == ids[2]) {
				t.Errorf("%s: user %s has training %+v", f, u.ID, u.Training)
			}
		}
		if !slices.Equal(got, want) && (len(got) != 0 || len(want) != 0) || lr.TotalResults != len(want) {
			t.Errorf("filter %s: %q (total %d), want %q", f, got, lr.TotalResults, want)
		}
	}
	cs := serve(t, b.lms, sandbox.Quirks{CaseSensitiveNames: true})
	cs.do(t, "GET", "/scim/v2/Users?filter="+url.QueryEscape(`id eq "a" or ID eq "b"`), "").wantError(t, http.StatusBadRequest, scim.ErrInvalidFilter)
	cs.do(t, "GET", "/scim/v2/Users?filter="+url.QueryEscape(`id eq "a" or id eq "b"`), "").want(t, http.StatusOK, nil)
}
