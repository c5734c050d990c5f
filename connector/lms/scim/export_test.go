package scim

// SearchOff reports whether c has found that its server has no POST
// /Users/.search.
func SearchOff(c *Client) bool { return c.searchState.Load() == searchOff }
