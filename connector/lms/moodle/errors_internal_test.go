package moodle

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hrsync/hrsync/connector"
)

func TestKindOfException(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		want connector.ErrorKind
	}{
		{"InvalidToken", `{"exception":"moodle_exception","errorcode":"invalidtoken","message":"Invalid token - token not found"}`, connector.KindAuth},
		{"FunctionNotInService", `{"exception":"webservice_access_exception","errorcode":"accessexception","message":"Access control exception"}`, connector.KindAuth},
		{"NoCapability", `{"exception":"required_capability_exception","errorcode":"nopermissions","message":"Sorry, but you do not currently have permissions to do that (Create users)."}`, connector.KindAuth},
		{"UnknownFunction", `{"exception":"dml_missing_record_exception","errorcode":"invalidrecord","message":"Can't find data record in database table external_functions."}`, connector.KindInvalid},
		{"InvalidParameter", `{"exception":"invalid_parameter_exception","errorcode":"invalidparameter","message":"Invalid parameter value detected"}`, connector.KindInvalid},
		{"UsernameTakenWithDebug", `{"exception":"invalid_parameter_exception","errorcode":"invalidparameter","message":"Invalid parameter value detected","debuginfo":"Username already exists: anna"}`, connector.KindConflict},
		{"EmailTakenWithDebug", `{"exception":"invalid_parameter_exception","errorcode":"invalidparameter","message":"Invalid parameter value detected","debuginfo":"Email address already exists: a@b.example"}`, connector.KindConflict},
		{"Maintenance", `{"exception":"moodle_exception","errorcode":"sitemaintenance","message":"The site is undergoing maintenance"}`, connector.KindUnavailable},
		{"DatabaseWrite", `{"exception":"dml_write_exception","errorcode":"dmlwriteexception","message":"Error writing to database"}`, connector.KindUnavailable},
		{"CodingError", `{"exception":"coding_exception","errorcode":"codingerror","message":"Coding error detected"}`, connector.KindInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, ok := parseException([]byte(tc.body))
			if !ok {
				t.Fatalf("parseException(%s): not an envelope", tc.body)
			}
			le := exceptionError("op", http.StatusOK, e)
			if le.Kind != tc.want {
				t.Errorf("kind %s, want %s", le.Kind, tc.want)
			}
			if e.DebugInfo != "" && (strings.Contains(le.Error(), e.DebugInfo) || strings.Contains(le.Error(), "anna")) {
				t.Errorf("the error carries the debug information: %v", le)
			}
		})
	}
}

func TestNotAnEnvelope(t *testing.T) {
	t.Parallel()
	for _, b := range []string{`null`, `[]`, `{"users":[],"warnings":[]}`, `<html>`, `{"exception":""}`} {
		if _, ok := parseException([]byte(b)); ok {
			t.Errorf("parseException(%s): an envelope", b)
		}
	}
}

// TestCallClassifies checks what a call makes of each kind of answer, over HTTP.
func TestCallClassifies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		body   string
		want   connector.ErrorKind
		is     error
	}{
		{"EnvelopeWith200", 200, `{"exception":"moodle_exception","errorcode":"invalidtoken","message":"Invalid token - token not found"}`, connector.KindAuth, nil},
		{"EnvelopeWith500", 500, `{"exception":"moodle_exception","errorcode":"invalidtoken","message":"Invalid token - token not found"}`, connector.KindAuth, nil},
		{"Overloaded", 503, `Service Unavailable`, connector.KindUnavailable, nil},
		{"RateLimited", 429, ``, connector.KindRateLimited, nil},
		{"NoEndpoint", 404, `Not Found`, connector.KindAuth, nil},
		{"HTMLWith200", 200, `<html>maintenance</html>`, connector.KindUnavailable, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.status == 429 {
					w.Header().Set("Retry-After", "7")
				}
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			t.Cleanup(srv.Close)
			c, err := New(srv.URL, "tok", WithHTTPClient(srv.Client()))
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.GetAccount(t.Context(), "42")
			var le *connector.LMSError
			if !errors.As(err, &le) || le.Kind != tc.want {
				t.Fatalf("GetAccount: %v, want kind %s", err, tc.want)
			}
			if errors.Is(err, connector.ErrNotFound) {
				t.Errorf("GetAccount: %v matches ErrNotFound: the account would be taken for gone", err)
			}
			if tc.status == 429 && le.RetryAfter.Seconds() != 7 {
				t.Errorf("RetryAfter %v, want 7s", le.RetryAfter)
			}
		})
	}
}

