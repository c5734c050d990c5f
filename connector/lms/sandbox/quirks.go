package sandbox

import (
	"net/http"
	"strings"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/scim"
)

// Quirks make the SCIM server behave like real servers that differ from each
// other and from RFC 7644, so that tests can check the scim client survives each
// of them over HTTP. The zero value is the well-behaved server that Handler serves.
// docs/lms-compat.md describes what the client does about each one.
type Quirks struct {
	// NoServiceProviderConfig answers 404 on /ServiceProviderConfig.
	NoServiceProviderConfig bool
	// NoPatch refuses PATCH with NoPatchStatus (405 Method Not Allowed when 0)
	// and says patch.supported=false in /ServiceProviderConfig.
	NoPatch       bool
	NoPatchStatus int
	// PatchNoContent answers a successful PATCH with 204 and no body.
	PatchNoContent bool
	// NoETags sends no ETag header and no meta.version, ignores If-Match, and
	// says etag.supported=false in /ServiceProviderConfig.
	NoETags bool
	// NoLocation leaves out the Location header and meta.location.
	NoLocation bool
	// CreateEmptyBody answers a successful POST /Users with 201 and no body.
	CreateEmptyBody bool
	// GoneIs500 answers PUT, PATCH and DELETE of a user that does not exist
	// with 500 instead of 404 (GET still says 404).
	GoneIs500 bool
	// FilterFoldsCase compares every filter value case-insensitively, also
	// externalId and employeeNumber, which RFC 7643 makes caseExact.
	FilterFoldsCase bool
	// CaseSensitiveNames accepts attribute names in filters and PATCH paths
	// only in their canonical case ("userName", not "username"): others are 400.
	CaseSensitiveNames bool
	// MaxPageSize, when positive, caps every ListResponse page below the
	// count asked for, before the end of the results.
	MaxPageSize int
	// PutResetsActive treats a PUT without active as active=true, the
	// attribute's default, as a server that replaces the whole resource does.
	PutResetsActive bool
	// NoBulk says bulk.supported=false in /ServiceProviderConfig and answers
	// POST /Bulk with 501, as servers without bulk do.
	NoBulk bool
	// NoSearch answers POST /Users/.search (RFC 7644 §3.4.3) as a server
	// without it does: with NoSearchStatus (405 Method Not Allowed when 0, the
	// answer of a server that routes it to /Users/{id}) and scimType
	// NoSearchType.
	NoSearch       bool
	NoSearchStatus int
	NoSearchType   string
	// MaxFilterTerms, when positive, answers a filter of more comparisons with
	// 400 tooMany (RFC 7644 §3.12), as servers that bound a filter's size do.
	MaxFilterTerms int
}

// HandlerWith is Handler with quirks.
func (l *LMS) HandlerWith(token string, q Quirks) http.Handler { return l.handler(token, q) }

// canonicalFilterAttrs are the attribute paths the client may filter on, in the
// case RFC 7643 spells them.
var canonicalFilterAttrs = map[string]bool{
	"externalId": true, "userName": true, "emails.value": true, "emails": true,
	"employeeNumber": true, scim.SchemaEnterpriseUser + ":employeeNumber": true,
	scim.SchemaUser + ":userName": true, scim.SchemaUser + ":externalId": true,
	scim.AttrID: true, scim.SchemaUser + ":" + scim.AttrID: true,
}

// canonicalPatchPaths are the PATCH paths the client may send, canonically spelled.
var canonicalPatchPaths = map[string]bool{
	"active": true, "userName": true, "externalId": true, "title": true, "locale": true,
	"name": true, "name.givenName": true, "name.familyName": true, "emails": true,
	scim.SchemaEnterpriseUser: true, scim.SchemaEnterpriseUser + ":employeeNumber": true,
	scim.SchemaEnterpriseUser + ":department": true, scim.SchemaEnterpriseUser + ":manager": true,
	scim.SchemaTrainingUser: true,
}

// filterAttrName returns the attribute path a filter starts with: up to the
// first space or '['.
func filterAttrName(expr string) string {
	expr = strings.TrimSpace(expr)
	if i := strings.IndexAny(expr, " \t["); i >= 0 {
		return expr[:i]
	}
	return expr
}

// foldMatches is f.Matches with every value compared case-insensitively.
func foldMatches(f connector.AccountFilter, a connector.Account) bool {
	var v string
	switch f.Attr {
	case connector.ByExternalID:
		v = a.ExternalID
	case connector.ByUserName:
		v = a.UserName
	case connector.ByEmail:
		v = a.Profile.Email
	case connector.ByEmployeeNumber:
		v = a.Profile.EmployeeNumber
	}
	return v != "" && strings.EqualFold(v, f.Value)
}
