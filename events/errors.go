package events

import (
	"fmt"
	"unicode/utf8"

	"github.com/hrsync/hrsync/connector"
)

// ValidationError says which part of a message breaks the contract and how. Field is
// a CloudEvents attribute ("id", "source", "type", "subject", "time", ...), a data
// field ("data.effective"), or one of "nats.subject", "feed", "content-type",
// "body" and "data" for the message as a whole.
//
// The Decoder returns it as *ValidationError wrapped with connector.Permanent, so
// errors.As(err, new(*ValidationError)) finds it and connector.IsPermanent(err) holds.
type ValidationError struct {
	Field  string
	Reason string
}

// Error returns e.g. field "data.effective": not an RFC 3339 date or date-time: "2026-13-01".
func (e *ValidationError) Error() string { return fmt.Sprintf("field %q: %s", e.Field, e.Reason) }

// invalid returns a permanent *ValidationError.
func invalid(field, format string, args ...any) error {
	return connector.Permanent(&ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)})
}

// clip shortens s for quoting in a reason, so that a huge or binary value cannot
// blow up a log line or a dead letter's reason.
func clip(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
