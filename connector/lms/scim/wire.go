package scim

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/hrsync/hrsync/connector"
)

// Schema and message URNs (RFC 7643 §8.7, RFC 7644 §3), and hrsync's own read-only
// training extension.
const (
	SchemaUser                  = "urn:ietf:params:scim:schemas:core:2.0:User"
	SchemaEnterpriseUser        = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	SchemaTrainingUser          = "urn:hrsync:params:scim:schemas:extension:training:1.0:User"
	SchemaServiceProviderConfig = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
	MessageListResponse         = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
	MessagePatchOp              = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
	MessageSearchRequest        = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
	MessageError                = "urn:ietf:params:scim:api:messages:2.0:Error"
)

// MediaType is the SCIM content type (RFC 7644 §3.1).
const MediaType = "application/scim+json"

// The scimType values of RFC 7644 §3.12 that hrsync produces or reacts to.
const (
	ErrInvalidFilter = "invalidFilter"
	ErrTooMany       = "tooMany"
	ErrUniqueness    = "uniqueness"
	ErrMutability    = "mutability"
	ErrInvalidSyntax = "invalidSyntax"
	ErrInvalidPath   = "invalidPath"
	ErrNoTarget      = "noTarget"
	ErrInvalidValue  = "invalidValue"
)

// User is a SCIM 2.0 User resource with the enterprise extension and hrsync's
// training extension. Only the attributes hrsync manages are modelled.
type User struct {
	Schemas    []string `json:"schemas"`
	ID         string   `json:"id,omitempty"`
	ExternalID string   `json:"externalId,omitempty"`
	UserName   string   `json:"userName"`
	Name       *Name    `json:"name,omitempty"`
	Title      string   `json:"title,omitempty"`
	Locale     string   `json:"locale,omitempty"`
	// Active is a pointer so that a PUT can leave it out: hrsync changes it only
	// with PATCH (see Client.UpdateAccount).
	Active     *bool           `json:"active,omitempty"`
	Emails     []Email         `json:"emails,omitempty"`
	Enterprise *EnterpriseUser `json:"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User,omitempty"`
	// Training is read-only: servers that keep learning records report them here;
	// clients never send it, and only remove it as a whole (Client.DeleteTraining).
	Training *Training `json:"urn:hrsync:params:scim:schemas:extension:training:1.0:User,omitempty"`
	Meta     *Meta     `json:"meta,omitempty"`
}

// Name is the complex name attribute.
type Name struct {
	GivenName  string `json:"givenName,omitempty"`
	FamilyName string `json:"familyName,omitempty"`
}

// Email is one value of the multi-valued emails attribute.
type Email struct {
	Value   string `json:"value"`
	Type    string `json:"type,omitempty"`
	Primary bool   `json:"primary,omitempty"`
}

// EnterpriseUser is the enterprise extension (RFC 7643 §4.3).
type EnterpriseUser struct {
	EmployeeNumber string   `json:"employeeNumber,omitempty"`
	Organization   string   `json:"organization,omitempty"`
	Department     string   `json:"department,omitempty"`
	Manager        *Manager `json:"manager,omitempty"`
}

// Manager refers to the user's manager by id.
type Manager struct {
	Value string `json:"value,omitempty"`
}

// Training is the read-only extension SchemaTrainingUser: the learning record
// that must survive deactivation and reactivation.
type Training struct {
	LastLogin   *time.Time           `json:"lastLogin,omitempty"`
	Enrollments []TrainingEnrollment `json:"enrollments"`
	Completions []TrainingCompletion `json:"completions"`
	Uploads     int                  `json:"uploads,omitempty"`
	Rewards     int                  `json:"rewards,omitempty"`
}

// TrainingEnrollment is one course enrollment.
type TrainingEnrollment struct {
	Course     string    `json:"course"`
	EnrolledAt time.Time `json:"enrolledAt"`
}

// TrainingCompletion is one course completion.
type TrainingCompletion struct {
	Course      string    `json:"course"`
	CompletedAt time.Time `json:"completedAt"`
}

// Meta is the resource metadata (RFC 7643 §3.1). Version is the resource's ETag.
type Meta struct {
	ResourceType string    `json:"resourceType,omitempty"`
	Created      time.Time `json:"created,omitzero"`
	LastModified time.Time `json:"lastModified,omitzero"`
	Location     string    `json:"location,omitempty"`
	Version      string    `json:"version,omitempty"`
}

