package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/hrsync/hrsync/connector"
)

// testFeeds declares hr (zone Europe/Berlin) and partner-acme (UTC).
func testFeeds(t testing.TB) connector.Feeds {
	t.Helper()
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	hr := connector.DefaultFeed("hr", connector.FeedHR)
	hr.Location = berlin
	feeds, err := connector.NewFeeds(hr, connector.DefaultFeed("partner-acme", connector.FeedPartner))
	if err != nil {
		t.Fatal(err)
	}
	return feeds
}

// structuredHeader is the header of a structured-mode message.
func structuredHeader() nats.Header {
	return nats.Header{"content-type": {ContentTypeStructured}}
}

// schemaVerdict says what the JSON Schema alone makes of a fixture's data.
type schemaVerdict int

const (
	schemaAccepts schemaVerdict = iota // the data is valid; the decoder may still reject the envelope or a cross-field rule
	schemaRejects                      // the data breaks its schema
	schemaNoData                       // there is no data object to check
)

// fixtureCases says, for every file under testdata, which NATS subject it is
// published on and which field the decoder must reject ("" for valid).
var fixtureCases = map[string]struct {
	subject string
	field   string
	schema  schemaVerdict
}{
	"valid/hired.json":             {"hrsync.events.hr.hired", "", schemaAccepts},
	"valid/hired-datetime.json":    {"hrsync.events.hr.hired", "", schemaAccepts},
	"valid/hired-extension.json":   {"hrsync.events.hr.hired", "", schemaAccepts},
	"valid/left.json":              {"hrsync.events.hr.left", "", schemaAccepts},
	"valid/rehired.json":           {"hrsync.events.hr.rehired", "", schemaAccepts},
	"valid/updated.json":           {"hrsync.events.hr.updated", "", schemaAccepts},
	"valid/partner-hired.json":     {"hrsync.events.partner-acme.hired", "", schemaAccepts},
	"valid/suspended.json":         {"hrsync.events.hr.suspended", "", schemaAccepts},
	"valid/resumed.json":           {"hrsync.events.hr.resumed", "", schemaAccepts},
	"valid/erasure_requested.json": {"hrsync.events.hr.erasure_requested", "", schemaAccepts},

	"invalid/erasure-requested-no-reason.json":          {"hrsync.events.hr.erasure_requested", "data.reason", schemaRejects},
	"invalid/erasure-requested-blank-reason.json":       {"hrsync.events.hr.erasure_requested", "data.reason", schemaRejects},
	"invalid/erasure-requested-empty-requested-by.json": {"hrsync.events.hr.erasure_requested", "data.requested_by", schemaRejects},
	"invalid/effective-on-erasure-requested.json":       {"hrsync.events.hr.erasure_requested", "data.effective", schemaRejects},
	"invalid/email-on-erasure-requested.json":           {"hrsync.events.hr.erasure_requested", "data.email", schemaRejects},

	"invalid/suspended-bad-expected-return.json": {"hrsync.events.hr.suspended", "data.expected_return", schemaRejects},
	"invalid/expected-return-on-resumed.json":    {"hrsync.events.hr.resumed", "data.expected_return", schemaRejects},

	"invalid/hired-no-email.json":      {"hrsync.events.hr.hired", "data.email", schemaRejects},
	"invalid/hired-bad-email.json":     {"hrsync.events.hr.hired", "data.email", schemaRejects},
	"invalid/effective-month-13.json":  {"hrsync.events.hr.hired", "data.effective", schemaRejects},
	"invalid/effective-no-offset.json": {"hrsync.events.hr.hired", "data.effective", schemaRejects},
	"invalid/effective-missing.json":   {"hrsync.events.hr.hired", "data.effective", schemaRejects},
	"invalid/unknown-field.json":       {"hrsync.events.hr.hired", "data.departement", schemaRejects},
	"invalid/empty-given-name.json":    {"hrsync.events.hr.hired", "data.given_name", schemaRejects},
	"invalid/null-manager.json":        {"hrsync.events.hr.hired", "data.manager_id", schemaRejects},
	"invalid/reason-on-hired.json":     {"hrsync.events.hr.hired", "data.reason", schemaRejects},
	"invalid/worker-id-number.json":    {"hrsync.events.hr.hired", "data.worker_id", schemaRejects},
	"invalid/data-not-object.json":     {"hrsync.events.hr.hired", "data", schemaRejects},

	// Rules a schema of the data alone cannot express.
	"invalid/worker-id-mismatch.json":      {"hrsync.events.hr.hired", "data.worker_id", schemaAccepts},
	"invalid/timezone-unknown.json":        {"hrsync.events.hr.hired", "data.timezone", schemaAccepts},
	"invalid/source-other-feed.json":       {"hrsync.events.hr.hired", "source", schemaAccepts},
	"invalid/type-v2.json":                 {"hrsync.events.hr.hired", "type", schemaAccepts},
	"invalid/type-unknown.json":            {"hrsync.events.hr.hired", "type", schemaAccepts},
	"invalid/type-subject-mismatch.json":   {"hrsync.events.hr.hired", "type", schemaAccepts},
	"invalid/id-missing.json":              {"hrsync.events.hr.hired", "id", schemaAccepts},
	"invalid/subject-missing.json":         {"hrsync.events.hr.hired", "subject", schemaAccepts},
	"invalid/time-missing.json":            {"hrsync.events.hr.hired", "time", schemaAccepts},
	"invalid/time-not-rfc3339.json":        {"hrsync.events.hr.hired", "time", schemaAccepts},
	"invalid/specversion-0.3.json":         {"hrsync.events.hr.hired", "specversion", schemaAccepts},
	"invalid/datacontenttype-text.json":    {"hrsync.events.hr.hired", "datacontenttype", schemaAccepts},
	"invalid/data-field-outside-data.json": {"hrsync.events.hr.hired", "worker_id", schemaAccepts},
	"invalid/data-base64.json":             {"hrsync.events.hr.hired", "data_base64", schemaNoData},
}

