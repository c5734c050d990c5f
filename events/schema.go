package events

import (
	"bytes"
	"cmp"
	"embed"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/hrsync/hrsync/connector"
)

// schemaFS holds the JSON Schemas of the data of every type, one file per type:
// schemas/<name>.v1.json (draft 2020-12).
//
//go:embed schemas/*.json
var schemaFS embed.FS

// SchemaID returns the $id of the JSON Schema for the data of kind k.
func SchemaID(k connector.Kind) string {
	return "https://github.com/hrsync/hrsync/events/schemas/" + SchemaFile(k)
}

// SchemaFile returns the file name of the JSON Schema for the data of kind k,
// e.g. hired.v1.json.
func SchemaFile(k connector.Kind) string { return string(k) + "." + Version + ".json" }

// SchemaJSON returns the JSON Schema for the data of kind k, as stored in
// events/schemas. It returns nil for an unknown kind.
func SchemaJSON(k connector.Kind) []byte {
	b, err := schemaFS.ReadFile("schemas/" + SchemaFile(k))
	if err != nil {
		return nil
	}
	return b
}

// schemas are the compiled schemas by kind. Formats (date, date-time, email) are
// asserted, as the contract requires; the schemas also carry patterns, so that
// validators that treat formats as annotations still reject most bad values.
var schemas = compileSchemas()

func compileSchemas() map[connector.Kind]*jsonschema.Schema {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	for _, k := range connector.Kinds {
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(SchemaJSON(k)))
		if err != nil {
			panic(fmt.Sprintf("events: schema %s: %v", SchemaFile(k), err))
		}
		if err := c.AddResource(SchemaID(k), doc); err != nil {
			panic(fmt.Sprintf("events: schema %s: %v", SchemaFile(k), err))
		}
	}
	out := make(map[connector.Kind]*jsonschema.Schema, len(connector.Kinds))
	for _, k := range connector.Kinds {
		out[k] = c.MustCompile(SchemaID(k))
	}
	return out
}

var printer = message.NewPrinter(language.English)

// validateSchema validates doc, the data decoded with jsonschema.UnmarshalJSON,
// against the schema of kind k. It returns nil or a permanent *ValidationError that
// names one field: the first in field order, so the report is deterministic.
func validateSchema(k connector.Kind, doc any) error {
	err := schemas[k].Validate(doc)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return invalid("data", "%v", err)
	}
	var leaves []ValidationError
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			leaves = append(leaves, describe(k, doc, e))
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	slices.SortFunc(leaves, func(a, b ValidationError) int {
		return cmp.Or(cmp.Compare(a.Field, b.Field), cmp.Compare(a.Reason, b.Reason))
	})
	return connector.Permanent(&leaves[0])
}

// describe turns one schema error into a field and a reason a publisher can act on.
func describe(k connector.Kind, doc any, e *jsonschema.ValidationError) ValidationError {
	loc := e.InstanceLocation
	field := func(extra ...string) string {
		return strings.Join(append(append([]string{"data"}, loc...), extra...), ".")
	}
	value := valueAt(doc, loc)
	s, isString := value.(string)
	switch ek := e.ErrorKind.(type) {
	case *kind.Required:
		missing := slices.Sorted(slices.Values(ek.Missing))
		return ValidationError{field(missing[0]), fmt.Sprintf("required in %s", Type(k))}
	case *kind.AdditionalProperties:
		props := slices.Sorted(slices.Values(ek.Properties))
		return ValidationError{field(props[0]), fmt.Sprintf("unknown field: %s does not define it", Type(k))}
	case *kind.Type:
		if len(loc) == 0 {
			return ValidationError{"data", fmt.Sprintf("must be a JSON object, not %s", ek.Got)}
		}
		return ValidationError{field(), fmt.Sprintf("must be a %s, not %s", strings.Join(ek.Want, " or "), ek.Got)}
	}
	f := field()
	switch {
	case f == "data.effective" && isString:
		return ValidationError{f, fmt.Sprintf("not an RFC 3339 date or date-time: %q", clip(s))}
	case f == "data.timezone" && isString:
		return ValidationError{f, fmt.Sprintf("not an IANA time zone name: %q", clip(s))}
	}
	switch e.ErrorKind.(type) {
	case *kind.Pattern, *kind.Format:
		if p := badText(s, f == "data.reason"); isString && p != "" {
			return ValidationError{f, p} // the character rule (text.go), explained
		}
	}
	switch ek := e.ErrorKind.(type) {
	case *kind.MinLength:
		if ek.Got == 0 {
			return ValidationError{f, "must not be empty; omit the field instead"}
		}
	case *kind.MaxLength:
		return ValidationError{f, fmt.Sprintf("%d characters, longer than the limit of %d", ek.Got, ek.Want)}
	case *kind.Format:
		return ValidationError{f, fmt.Sprintf("not a valid %s: %q", ek.Want, clip(s))}
	case *kind.Pattern:
		switch f {
		case "data.worker_id", "data.manager_id", "data.previous_worker_id":
			return ValidationError{f, fmt.Sprintf("must not contain whitespace or control characters: %q", clip(s))}
		case "data.email":
			return ValidationError{f, fmt.Sprintf("not a valid email: %q", clip(s))}
		case "data.locale":
			return ValidationError{f, fmt.Sprintf("not a language tag such as de-DE: %q", clip(s))}
		case "data.reason":
			if k == connector.KindErasureRequested {
				return ValidationError{f, fmt.Sprintf("must say why (not blank), without control characters: %q", clip(s))}
			}
		}
		return ValidationError{f, fmt.Sprintf("%q does not match %s", clip(s), ek.Want)}
	}
	return ValidationError{f, e.ErrorKind.LocalizedString(printer)}
}

// valueAt returns the value at loc in doc, or nil.
func valueAt(doc any, loc []string) any {
	for _, tok := range loc {
		m, ok := doc.(map[string]any)
		if !ok {
			return nil
		}
		doc = m[tok]
	}
	return doc
}