// ListResponse is a page of query results (RFC 7644 §3.4.2).
type ListResponse struct {
	Schemas      []string `json:"schemas"`
	TotalResults int      `json:"totalResults"`
	StartIndex   int      `json:"startIndex"`
	ItemsPerPage int      `json:"itemsPerPage"`
	Resources    []User   `json:"Resources"`
}

// SearchRequest is the body of a query sent as POST {endpoint}/.search (RFC 7644
// §3.4.3): the parameters of a GET query (§3.4.2), in the body, so that a long
// filter does not make the URL too long. Its schemas must be
// [MessageSearchRequest]; attributes and excludedAttributes are lists here where
// GET has comma-separated strings. The answer is a ListResponse, as for GET.
type SearchRequest struct {
	Schemas            []string `json:"schemas"`
	Attributes         []string `json:"attributes,omitempty"`
	ExcludedAttributes []string `json:"excludedAttributes,omitempty"`
	Filter             string   `json:"filter,omitempty"`
	SortBy             string   `json:"sortBy,omitempty"`
	SortOrder          string   `json:"sortOrder,omitempty"`
	StartIndex         int      `json:"startIndex,omitempty"`
	// Count is a pointer because 0 asks for no resources, only totalResults
	// (RFC 7644 §3.4.2.4), while absent leaves the page size to the server.
	Count *int `json:"count,omitempty"`
}

// PatchOp is a PATCH request body (RFC 7644 §3.5.2).
type PatchOp struct {
	Schemas    []string         `json:"schemas"`
	Operations []PatchOperation `json:"Operations"`
}

// PatchOperation is one operation of a PatchOp. Value is kept raw because its type
// depends on the path (a bool for active, an object when Path is empty).
type PatchOperation struct {
	Op    string          `json:"op"`
	Path  string          `json:"path,omitempty"`
	Value json.RawMessage `json:"value,omitempty"`
}

// Error is a SCIM error response body (RFC 7644 §3.12). Status is the HTTP status
// as a string, as the RFC says; UnmarshalJSON also accepts a number, which some
// servers send.
type Error struct {
	Schemas  []string `json:"schemas"`
	Status   string   `json:"status"`
	ScimType string   `json:"scimType,omitempty"`
	Detail   string   `json:"detail,omitempty"`
}

