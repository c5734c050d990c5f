package app

import (
	"strings"
	"testing"

	"github.com/hrsync/hrsync/connector/lms/docebo"
)

func TestOpenDocebo(t *testing.T) {
	t.Parallel()
	ok := LMSSettings{Type: "docebo", URL: "https://acme.docebosaas.com", ClientID: "hrsync", ClientSecret: "s", ExternalIDField: "field_12",
		EmployeeNumberField: "13"}
	lms, err := openLMS(ok)
	if err != nil {
		t.Fatalf("openLMS: %v", err)
	}
	if _, isDocebo := lms.(*docebo.Client); !isDocebo {
		t.Fatalf("lms.type docebo opened a %T", lms)
	}
	more := ok
	more.AdditionalFields = "org_unit=14, job_title=15, manager_id=16, locale=17"
	if _, err := openLMS(more); err != nil {
		t.Errorf("lms.additional_fields %q: %v", more.AdditionalFields, err)
	}
	for _, tc := range []struct {
		name string
		edit func(s *LMSSettings)
		want string
	}{
		{"NoURL", func(s *LMSSettings) { s.URL = "" }, "lms.url"},
		{"NoClientID", func(s *LMSSettings) { s.ClientID = "" }, "lms.client_id"},
		{"NoSecret", func(s *LMSSettings) { s.ClientSecret = "" }, "lms.client_secret_env"},
		{"BadField", func(s *LMSSettings) { s.ExternalIDField = "extid" }, "external_id_field"},
		{"SameField", func(s *LMSSettings) { s.EmployeeNumberField = "12" }, "both name additional field 12"},
		{"NoCAFile", func(s *LMSSettings) { s.CAFile = "/nonexistent/ca.pem" }, "lms.ca_file"},
		{"BadAdditional", func(s *LMSSettings) { s.AdditionalFields = "department=14" }, "lms.additional_fields"},
		{"AdditionalTwice", func(s *LMSSettings) { s.AdditionalFields = "org_unit=13" }, "13"},
	} {
		s := ok
		tc.edit(&s)
		if _, err := openLMS(s); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one naming %q", tc.name, err, tc.want)
		}
	}
}
