// Package sandbox is an in-memory LMS that keeps a training history per account,
// for tests and local runs. Use it directly as a connector.LMS, or serve it as a
// SCIM 2.0 server with Handler and drive it through the scim client, as the
// standalone "hrsync sandbox-lms" process does.
//
// # Accounts
//
// Ids are opaque ("u-000001", ...; see WithIDs). userName is unique
// case-insensitively and a non-empty externalId is unique: a collision is
// connector.ErrConflict. The version (ETag, e.g. W/"3") moves on with every
// successful create, update, activate or deactivate call, and an update that
// names a stale version fails with connector.ErrPrecondition. Lists are in
// creation order. Ops logs every successful mutating call, so that tests can
// check that each LMS action happened exactly once.
//
// Each account keeps a Training record: its last login, course enrollments and
// completions. Deactivation, reactivation and profile updates never touch it,
// just as a real LMS keeps a rehired person's certifications. Seed it with
// Enroll, CompleteCourse, RecordLogin or AddTraining, read it with Training or
// Snapshot. Recording training does not change the account's version.
//
// # SCIM 2.0 server
//
// Handler serves, under BasePath (/scim/v2):
//
//	GET    /scim/v2/ServiceProviderConfig   patch, etag, filter (maxResults 1000), bulk (maxOperations 1000) supported; sort, changePassword not
//	GET    /scim/v2/Users?filter=&startIndex=&count=   ListResponse in creation order; count is capped at 1000
//	POST   /scim/v2/Users                   201 with Location and ETag; 409 scimType uniqueness
//	GET    /scim/v2/Users/{id}              200 with ETag and meta.version; 404
//	PUT    /scim/v2/Users/{id}              replaces externalId, userName and profile; active only if present; If-Match (412)
//	PATCH  /scim/v2/Users/{id}              PatchOp add/replace/remove of the managed attributes; If-Match (412)
//	DELETE /scim/v2/Users/{id}              204; If-Match (412)
//	POST   /scim/v2/Bulk                    BulkResponse for DELETE operations (version = If-Match); 413 beyond maxOperations
//
// Filters are `<attr> eq "<value>"` on externalId, userName, emails.value (also
// `emails[value eq "..."]`), employeeNumber,
// urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber or
// id, one or several joined by "or" (so `id eq "a" or id eq "b"` reads many
// accounts, with their training, in one request). Attribute names are
// case-insensitive, userName and email values too. Any other filter is 400 with
// scimType invalidFilter. Errors use the SCIM error schema
// urn:ietf:params:scim:api:messages:2.0:Error; request bodies are limited to 1 MiB
// (413 beyond). A wrong method is 405 with an Allow header.
//
// A User carries the core schema, the enterprise extension (employeeNumber,
// department = org unit, manager.value = manager id) and the read-only training
// extension:
//
//	"urn:hrsync:params:scim:schemas:extension:training:1.0:User": {
//	  "lastLogin": "2026-03-01T09:00:00Z",
//	  "enrollments": [{"course": "safety-101", "enrolledAt": "2026-01-10T00:00:00Z"}],
//	  "completions": [{"course": "safety-101", "completedAt": "2026-02-01T00:00:00Z"}]
//	}
//
// A PUT ignores it, and a PATCH that adds or replaces it is 400 mutability; a
// PATCH {"op": "remove", "path": "<the extension's URN>"} deletes the account's
// learning records and keeps the account (GDPR erasure, as DeleteTraining).
// To seed and read training over HTTP there is a side endpoint,
// outside SCIM and behind the same bearer token:
//
//	GET  /hrsync/v1/accounts/{id}/training   200 {"last_login": ..., "enrollments": [...], "completions": [...]}
//	POST /hrsync/v1/accounts/{id}/training   body {"enrollments": [{"course", "enrolled_at"}],
//	                                                "completions": [{"course", "completed_at"}],
//	                                                "last_login": "<RFC 3339>"}
//
// POST appends the enrollments and completions, keeps the later of the stored and
// the given last login, and answers with the whole record (see Training and
// AddTraining). docs/sandbox-lms.md describes the same with examples.
//
// # Bulk
//
// The LMS is a connector.BulkDeleter and a connector.ActivityLister:
// DeleteAccounts deletes up to MaxBulkDeletes accounts (DefaultMaxBulk, see
// WithMaxBulk) in one call, each conditional on its version and logged as one
// OpDelete, and ActivityOf reads up to MaxResults accounts with their activity.
// The SCIM server's /Bulk endpoint does the same deletions, and advertises
// MaxBulkDeletes as its maxOperations.
//
// # Quirks
//
// HandlerWith serves the same with Quirks that real servers have (no
// ServiceProviderConfig, no PATCH, 204 to PATCH, no ETags, no Location, an
// empty 201, 500 for a missing user, case-folding filters, case-sensitive
// attribute names, short pages, PUT resetting active, no bulk), so that tests can run the
// scim client against each over HTTP. WithDuplicateExternalIDs lets accounts
// share an externalId. docs/lms-compat.md lists them with what the client does.
package sandbox