// UnmarshalJSON accepts "status" as a string or a number.
func (e *Error) UnmarshalJSON(b []byte) error {
	var raw struct {
		Schemas  []string        `json:"schemas"`
		Status   json.RawMessage `json:"status"`
		ScimType string          `json:"scimType"`
		Detail   string          `json:"detail"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*e = Error{Schemas: raw.Schemas, ScimType: raw.ScimType, Detail: raw.Detail}
	if len(raw.Status) > 0 {
		var s string
		if json.Unmarshal(raw.Status, &s) == nil {
			e.Status = s
		} else {
			var n json.Number
			if json.Unmarshal(raw.Status, &n) == nil {
				e.Status = n.String()
			}
		}
	}
	return nil
}

// NewError returns the error body for an HTTP status.
func NewError(status int, scimType, detail string) Error {
	return Error{
		Schemas:  []string{MessageError},
		Status:   strconv.Itoa(status),
		ScimType: scimType,
		Detail:   detail,
	}
}

// ServiceProviderConfig describes what a server supports (RFC 7643 §5).
type ServiceProviderConfig struct {
	Schemas               []string               `json:"schemas"`
	DocumentationURI      string                 `json:"documentationUri,omitempty"`
	Patch                 Supported              `json:"patch"`
	Bulk                  BulkConfig             `json:"bulk"`
	Filter                FilterConfig           `json:"filter"`
	ChangePassword        Supported              `json:"changePassword"`
	Sort                  Supported              `json:"sort"`
	ETag                  Supported              `json:"etag"`
	AuthenticationSchemes []AuthenticationScheme `json:"authenticationSchemes"`
	Meta                  *Meta                  `json:"meta,omitempty"`
}

// Supported is a feature flag of ServiceProviderConfig.
type Supported struct {
	Supported bool `json:"supported"`
}

// BulkConfig describes bulk support.
type BulkConfig struct {
	Supported      bool `json:"supported"`
	MaxOperations  int  `json:"maxOperations"`
	MaxPayloadSize int  `json:"maxPayloadSize"`
}

// FilterConfig describes filter support; MaxResults caps every page.
type FilterConfig struct {
	Supported  bool `json:"supported"`
	MaxResults int  `json:"maxResults"`
}

// AuthenticationScheme is one way to authenticate.
type AuthenticationScheme struct {
	Type        string `json:"type"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Primary     bool   `json:"primary,omitempty"`
}

// FromAccount returns the SCIM representation of a: the core User with emails
// [{value, type: work, primary: true}], the enterprise extension when any of its
// fields is set, and active. ID and meta.version are carried over when set.
func FromAccount(a connector.Account) User {
	active := a.Active
	u := User{
		Schemas:    []string{SchemaUser},
		ID:         a.ID,
		ExternalID: a.ExternalID,
		UserName:   a.UserName,
		Title:      a.Profile.JobTitle,
		Locale:     a.Profile.Locale,
		Active:     &active,
	}
	if a.Profile.GivenName != "" || a.Profile.FamilyName != "" {
		u.Name = &Name{GivenName: a.Profile.GivenName, FamilyName: a.Profile.FamilyName}
	}
	if a.Profile.Email != "" {
		u.Emails = []Email{{Value: a.Profile.Email, Type: "work", Primary: true}}
	}
	if p := a.Profile; p.EmployeeNumber != "" || p.OrgUnit != "" || p.ManagerID != "" || a.Organization != "" {
		u.Schemas = append(u.Schemas, SchemaEnterpriseUser)
		u.Enterprise = &EnterpriseUser{EmployeeNumber: p.EmployeeNumber, Department: p.OrgUnit, Organization: a.Organization}
		if p.ManagerID != "" {
			u.Enterprise.Manager = &Manager{Value: p.ManagerID}
		}
	}
	if a.Version != "" || !a.Created.IsZero() {
		u.Meta = &Meta{ResourceType: "User", Created: a.Created, Version: a.Version}
	}
	return u
}

// ToAccount returns the account that u describes. A missing active counts as
// true, the usual server default. The email is the primary one, else the first.
func ToAccount(u User) connector.Account {
	a := connector.Account{
		ID:         u.ID,
		ExternalID: u.ExternalID,
		UserName:   u.UserName,
		Active:     u.Active == nil || *u.Active,
		Profile: connector.Profile{
			Email:    PrimaryEmail(u.Emails),
			JobTitle: u.Title,
			Locale:   u.Locale,
		},
	}
	if u.Name != nil {
		a.Profile.GivenName = u.Name.GivenName
		a.Profile.FamilyName = u.Name.FamilyName
	}
	if e := u.Enterprise; e != nil {
		a.Profile.EmployeeNumber = e.EmployeeNumber
		a.Profile.OrgUnit = e.Department
		a.Organization = e.Organization
		if e.Manager != nil {
			a.Profile.ManagerID = e.Manager.Value
		}
	}
	if u.Meta != nil {
		a.Version = u.Meta.Version
		a.Created = u.Meta.Created
	}
	return a
}

// PrimaryEmail returns the value of the primary email, else of the first one.
func PrimaryEmail(emails []Email) string {
	for _, e := range emails {
		if e.Primary {
			return e.Value
		}
	}
	if len(emails) > 0 {
		return emails[0].Value
	}
	return ""
}

// managedAttrs are the core attributes an Account carries; replaceManaged
// replaces them and keeps every other attribute of the user.
var managedAttrs = []string{"externalId", "userName", "name", "title", "locale", "emails"}

// managedEnterprise are the enterprise extension attributes an Account carries.
var managedEnterprise = []string{"employeeNumber", "department", "manager"}

// replaceManaged returns the body of a PUT that turns the user raw (as read from
// the server) into u for what hrsync manages, and keeps the rest as it was:
// active, unmanaged attributes, unmanaged enterprise fields. meta and the
// read-only training extension are left out. Attribute names match
// case-insensitively (RFC 7643 §2.1); the body uses the canonical ones.
func replaceManaged(raw map[string]json.RawMessage, u User) (map[string]json.RawMessage, error) {
	out := make(map[string]json.RawMessage, len(raw)+4)
	drop := func(name string, list []string) bool {
		for _, m := range list {
			if strings.EqualFold(name, m) {
				return true
			}
		}
		return false
	}
	var ext map[string]json.RawMessage
	var schemas []string
	for k, v := range raw {
		switch {
		case drop(k, managedAttrs), strings.EqualFold(k, "meta"), strings.EqualFold(k, SchemaTrainingUser):
		case strings.EqualFold(k, "schemas"):
			_ = json.Unmarshal(v, &schemas)
		case strings.EqualFold(k, SchemaEnterpriseUser):
			_ = json.Unmarshal(v, &ext)
		default:
			out[k] = v
		}
	}
	u.Active, u.Meta, u.Training, u.Schemas = nil, nil, nil, nil
	enterprise := u.Enterprise
	u.Enterprise = nil
	b, err := json.Marshal(u)
	if err != nil {
		return nil, err
	}
	var managed map[string]json.RawMessage
	if err := json.Unmarshal(b, &managed); err != nil {
		return nil, err
	}
	for k, v := range managed {
		if k != "id" && k != "schemas" {
			out[k] = v
		}
	}
	for k := range ext {
		if drop(k, managedEnterprise) {
			delete(ext, k)
		}
	}
	if enterprise != nil {
		b, err := json.Marshal(enterprise)
		if err != nil {
			return nil, err
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(b, &fields); err != nil {
			return nil, err
		}
		if ext == nil {
			ext = map[string]json.RawMessage{}
		}
		for k, v := range fields {
			ext[k] = v
		}
	}
	keep := []string{SchemaUser}
	for _, s := range schemas {
		if !strings.EqualFold(s, SchemaUser) && !strings.EqualFold(s, SchemaEnterpriseUser) && !strings.EqualFold(s, SchemaTrainingUser) {
			keep = append(keep, s)
		}
	}
	if len(ext) > 0 {
		b, err := json.Marshal(ext)
		if err != nil {
			return nil, err
		}
		out[SchemaEnterpriseUser] = b
		keep = append(keep, SchemaEnterpriseUser)
	}
	b, err = json.Marshal(keep)
	if err != nil {
		return nil, err
	}
	out["schemas"] = b
	return out, nil
}

// patchOps returns the PATCH operations (RFC 7644 §3.5.2) that change a user as
// the PUT of replaceManaged(raw, FromAccount(a)) would, whatever raw is: each
// managed attribute is replaced, or removed where a leaves it empty (the PUT
// leaves it out, which clears it); name and the enterprise manager, which the PUT
// sends whole, are removed and then set, so that sub-attributes hrsync does not
// send (name.middleName, manager.displayName) are gone as after the PUT; emails
// are replaced as a whole (a replace without a filter replaces every value).
// active, other attributes, the enterprise extension's other fields and the
// training extension are not touched. Paths are spelled as RFC 7643 does.
//
// One difference: the PUT also sends a.Organization when it is set, which
// rewrites the organization with the value the caller read; the PATCH leaves it
// as it is (an update never moves an account between organisations, and servers
// such as the sandbox do not take it in a PATCH).
func patchOps(a connector.Account) ([]PatchOperation, error) {
	u := FromAccount(a)
	var ops []PatchOperation
	var err error
	set := func(path string, v any) {
		b, merr := json.Marshal(v)
		if merr != nil && err == nil {
			err = merr
		}
		ops = append(ops, PatchOperation{Op: "replace", Path: path, Value: b})
	}
	remove := func(path string) { ops = append(ops, PatchOperation{Op: "remove", Path: path}) }
	str := func(path, v string) {
		if v == "" {
			remove(path)
			return
		}
		set(path, v)
	}
	str("externalId", u.ExternalID)
	set("userName", u.UserName) // required: the PUT sends it even when empty
	remove("name")
	if u.Name != nil {
		set("name", u.Name)
	}
	str("title", u.Title)
	str("locale", u.Locale)
	if len(u.Emails) == 0 {
		remove("emails")
	} else {
		set("emails", u.Emails)
	}
	var e EnterpriseUser
	if u.Enterprise != nil {
		e = *u.Enterprise
	}
	const ent = SchemaEnterpriseUser + ":"
	str(ent+"employeeNumber", e.EmployeeNumber)
	str(ent+"department", e.Department)
	remove(ent + "manager")
	if e.Manager != nil {
		set(ent+"manager", e.Manager)
	}
	return ops, err
}
