package moodle

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/hrsync/hrsync/connector"
)

// CustomFieldPrefix marks a custom user profile field in Fields, as Moodle's
// own user upload names them: "profile_field_jobtitle" is the field whose
// short name is "jobtitle".
const CustomFieldPrefix = "profile_field_"

// Fields says where the profile fields that Moodle has no field of their own
// for are kept. Each is the name of a standard user field that
// core_user_create_users and core_user_update_users take (standardFields), a
// custom user profile field as CustomFieldPrefix + its short name, or "" for
// not kept at all. Email, given and family name are Moodle's email, firstname
// and lastname; the externalId is idnumber.
type Fields struct {
	EmployeeNumber string
	OrgUnit        string
	JobTitle       string
	ManagerID      string
	Locale         string
}

// DefaultFields: the org unit in Moodle's department; the employee number, job
// title, manager id and locale in custom profile fields that the site's admin
// creates (Site administration > Users > User profile fields) with these short
// names. Locale is not Moodle's lang: that takes only the codes of installed
// language packs ("en", "de"), not "en-GB".
var DefaultFields = Fields{
	EmployeeNumber: CustomFieldPrefix + "employeenumber",
	OrgUnit:        "department",
	JobTitle:       CustomFieldPrefix + "jobtitle",
	ManagerID:      CustomFieldPrefix + "managerid",
	Locale:         CustomFieldPrefix + "locale",
}

// standardFields are the free-text user fields the create and update functions
// take that a profile field may be kept in.
var standardFields = map[string]bool{
	"department": true, "institution": true, "phone1": true, "phone2": true, "address": true,
	"city": true, "middlename": true, "alternatename": true, "firstnamephonetic": true, "lastnamephonetic": true,
}

// validate checks every name of f.
func (f Fields) validate() error {
	seen := map[string]string{}
	for _, e := range f.entries() {
		n := e.name
		if n == "" {
			continue
		}
		if short, ok := strings.CutPrefix(n, CustomFieldPrefix); ok {
			if short == "" || strings.Trim(short, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != "" {
				return fmt.Errorf("moodle: field for %s: %q is not a custom profile field's short name (letters, digits, _ and -)", e.of, short)
			}
		} else if !standardFields[n] {
			return fmt.Errorf("moodle: field for %s: %q is neither a standard user field the web services write (department, institution, phone1, phone2, address, city, middlename, alternatename, firstnamephonetic, lastnamephonetic) nor %s<shortname>", e.of, n, CustomFieldPrefix)
		}
		if other, dup := seen[n]; dup {
			return fmt.Errorf("moodle: %s and %s are both kept in %q", other, e.of, n)
		}
		seen[n] = e.of
	}
	return nil
}

type fieldEntry struct {
	of   string // the profile field, as connector.ProfileFields names it
	name string
	get  func(p *connector.Profile) *string
}

func (f Fields) entries() []fieldEntry {
	return []fieldEntry{
		{"employee_number", f.EmployeeNumber, func(p *connector.Profile) *string { return &p.EmployeeNumber }},
		{"org_unit", f.OrgUnit, func(p *connector.Profile) *string { return &p.OrgUnit }},
		{"job_title", f.JobTitle, func(p *connector.Profile) *string { return &p.JobTitle }},
		{"manager_id", f.ManagerID, func(p *connector.Profile) *string { return &p.ManagerID }},
		{"locale", f.Locale, func(p *connector.Profile) *string { return &p.Locale }},
	}
}

// Moodle requires a first name, a last name and a valid email address on every
// user (core_user_create_users refuses blanks). An account that has none gets
// these placeholders, and they read back as empty.
const (
	// NoName stands in for an empty given or family name.
	NoName = "-"
	// NoEmailDomain is the domain of the address that stands in for an empty
	// email: .invalid is reserved (RFC 6761 §6.4), so no real address has it.
	NoEmailDomain = "hrsync.invalid"
)

// noEmail is the placeholder address of the user userName: unique per
// userName, as Moodle by default wants every email to be.
func noEmail(userName string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(userName)))
	return "nomail-" + hex.EncodeToString(sum[:8]) + "@" + NoEmailDomain
}

func isNoEmail(email string) bool {
	return strings.HasSuffix(strings.ToLower(email), "@"+NoEmailDomain)
}

func orNoName(s string) string {
	if strings.TrimSpace(s) == "" {
		return NoName
	}
	return s
}

func fromNoName(s string) string {
	if s == NoName {
		return ""
	}
	return s
}
