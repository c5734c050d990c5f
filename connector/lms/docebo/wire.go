package docebo

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hrsync/hrsync/connector"
)

// UserNameField as Fields.ExternalID keeps hrsync's externalId in the Docebo
// username: the two are then one value.
const UserNameField = "username"

// Fields says where hrsync's externalId and the profile fields Docebo has no
// column for live: in the username (ExternalID only) or in an additional field,
// named by its numeric id ("12", or "field_12" as the API spells it). A profile
// field with no id is not kept: it is never written and reads back empty.
// Email, given and family name are Docebo's own columns.
type Fields struct {
	ExternalID     string
	EmployeeNumber string
	OrgUnit        string
	JobTitle       string
	ManagerID      string
	Locale         string
}

// normalize returns f with every id reduced to its digits and ExternalID
// defaulting to the username.
func (f Fields) normalize() Fields {
	trim := func(s string) string { return strings.TrimPrefix(strings.TrimSpace(s), "field_") }
	f.ExternalID = strings.TrimSpace(f.ExternalID)
	if f.ExternalID == "" {
		f.ExternalID = UserNameField
	}
	if f.ExternalID != UserNameField {
		f.ExternalID = trim(f.ExternalID)
	}
	f.EmployeeNumber, f.OrgUnit, f.JobTitle = trim(f.EmployeeNumber), trim(f.OrgUnit), trim(f.JobTitle)
	f.ManagerID, f.Locale = trim(f.ManagerID), trim(f.Locale)
	return f
}

func (f *Fields) validate() error {
	*f = f.normalize()
	seen := map[string]string{}
	for _, p := range f.profile() {
		if *p.id == "" || *p.id == UserNameField && p.name == "external_id_field" {
			continue
		}
		if n, err := strconv.Atoi(*p.id); err != nil || n <= 0 {
			return fmt.Errorf("docebo: %s %q: want %q or an additional field id such as 12 or field_12", p.name, *p.id, UserNameField)
		}
		if other, dup := seen[*p.id]; dup {
			return fmt.Errorf("docebo: %s and %s both name additional field %s", other, p.name, *p.id)
		}
		seen[*p.id] = p.name
	}
	return nil
}

type fieldRef struct {
	name string
	id   *string
	get  func(a *connector.Account) *string
}

// profile lists the mapped attributes with where each lives.
func (f *Fields) profile() []fieldRef {
	return []fieldRef{
		{"external_id_field", &f.ExternalID, func(a *connector.Account) *string { return &a.ExternalID }},
		{"employee_number_field", &f.EmployeeNumber, func(a *connector.Account) *string { return &a.Profile.EmployeeNumber }},
		{"org_unit_field", &f.OrgUnit, func(a *connector.Account) *string { return &a.Profile.OrgUnit }},
		{"job_title_field", &f.JobTitle, func(a *connector.Account) *string { return &a.Profile.JobTitle }},
		{"manager_id_field", &f.ManagerID, func(a *connector.Account) *string { return &a.Profile.ManagerID }},
		{"locale_field", &f.Locale, func(a *connector.Account) *string { return &a.Profile.Locale }},
	}
}

// additional returns a's values of the mapped additional fields.
func (f *Fields) additional(a connector.Account) []additionalField {
	var out []additionalField
	for _, p := range f.profile() {
		if *p.id == "" || *p.id == UserNameField {
			continue
		}
		id, _ := strconv.Atoi(*p.id)
		out = append(out, additionalField{ID: id, Value: *p.get(&a)})
	}
	return out
}

// fieldID returns the additional field id that attr lives in, "" for none or
// the username.
func (f *Fields) fieldID(attr connector.FilterAttr) string {
	switch attr {
	case connector.ByExternalID:
		if f.ExternalID != UserNameField {
			return f.ExternalID
		}
	case connector.ByEmployeeNumber:
		return f.EmployeeNumber
	}
	return ""
}

type additionalField struct {
	ID    int    `json:"id"`
	Value string `json:"value"`
}

// userBody is the body of POST /manage/v1/user and PUT /manage/v1/user/{id}.
type userBody struct {
	UserID      string            `json:"userid"`
	Email       string            `json:"email"`
	Password    string            `json:"password,omitempty"`
	FirstName   string            `json:"firstname"`
	LastName    string            `json:"lastname"`
	Valid       *int              `json:"valid,omitempty"`
	ForceChange *int              `json:"force_change,omitempty"`
	Additional  []additionalField `json:"additional_fields,omitempty"`
}

// body returns the create or update body for a. The username is a's userName,
// or its externalId when that lives in the username.
func (c *Client) body(a connector.Account) userBody {
	b := userBody{UserID: c.userNameOf(a), Email: a.Profile.Email, FirstName: a.Profile.GivenName,
		LastName: a.Profile.FamilyName, Additional: c.fields.additional(a)}
	return b
}

