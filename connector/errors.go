package connector

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors that every Store and LMS implementation returns (wrapped is fine);
// the conformance suites check them.
var (
	// ErrNotFound: the account, worker, dead letter or other record does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the LMS already has an account with that userName or externalId.
	ErrConflict = errors.New("conflict")
	// ErrPrecondition: a conditional update lost a race (HTTP 412).
	ErrPrecondition = errors.New("precondition failed")
	// ErrNotSent is wrapped by the errors of calls that never reached the LMS
	// (the guard failed them fast: quarantined, or out of time while waiting for
	// the rate limit), so that nothing they asked for can have been applied.
	ErrNotSent = errors.New("not sent to the lms")
)

// ErrorKind classifies an LMS failure so that the converger can decide between
// "retry later" and "permanent, with reason" in one place.
type ErrorKind string

// The kinds of LMS failure. The scim adapter maps HTTP statuses onto them in one table.
const (
	KindInvalid      ErrorKind = "invalid"      // 400: the request is wrong; retrying will not help
	KindAuth         ErrorKind = "auth"         // 401/403: credentials or permissions
	KindNotFound     ErrorKind = "not_found"    // 404
	KindConflict     ErrorKind = "conflict"     // 409
	KindPrecondition ErrorKind = "precondition" // 412
	KindRateLimited  ErrorKind = "rate_limited" // 429
	KindUnavailable  ErrorKind = "unavailable"  // 5xx, timeouts, connection refused
)

// LMSError is an LMS failure with its kind, the HTTP status where there was one, the
// server's own words, and how long the server asked us to wait.
type LMSError struct {
	Kind       ErrorKind
	Op         string // e.g. "PATCH /Users/42"
	Status     int
	Reason     string
	RetryAfter time.Duration
	Err        error
	// Code is the server's own error code where it sent one, e.g. SCIM's scimType
	// ("invalidPath"); it is not part of Error().
	Code string
}

func (e *LMSError) Error() string {
	msg := fmt.Sprintf("lms %s: %s", e.Op, e.Kind)
	if e.Status != 0 {
		msg += fmt.Sprintf(" (HTTP %d)", e.Status)
	}
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap lets errors.Is match ErrNotFound, ErrConflict and ErrPrecondition by kind.
func (e *LMSError) Unwrap() []error {
	var errs []error
	switch e.Kind {
	case KindNotFound:
		errs = append(errs, ErrNotFound)
	case KindConflict:
		errs = append(errs, ErrConflict)
	case KindPrecondition:
		errs = append(errs, ErrPrecondition)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// Temporary reports whether retrying the same call later may succeed.
func (e *LMSError) Temporary() bool {
	switch e.Kind {
	case KindRateLimited, KindUnavailable, KindPrecondition:
		return true
	}
	return false
}

// IsTemporary reports whether err is worth retrying later: an LMSError that says so,
// a context deadline, or any error that is not known to be permanent.
func IsTemporary(err error) bool {
	if err == nil {
		return false
	}
	var le *LMSError
	if errors.As(err, &le) {
		return le.Temporary()
	}
	var pe *permanentError
	if errors.As(err, &pe) {
		return false
	}
	return !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrConflict)
}

// permanentError marks an error that must never be retried.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as not worth retrying: bad input, an unknown type, a contract
// violation. The events package dead-letters such messages instead of redelivering them.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// IsPermanent reports whether err, or anything it wraps, was marked with Permanent.
func IsPermanent(err error) bool {
	var pe *permanentError
	return errors.As(err, &pe)
}
