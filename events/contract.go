package events

import (
	"fmt"
	"strings"
	"time"

	"github.com/hrsync/hrsync/connector"
)

// The fixed names of contract v1.
const (
	// SubjectPrefix starts every event subject: hrsync.events.<feed>.<name>.
	SubjectPrefix = "hrsync.events."
	// SubjectWildcard matches every event subject of every feed.
	SubjectWildcard = SubjectPrefix + ">"
	// ConnectorInboxPrefix is the inbox prefix of hrsync's own NATS connection; feed
	// users are never allowed to subscribe to it.
	ConnectorInboxPrefix = "_HRSYNC_INBOX"
	// TypePrefix starts every CloudEvents type: hrsync.worker.<name>.v1.
	TypePrefix = "hrsync.worker."
	// Version is the contract version this package speaks; it ends every type.
	Version = "v1"
	// ContentTypeStructured is the content-type header of a structured-mode message.
	ContentTypeStructured = "application/cloudevents+json"
	// ContentTypeJSON is the only data content type of the contract.
	ContentTypeJSON = "application/json"
	// DefaultMaxDataBytes is the largest message body the Decoder accepts by default.
	DefaultMaxDataBytes = 64 << 10
)

// Type returns the CloudEvents type of kind k in contract v1, e.g. hrsync.worker.hired.v1.
func Type(k connector.Kind) string { return TypePrefix + string(k) + "." + Version }

// FeedSubject returns the subjects of every event of feed: hrsync.events.<feed>.>.
func FeedSubject(feed string) string { return SubjectPrefix + feed + ".>" }

// FeedInboxPrefix is the inbox prefix a feed's publisher uses, so that its NATS user
// may subscribe to its own replies (_INBOX.<feed>.>) and to nobody else's.
func FeedInboxPrefix(feed string) string { return "_INBOX." + feed }

// Subject returns the NATS subject of events of kind k from feed.
func Subject(feed string, k connector.Kind) string { return SubjectPrefix + feed + "." + string(k) }

// Mode is a CloudEvents content mode of the NATS binding.
type Mode int

// The content modes. Both are accepted by the Decoder; publishers pick one.
const (
	// Structured carries the whole event as JSON in the body, with
	// content-type application/cloudevents+json.
	Structured Mode = iota
	// Binary carries the attributes in ce- headers and the data in the body.
	Binary
)

// String returns "structured" or "binary".
func (m Mode) String() string {
	switch m {
	case Structured:
		return "structured"
	case Binary:
		return "binary"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ParseMode parses "structured" or "binary".
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(s) {
	case "structured":
		return Structured, nil
	case "binary":
		return Binary, nil
	}
	return 0, fmt.Errorf("unknown content mode %q: want structured or binary", s)
}

// Data is the data of every event type of contract v1. Which fields are allowed or
// required depends on the type; schemas/<name>.v1.json is the authority. An empty
// field is omitted on the wire and means "not stated".
type Data struct {
	// WorkerID is the feed's id for the person; it must equal the event's subject.
	WorkerID       string `json:"worker_id"`
	Email          string `json:"email,omitempty"`
	GivenName      string `json:"given_name,omitempty"`
	FamilyName     string `json:"family_name,omitempty"`
	EmployeeNumber string `json:"employee_number,omitempty"`
	OrgUnit        string `json:"org_unit,omitempty"`
	JobTitle       string `json:"job_title,omitempty"`
	ManagerID      string `json:"manager_id,omitempty"`
	Locale         string `json:"locale,omitempty"`
	// Effective is an RFC 3339 date (2026-12-01) or date-time
	// (2026-12-01T18:00:00+01:00). A date starts at 00:00 in Timezone. Every type
	// requires it except erasure_requested, which takes effect when it is recorded
	// and must not carry it.
	Effective string `json:"effective,omitempty"`
	// Timezone is the IANA zone of a bare Effective date; the feed's zone if empty.
	Timezone string `json:"timezone,omitempty"`
	// Reason is why the worker left (left), is away (suspended), or is to be
	// erased (erasure_requested, required there: e.g. the request's reference).
	Reason string `json:"reason,omitempty"`
	// RequestedBy is who asked for the erasure (erasure_requested only).
	RequestedBy string `json:"requested_by,omitempty"`
	// ExpectedReturn is the RFC 3339 date a suspended worker is expected back
	// (suspended only). It is informational: it is validated but not recorded, and
	// only a resumed (or rehired) event reactivates the account.
	ExpectedReturn string `json:"expected_return,omitempty"`
	// PreviousWorkerID is the id HR used for this person before (rehired only).
	PreviousWorkerID string `json:"previous_worker_id,omitempty"`
}

// Profile returns the profile fields of d.
func (d Data) Profile() connector.Profile {
	return connector.Profile{
		Email:          d.Email,
		GivenName:      d.GivenName,
		FamilyName:     d.FamilyName,
		EmployeeNumber: d.EmployeeNumber,
		OrgUnit:        d.OrgUnit,
		JobTitle:       d.JobTitle,
		ManagerID:      d.ManagerID,
		Locale:         d.Locale,
	}
}

// Event is one event to publish. The CloudEvents subject is Data.WorkerID and the
// type is Type(Kind).
type Event struct {
	Feed   string
	Kind   connector.Kind
	ID     string
	Source string
	Time   time.Time
	Data   Data
}

// Subject returns the NATS subject the event is published on.
func (e Event) Subject() string { return Subject(e.Feed, e.Kind) }

// parseSubject splits hrsync.events.<feed>.<name>.
func parseSubject(subject string) (feed string, k connector.Kind, err error) {
	rest, ok := strings.CutPrefix(subject, SubjectPrefix)
	feed, name, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 || strings.Contains(name, ".") {
		return "", "", invalid("nats.subject", "%q is not %s<feed>.<name>", clip(subject), SubjectPrefix)
	}
	if !connector.ValidFeedName(feed) {
		return "", "", invalid("nats.subject", "feed %q must match [a-z0-9-]+", clip(feed))
	}
	k = connector.Kind(name)
	if !k.Valid() {
		return feed, "", invalid("nats.subject", "unknown event name %q: want %s", clip(name), kindNames(", "))
	}
	return feed, k, nil
}

// feedOfSubject returns the feed a subject names, or "" if it names none.
func feedOfSubject(subject string) string {
	rest, ok := strings.CutPrefix(subject, SubjectPrefix)
	if !ok {
		return ""
	}
	feed, _, _ := strings.Cut(rest, ".")
	if !connector.ValidFeedName(feed) {
		return ""
	}
	return feed
}

// parseType returns the kind a CloudEvents type names, checking the version.
func parseType(typ string) (connector.Kind, error) {
	rest, ok := strings.CutPrefix(typ, TypePrefix)
	name, version, ok2 := strings.Cut(rest, ".")
	k := connector.Kind(name)
	if !ok || !ok2 || !k.Valid() || strings.Contains(version, ".") {
		return "", invalid("type", "unknown type %q: want %s<%s>.%s", clip(typ), TypePrefix, kindNames("|"), Version)
	}
	if version != Version {
		return "", invalid("type", "unsupported version %q of %s%s: this hrsync speaks %s", clip(version), TypePrefix, name, Version)
	}
	return k, nil
}

// kindNames lists the event names of the contract, joined by sep.
func kindNames(sep string) string {
	names := make([]string, len(connector.Kinds))
	for i, k := range connector.Kinds {
		names[i] = string(k)
	}
	return strings.Join(names, sep)
}
