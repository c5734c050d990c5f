package connector

import "time"

// Availability is an optional capability of an LMS: it knows that the LMS cannot
// take calls for now, for example because it has been quarantined after most calls
// failed. The converger checks it before it claims work, and while the LMS is not
// available it waits instead of claiming workers and burning their retries.
//
// Available reports whether calls may be made now; when not, retryAt is when to
// ask again (it may be zero or past, e.g. while a probe is in flight). It must be
// cheap and must not block.
type Availability interface {
	Available() (ok bool, retryAt time.Time)
}
