package scim

import "time"

// SetNow replaces the client's clock, for tests of what expires.
func SetNow(c *Client, now func() time.Time) { c.now = now }