func TestFormEncoding(t *testing.T) {
	t.Parallel()
	fm := &form{}
	setUser(fm, 0, 0, connector.Account{UserName: "Anna@Example.com", ExternalID: "hr:w/1 &x",
		Profile: connector.Profile{Email: "anna@example.com", GivenName: "Anna", EmployeeNumber: "E1", OrgUnit: "Spa"}}, DefaultFields)
	fm.set("7", "userids", 3)
	want := "users%5B0%5D%5Busername%5D=anna%40example.com&users%5B0%5D%5Bfirstname%5D=Anna&users%5B0%5D%5Blastname%5D=-" +
		"&users%5B0%5D%5Bemail%5D=anna%40example.com&users%5B0%5D%5Bidnumber%5D=hr%3Aw%2F1+%26x" +
		"&users%5B0%5D%5Bcustomfields%5D%5B0%5D%5Btype%5D=employeenumber&users%5B0%5D%5Bcustomfields%5D%5B0%5D%5Bvalue%5D=E1" +
		"&users%5B0%5D%5Bdepartment%5D=Spa" +
		"&users%5B0%5D%5Bcustomfields%5D%5B1%5D%5Btype%5D=jobtitle&users%5B0%5D%5Bcustomfields%5D%5B1%5D%5Bvalue%5D=" +
		"&users%5B0%5D%5Bcustomfields%5D%5B2%5D%5Btype%5D=managerid&users%5B0%5D%5Bcustomfields%5D%5B2%5D%5Bvalue%5D=" +
		"&users%5B0%5D%5Bcustomfields%5D%5B3%5D%5Btype%5D=locale&users%5B0%5D%5Bcustomfields%5D%5B3%5D%5Bvalue%5D=" +
		"&userids%5B3%5D=7"
	if got := fm.encode(); got != want {
		t.Errorf("encode:\n got %s\nwant %s", got, want)
	}
	if fm.len() != 15 {
		t.Errorf("len %d, want 15", fm.len())
	}
}

func TestFieldsValidate(t *testing.T) {
	t.Parallel()
	for _, f := range []Fields{
		{EmployeeNumber: "idnumber"},
		{EmployeeNumber: "profile_field_"},
		{EmployeeNumber: "profile_field_a b"},
		{EmployeeNumber: "department", OrgUnit: "department"},
	} {
		if err := f.validate(); err == nil {
			t.Errorf("%+v: no error", f)
		}
	}
	for _, f := range []Fields{DefaultFields, {}, {EmployeeNumber: "institution", OrgUnit: "profile_field_org_unit"}} {
		if err := f.validate(); err != nil {
			t.Errorf("%+v: %v", f, err)
		}
	}
}

func TestPlaceholdersReadBackEmpty(t *testing.T) {
	t.Parallel()
	u := user{ID: 5, Username: "x", FirstName: NoName, LastName: NoName, Email: noEmail("x"), Std: map[string]string{}}
	a := u.account(DefaultFields)
	if a.Profile != (connector.Profile{}) {
		t.Errorf("profile %+v, want empty", a.Profile)
	}
	if noEmail("X") != noEmail("x") || noEmail("x") == noEmail("y") || !validEmail(noEmail("x")) {
		t.Errorf("noEmail: %q %q %q", noEmail("X"), noEmail("x"), noEmail("y"))
	}
}
