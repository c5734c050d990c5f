package scim_test

import (
	"reflect"
	"testing"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/scim"
)

func TestParseDisjunction(t *testing.T) {
	t.Parallel()
	ok := map[string]scim.Disjunction{
		`id eq "a"`: {IDs: []string{"a"}, Attrs: []string{"id"}},
		`id eq "a" or ID eq "b\"c" OR  userName eq "x"`: {IDs: []string{"a", `b"c`},
			Filters: []connector.AccountFilter{{Attr: connector.ByUserName, Value: "x"}}, Attrs: []string{"id", "ID", "userName"}},
		`emails[value eq "e"] or ` + scim.SchemaUser + `:id eq "or"`: {IDs: []string{"or"},
			Filters: []connector.AccountFilter{{Attr: connector.ByEmail, Value: "e"}}, Attrs: []string{"emails.value", scim.SchemaUser + ":id"}},
		scim.IDFilter([]string{`a b`, `c"d\`, "é"}): {IDs: []string{`a b`, `c"d\`, "é"}, Attrs: []string{"id", "id", "id"}},
	}
	for in, want := range ok {
		got, err := scim.ParseDisjunction(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("ParseDisjunction(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{
		``, `id eq "a" or`, `id eq "a" and id eq "b"`, `id eq "a"or id eq "b"`, `id eq "a" or(id eq "b")`,
		`(id eq "a")`, `id eq "a" or title eq "b"`, `id co "a"`, `id eq "a" id eq "b"`, `id eq "a" or  `,
	} {
		if got, err := scim.ParseDisjunction(in); err == nil {
			t.Errorf("ParseDisjunction(%q) = %+v, want an error", in, got)
		}
	}
	// ParseFilter stays a single comparison, without id.
	for _, in := range []string{`id eq "a"`, `userName eq "a" or userName eq "b"`} {
		if got, err := scim.ParseFilter(in); err == nil {
			t.Errorf("ParseFilter(%q) = %+v, want an error", in, got)
		}
	}
}