func (c *Client) userNameOf(a connector.Account) string {
	if c.fields.ExternalID == UserNameField && a.ExternalID != "" {
		return a.ExternalID
	}
	return a.UserName
}

// user is a Docebo user as the list (data.items[]) and the view
// (data.user_data, data.additional_fields, data.branches) show it. Ids and
// statuses come as numbers or strings, so each is read leniently.
type user struct {
	ID         string
	UserName   string
	Email      string
	FirstName  string
	LastName   string
	Active     bool
	LastAccess *time.Time
	Created    *time.Time
	Fields     map[string]string // additional field id -> value
	Branches   []branchRef
}

type branchRef struct {
	ID   string
	Code string
	Name string
}

// parseUser reads one list item, or a view's user_data with its additional
// fields and branches.
func parseUser(raw json.RawMessage) (user, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return user{}, err
	}
	if ud, ok := m["user_data"]; ok {
		u, err := parseUser(ud)
		if err != nil {
			return u, err
		}
		var afs []struct {
			ID    json.RawMessage `json:"id"`
			Value json.RawMessage `json:"value"`
		}
		if raw, ok := m["additional_fields"]; ok {
			_ = json.Unmarshal(raw, &afs)
		}
		for _, f := range afs {
			u.Fields[lenientString(f.ID)] = lenientString(f.Value)
		}
		var brs []map[string]json.RawMessage
		if raw, ok := m["branches"]; ok {
			_ = json.Unmarshal(raw, &brs)
		}
		for _, b := range brs {
			u.Branches = append(u.Branches, branchRef{ID: lenientString(b["id"]), Code: lenientString(b["code"]),
				Name: lenientString(b["name"])})
		}
		return u, nil
	}
	u := user{Fields: map[string]string{}}
	u.ID = lenientString(m["user_id"])
	if u.ID == "" {
		u.ID = lenientString(m["id"])
	}
	u.UserName = lenientString(m["username"])
	u.Email = lenientString(m["email"])
	u.FirstName = lenientString(m["first_name"])
	u.LastName = lenientString(m["last_name"])
	status, ok := m["status"]
	if !ok {
		status = m["valid"]
	}
	u.Active = lenientString(status) == "1" || lenientString(status) == "true"
	u.LastAccess = parseTime(lenientString(m["last_access_date"]))
	u.Created = parseTime(lenientString(m["creation_date"]))
	for k, v := range m {
		if id, ok := strings.CutPrefix(k, "field_"); ok {
			u.Fields[id] = lenientString(v)
		}
	}
	if u.ID == "" {
		return u, fmt.Errorf("user without user_id")
	}
	return u, nil
}

// lenientString reads a JSON string, number or boolean as text; null and
// anything else as "".
func lenientString(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		if b {
			return "1"
		}
		return "0"
	}
	return ""
}

// docebo's date format: UTC "2006-01-02 15:04:05"; RFC 3339 is read too.
const timeLayout = "2006-01-02 15:04:05"

func parseTime(s string) *time.Time {
	if s == "" {
		return nil
	}
	for _, layout := range []string{timeLayout, time.RFC3339, "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return &t
		}
	}
	return nil
}

// account turns a Docebo user into an account, reading the mapped fields.
func (c *Client) account(u user) connector.Account {
	a := connector.Account{ID: u.ID, UserName: u.UserName, Active: u.Active,
		Profile: connector.Profile{Email: u.Email, GivenName: u.FirstName, FamilyName: u.LastName}}
	for _, p := range c.fields.profile() {
		switch *p.id {
		case "":
		case UserNameField:
			*p.get(&a) = u.UserName
		default:
			*p.get(&a) = u.Fields[*p.id]
		}
	}
	if u.Created != nil {
		a.Created = *u.Created
	}
	if len(u.Branches) > 0 {
		a.Organization = cmpOr(u.Branches[0].Code, u.Branches[0].Name)
	}
	return a
}

// ParseFields reads Fields from "external_id=12,employee_number=13,org_unit=14,
// job_title=15,manager_id=16,locale=17" (any subset; external_id may be
// "username"). An empty string is the default: the externalId in the username,
// no profile field beyond Docebo's own.
func ParseFields(s string) (Fields, error) {
	var f Fields
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		var dst *string
		switch strings.TrimSpace(k) {
		case "external_id":
			dst = &f.ExternalID
		case "employee_number":
			dst = &f.EmployeeNumber
		case "org_unit":
			dst = &f.OrgUnit
		case "job_title":
			dst = &f.JobTitle
		case "manager_id":
			dst = &f.ManagerID
		case "locale":
			dst = &f.Locale
		}
		if !ok || dst == nil {
			return Fields{}, fmt.Errorf("docebo fields: %q: want external_id, employee_number, org_unit, job_title, manager_id or locale = a field id", part)
		}
		*dst = strings.TrimSpace(v)
	}
	return f, f.validate()
}
