package app

import (
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/docebo"
)

// openDocebo builds the Docebo REST adapter: OAuth2 client credentials
// (lms.client_id, the secret from lms.client_secret_env), the externalId in
// the username or in the additional field lms.external_id_field, the employee
// number in lms.employee_number_field, the organisation unit, job title, manager
// and locale in the additional fields lms.additional_fields names.
func openDocebo(s LMSSettings) (connector.LMS, error) {
	if s.URL == "" {
		return nil, fmt.Errorf("lms.url (or --lms-url, LMS_URL) is required for lms.type docebo: the platform's root, e.g. https://acme.docebosaas.com")
	}
	if s.ClientID == "" || s.ClientSecret == "" {
		return nil, fmt.Errorf("lms.type docebo needs OAuth2 client credentials: lms.client_id, and lms.client_secret_env naming a variable that holds the secret")
	}
	fields, err := docebo.ParseFields(s.AdditionalFields)
	if err != nil {
		return nil, fmt.Errorf("lms.additional_fields: %w", err)
	}
	fields.ExternalID = cmp.Or(s.ExternalIDField, fields.ExternalID)
	fields.EmployeeNumber = cmp.Or(s.EmployeeNumberField, fields.EmployeeNumber)
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.CAFile != "" {
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, fmt.Errorf("lms.ca_file: %w", err)
		}
		tlsConf.RootCAs = x509.NewCertPool()
		if !tlsConf.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("lms.ca_file %s: no PEM certificate in it", s.CAFile)
		}
	}
	hc := &http.Client{Timeout: s.Timeout, Transport: &http.Transport{TLSClientConfig: tlsConf, MaxIdleConnsPerHost: 32}}
	c, err := docebo.New(s.URL, s.ClientID, s.ClientSecret, docebo.WithFields(fields), docebo.WithHTTPClient(hc))
	if err != nil {
		return nil, fmt.Errorf("lms: %w", err)
	}
	return c, nil
}