// fixtureFiles returns every fixture under testdata, as "valid/x.json" paths.
func fixtureFiles(t testing.TB) []string {
	t.Helper()
	var files []string
	for _, dir := range []string{"valid", "invalid"} {
		matches, err := filepath.Glob(filepath.Join("testdata", dir, "*.json"))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range matches {
			files = append(files, dir+"/"+filepath.Base(m))
		}
	}
	return files
}

// TestFixtures checks every stored CloudEvent against the JSON Schemas (read from
// schemas/ by a separate compiler, as a publisher would) and against the decoder,
// and checks that they agree: whatever the schema rejects the decoder rejects on
// the same data field, and a valid fixture passes both.
func TestFixtures(t *testing.T) {
	t.Parallel()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	fileSchemas := map[connector.Kind]*jsonschema.Schema{}
	for _, k := range connector.Kinds {
		sch, err := c.Compile(filepath.Join("schemas", SchemaFile(k)))
		if err != nil {
			t.Fatalf("compile %s: %v", SchemaFile(k), err)
		}
		fileSchemas[k] = sch
	}
	dec := &Decoder{Feeds: testFeeds(t)}

	files := fixtureFiles(t)
	seen := map[string]bool{}
	for _, name := range files {
		seen[name] = true
		tc, ok := fixtureCases[name]
		if !ok {
			t.Errorf("testdata/%s has no entry in fixtureCases", name)
			continue
		}
		t.Run(strings.TrimSuffix(name, ".json"), func(t *testing.T) {
			t.Parallel()
			body, err := os.ReadFile(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			// The schema, on the data alone.
			var ev map[string]json.RawMessage
			if err := json.Unmarshal(body, &ev); err != nil {
				t.Fatalf("fixture is not a JSON object: %v", err)
			}
			_, k, err := parseSubject(tc.subject)
			if err != nil {
				t.Fatal(err)
			}
			raw, hasData := ev["data"]
			switch {
			case !hasData && tc.schema != schemaNoData:
				t.Fatalf("fixture has no data")
			case hasData:
				doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
				if err != nil {
					t.Fatal(err)
				}
				serr := fileSchemas[k].Validate(doc)
				if got := serr == nil; got != (tc.schema == schemaAccepts) {
					t.Errorf("schema %s accepts data: %v, want %v (%v)", SchemaFile(k), got, tc.schema == schemaAccepts, serr)
				}
			}

			// The decoder, on the whole message.
			f, err := dec.Decode(tc.subject, structuredHeader(), body)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if err := f.Validate(); err != nil {
					t.Errorf("fact: %v", err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || !connector.IsPermanent(err) {
				t.Fatalf("Decode error = %v, want a permanent *ValidationError", err)
			}
			if ve.Field != tc.field {
				t.Errorf("Field = %q, want %q (%v)", ve.Field, tc.field, err)
			}
			if tc.schema == schemaRejects && !strings.HasPrefix(ve.Field, "data") {
				t.Errorf("the schema rejects the data but the decoder blames %q", ve.Field)
			}
			t.Log(err)
		})
	}
	for name := range fixtureCases {
		if !seen[name] {
			t.Errorf("fixtureCases lists %s, which is not in testdata", name)
		}
	}
}

// TestSchemasMatchData checks that the schemas and the Data struct define the
// same fields, and that the embedded files are the ones on disk.
func TestSchemasMatchData(t *testing.T) {
	t.Parallel()
	common := []string{"worker_id", "email", "given_name", "family_name", "employee_number", "org_unit",
		"job_title", "manager_id", "locale", "effective", "timezone"}
	extra := map[connector.Kind][]string{connector.KindLeft: {"reason"}, connector.KindRehired: {"previous_worker_id"},
		connector.KindSuspended: {"reason", "expected_return"}}
	required := map[connector.Kind][]string{
		connector.KindHired:            {"worker_id", "effective", "email"},
		connector.KindLeft:             {"worker_id", "effective"},
		connector.KindRehired:          {"worker_id", "effective", "email"},
		connector.KindUpdated:          {"worker_id", "effective"},
		connector.KindSuspended:        {"worker_id", "effective"},
		connector.KindResumed:          {"worker_id", "effective"},
		connector.KindErasureRequested: {"worker_id", "reason"},
	}
	// An erasure request states no profile and no date: only who, why and by whom.
	only := map[connector.Kind][]string{connector.KindErasureRequested: {"worker_id", "reason", "requested_by"}}
	var all Data
	allJSON, _ := json.Marshal(Data{Email: "x", GivenName: "x", FamilyName: "x", EmployeeNumber: "x", OrgUnit: "x",
		JobTitle: "x", ManagerID: "x", Locale: "x", Timezone: "x", Reason: "x", PreviousWorkerID: "x", ExpectedReturn: "x",
		RequestedBy: "x"})
	if err := json.Unmarshal(allJSON, &all); err != nil {
		t.Fatal(err)
	}
	var dataFields map[string]any
	_ = json.Unmarshal(allJSON, &dataFields)
	for _, k := range connector.Kinds {
		onDisk, err := os.ReadFile(filepath.Join("schemas", SchemaFile(k)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(onDisk, SchemaJSON(k)) {
			t.Errorf("%s: embedded schema differs from the file", SchemaFile(k))
		}
		var s struct {
			ID                   string         `json:"$id"`
			Schema               string         `json:"$schema"`
			Required             []string       `json:"required"`
			AdditionalProperties *bool          `json:"additionalProperties"`
			Properties           map[string]any `json:"properties"`
		}
		if err := json.Unmarshal(onDisk, &s); err != nil {
			t.Fatal(err)
		}
		if s.ID != SchemaID(k) || s.Schema != "https://json-schema.org/draft/2020-12/schema" {
			t.Errorf("%s: $id %q, $schema %q", SchemaFile(k), s.ID, s.Schema)
		}
		if s.AdditionalProperties == nil || *s.AdditionalProperties {
			t.Errorf("%s: additionalProperties must be false", SchemaFile(k))
		}
		want := append(append([]string{}, common...), extra[k]...)
		if o, ok := only[k]; ok {
			want = o
		}
		if len(s.Properties) != len(want) {
			t.Errorf("%s: %d properties, want %d", SchemaFile(k), len(s.Properties), len(want))
		}
		for _, p := range want {
			if _, ok := s.Properties[p]; !ok {
				t.Errorf("%s: missing property %q", SchemaFile(k), p)
			}
			if _, ok := dataFields[p]; !ok && p != "worker_id" && p != "effective" {
				t.Errorf("Data has no json field %q", p)
			}
		}
		if strings.Join(s.Required, ",") != strings.Join(required[k], ",") {
			t.Errorf("%s: required %v, want %v", SchemaFile(k), s.Required, required[k])
		}
	}
}

// TestDecodeDataAllFields checks that every field of Data survives decoding.
func TestDecodeDataAllFields(t *testing.T) {
	t.Parallel()
	full := Data{WorkerID: "w-1", Email: "a@example.com", GivenName: "Ada", FamilyName: "Lovelace",
		EmployeeNumber: "E-1", OrgUnit: "R&D", JobTitle: "Analyst", ManagerID: "w-0", Locale: "en-GB",
		Effective: "2026-12-01", Timezone: "Europe/Berlin"}
	for k, extra := range map[connector.Kind]func(*Data){
		connector.KindLeft:    func(d *Data) { d.Reason = "retired" },
		connector.KindRehired: func(d *Data) { d.PreviousWorkerID = "w-00" },
		connector.KindSuspended: func(d *Data) {
			d.Reason, d.ExpectedReturn = "parental leave", "2027-06-01"
		},
		connector.KindResumed: func(*Data) {},
	} {
		want := full
		extra(&want)
		b, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeData(k, b)
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		if got != want {
			t.Errorf("%s:\n got %+v\nwant %+v", k, got, want)
		}
	}
}

// TestDecodeLeaveOfAbsence decodes the suspended and resumed examples into facts.
func TestDecodeLeaveOfAbsence(t *testing.T) {
	t.Parallel()
	dec := &Decoder{Feeds: testFeeds(t)}
	for _, tc := range []struct {
		file   string
		kind   connector.Kind
		reason string
		eff    time.Time
	}{
		{"valid/suspended.json", connector.KindSuspended, "parental leave", time.Date(2027, 1, 3, 23, 0, 0, 0, time.UTC)},
		{"valid/resumed.json", connector.KindResumed, "", time.Date(2027, 6, 30, 22, 0, 0, 0, time.UTC)},
	} {
		body, err := os.ReadFile(filepath.Join("testdata", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		f, err := dec.Decode(fixtureCases[tc.file].subject, structuredHeader(), body)
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if f.Kind != tc.kind || f.Reason != tc.reason || !f.Effective.Equal(tc.eff) || f.WorkerID != "w-1001" {
			t.Errorf("%s: fact %+v", tc.file, f)
		}
	}
	// The subject names the kind; the type must agree.
	body, _ := os.ReadFile(filepath.Join("testdata", "valid/suspended.json"))
	if _, err := dec.Decode("hrsync.events.hr.resumed", structuredHeader(), body); err == nil {
		t.Error("a suspended event on the resumed subject was accepted")
	}
}
