// Package moodle is the connector.LMS adapter for Moodle, over its web
// services (REST protocol): POST /webservice/rest/server.php with a token, the
// function's name, moodlewsrestformat=json and the parameters form-encoded,
// arrays as users[0][username].
//
// What it maps where: the account id is Moodle's numeric user id; the
// externalId is idnumber (not unique in Moodle); the userName is the username,
// written and looked up lower-case, as Moodle stores it; email, given and
// family name are email, firstname and lastname (required by Moodle: an empty
// one is written as a placeholder that reads back empty); the org unit is
// department; the employee number, job title, manager id and locale are custom
// user profile fields (Fields, DefaultFields). Active is suspended 0 or 1:
// suspension keeps a user's enrolments, grades and completions, deletion
// destroys them, so hrsync's leavers are suspended.
//
// Besides the port it implements the batch capabilities (AccountCreator,
// AccountUpdater, ActiveSetter, AccountBatchReader, BulkDeleter), each giving
// one honest result per item although Moodle runs a create or a delete batch
// all or nothing, and the activity and training readers (ActivityReader,
// TrainingReader) over lastaccess, core_enrol_get_users_courses and
// core_completion_get_course_completion_status.
//
// Moodle answers errors with HTTP 200 and an exception envelope; the adapter
// classifies them as connector errors (errors.go). docs/lms-compat-moodle.md
// lists every behaviour relied on with its source; package moodlesim simulates
// a site over the sandbox LMS.
package moodle
