package connector

import (
	"context"
	"strings"
	"time"
)

// Account is a user in the LMS, as the LMS reports it.
type Account struct {
	ID         string  `json:"id"`
	ExternalID string  `json:"external_id,omitempty"`
	UserName   string  `json:"user_name"`
	Active     bool    `json:"active"`
	Profile    Profile `json:"profile"`
	// Organization is the account's organisation or branch in the LMS, where the
	// LMS has one (SCIM: the enterprise extension's organization). Feeds may be
	// scoped by it.
	Organization string `json:"organization,omitempty"`
	// Version is the LMS's ETag for the account, if it has them; updates send it back
	// as If-Match so that hrsync never overwrites a change it did not read.
	Version string    `json:"version,omitempty"`
	Created time.Time `json:"created,omitzero"`
}

// FilterAttr is the account attribute a lookup filters on. Each maps to a SCIM 2.0
// attribute (RFC 7643): externalId, userName, emails.value, and the enterprise
// extension's employeeNumber.
type FilterAttr string

// The attributes the LMS port can filter on.
const (
	ByExternalID     FilterAttr = "externalId"
	ByUserName       FilterAttr = "userName"
	ByEmail          FilterAttr = "emails.value"
	ByEmployeeNumber FilterAttr = "employeeNumber"
)

// AccountFilter asks for the accounts whose Attr equals Value. Email and userName
// compare case-insensitively; externalId and employeeNumber exactly.
type AccountFilter struct {
	Attr  FilterAttr
	Value string
}

// Matches reports whether a satisfies the filter, with the comparison rules above.
// Adapters that filter client-side use it so that every adapter agrees.
func (f AccountFilter) Matches(a Account) bool {
	switch f.Attr {
	case ByExternalID:
		return a.ExternalID == f.Value
	case ByUserName:
		return strings.EqualFold(a.UserName, f.Value)
	case ByEmail:
		return a.Profile.Email != "" && strings.EqualFold(a.Profile.Email, f.Value)
	case ByEmployeeNumber:
		return a.Profile.EmployeeNumber != "" && a.Profile.EmployeeNumber == f.Value
	}
	return false
}

// AccountPage is one page of ListAccounts. StartIndex is 1-based, as in SCIM.
type AccountPage struct {
	Accounts     []Account
	StartIndex   int
	TotalResults int
}

// LMS is the port to a learning management system. Its operations fit SCIM 2.0
// (RFC 7643/7644). Errors are *LMSError where the adapter can classify them; every
// implementation returns errors that match ErrNotFound and ErrConflict with errors.Is.
// Implementations must be safe for concurrent use.
type LMS interface {
	// GetAccount returns the account with id, or ErrNotFound.
	GetAccount(ctx context.Context, id string) (Account, error)
	// FindAccounts returns every account matching f; none is not an error.
	FindAccounts(ctx context.Context, f AccountFilter) ([]Account, error)
	// CreateAccount creates a and returns it with its new ID. Returns ErrConflict
	// if the userName or externalId is already taken.
	CreateAccount(ctx context.Context, a Account) (Account, error)
	// UpdateAccount replaces the externalId, userName and profile of the account a.ID
	// (fields of a.Profile that are empty are cleared). If a.Version is set and the LMS
	// supports it, the update is conditional and returns ErrPrecondition when the
	// account changed. Returns ErrNotFound if the account does not exist.
	UpdateAccount(ctx context.Context, a Account) (Account, error)
	// SetActive activates or deactivates the account id. Returns ErrNotFound.
	SetActive(ctx context.Context, id string, active bool) (Account, error)
	// DeleteAccount deletes the account id. Returns ErrNotFound if it does not exist.
	DeleteAccount(ctx context.Context, id string) error
	// ListAccounts returns up to count accounts starting at the 1-based startIndex,
	// in a stable order.
	ListAccounts(ctx context.Context, startIndex, count int) (AccountPage, error)
}
