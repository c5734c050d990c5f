// Package docebo is the connector.LMS adapter for Docebo's REST API, for the
// Docebo plans that have no SCIM.
//
// It authenticates with OAuth2 client credentials (golang.org/x/oauth2's
// clientcredentials), keeps one token for all calls and fetches a fresh one
// when a call is answered 401. Users are read and written under
// /manage/v1/user; where hrsync's externalId and the profile fields Docebo has
// no column for live is Fields (the username, or additional fields by id).
// Docebo filters no attribute exactly, so lookups ask search_text where it
// reaches the attribute (names and usernames) or walk every user, and filter
// the answer with connector.AccountFilter.Matches.
//
// Beyond the port it offers change_status and delete for lists of user ids
// (connector.ActiveSetter, connector.BulkDeleter), creates through the batch
// import (connector.AccountCreator), one walk for a batch's lookups
// (connector.AccountBatchReader), and activity and completions from
// last_access_date and the enrollments API (connector.ActivityReader,
// connector.ActivityLister, connector.TrainingReader). Branches are the
// accounts' organisation; every branch call runs alone, as Docebo asks.
//
// docs/lms-compat-docebo.md lists each behaviour relied on, with its source,
// and what each operation costs in calls; docebosim simulates the API.
package docebo
