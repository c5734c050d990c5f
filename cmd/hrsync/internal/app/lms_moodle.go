package app

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/moodle"
)

// openMoodle builds the Moodle web services adapter (lms.type moodle): the
// site's root URL, a web service token, and where the employee number lives
// (lms.employee_number_field: a standard user field such as institution, or
// profile_field_<shortname>; default profile_field_employeenumber). The
// externalId is always Moodle's idnumber: the only free field Moodle looks
// users up by.
func openMoodle(s LMSSettings) (connector.LMS, error) {
	if s.URL == "" {
		return nil, fmt.Errorf("--lms-url (LMS_URL, or lms.url in the configuration file) is required: the Moodle site's root URL")
	}
	if s.Token == "" {
		return nil, fmt.Errorf("lms.type moodle needs a web service token: --lms-token, LMS_TOKEN, or the variable lms.token_env names")
	}
	if s.ExternalIDField != "" && s.ExternalIDField != "idnumber" {
		return nil, fmt.Errorf("lms.external_id_field %q: Moodle keeps the externalId in idnumber, the only free field its web services look users up by", s.ExternalIDField)
	}
	fields := moodle.DefaultFields
	if s.EmployeeNumberField != "" {
		fields.EmployeeNumber = s.EmployeeNumberField
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.CAFile != "" {
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, fmt.Errorf("lms.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("lms.ca_file %s: no PEM certificate in it", s.CAFile)
		}
		tc.RootCAs = pool
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc, MaxIdleConnsPerHost: 32}}
	return moodle.New(s.URL, s.Token, moodle.WithHTTPClient(hc), moodle.WithTimeout(s.Timeout), moodle.WithFields(fields))
}
