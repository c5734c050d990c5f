package scim

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/hrsync/hrsync/connector"
)

// employeeNumberPath is the fully qualified attribute path of employeeNumber; the
// client sends it so that servers need not guess the extension.
const employeeNumberPath = SchemaEnterpriseUser + ":employeeNumber"

// Filter returns the SCIM filter expression for f: `<attr> eq "<value>"`, with `"`
// and `\` escaped in the value. employeeNumber is sent with its extension URN.
func Filter(f connector.AccountFilter) (string, error) {
	var attr string
	switch f.Attr {
	case connector.ByExternalID, connector.ByUserName, connector.ByEmail:
		attr = string(f.Attr)
	case connector.ByEmployeeNumber:
		attr = employeeNumberPath
	default:
		return "", fmt.Errorf("scim: cannot filter on %q", f.Attr)
	}
	return attr + ` eq "` + escapeFilterValue(f.Value) + `"`, nil
}

func escapeFilterValue(v string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v)
}

// ParseFilter parses the subset of RFC 7644 §3.4.2.2 filters that hrsync uses:
// `<attr> eq "<value>"` where attr is externalId, userName, emails.value (or
// emails), employeeNumber, each optionally qualified by its schema URN, and the
// value-path form `emails[value eq "<value>"]`. Attribute names and the operator
// are case-insensitive. Anything else is an error (scimType invalidFilter).
// ParseDisjunction also accepts id and "or".
func ParseFilter(s string) (connector.AccountFilter, error) {
	p := &filterParser{s: s}
	path, value, err := p.comparison()
	if err != nil {
		return connector.AccountFilter{}, err
	}
	p.space()
	if p.pos != len(p.s) {
		return connector.AccountFilter{}, p.errorf("unexpected %q; only a single eq comparison is supported", p.s[p.pos:])
	}
	attr, ok := filterAttr(path)
	if !ok {
		return connector.AccountFilter{}, fmt.Errorf("filter attribute %q is not supported", path)
	}
	return connector.AccountFilter{Attr: attr, Value: value}, nil
}

// AttrID is the attribute path of a resource's id (RFC 7643 §3.1) in a filter.
const AttrID = "id"

// IDFilter returns the filter that selects the users with one of ids:
// `id eq "<id1>" or id eq "<id2>" ...`, values escaped. ActivityOf sends it.
func IDFilter(ids []string) string {
	var b strings.Builder
	for i, id := range ids {
		if i > 0 {
			b.WriteString(" or ")
		}
		b.WriteString(filterExpr(AttrID, "eq", escapeFilterValue(id)))
	}
	return b.String()
}

// Disjunction is a parsed filter of comparisons joined by "or": it selects the
// users whose id is one of IDs or that match one of Filters.
type Disjunction struct {
	IDs     []string
	Filters []connector.AccountFilter
	// Attrs are the attribute paths of the comparisons as the filter spells them.
	Attrs []string
}

// ParseDisjunction parses `<comparison> or <comparison> ...` (RFC 7644 §3.4.2.2),
// where each comparison is one that ParseFilter accepts or `id eq "<value>"` (id
// is caseExact). "or" is case-insensitive and needs a space on each side; and,
// not, parentheses and other operators are errors. A single comparison is a
// disjunction of one.
func ParseDisjunction(s string) (Disjunction, error) {
	p := &filterParser{s: s}
	var d Disjunction
	for {
		path, value, err := p.comparison()
		if err != nil {
			return Disjunction{}, err
		}
		d.Attrs = append(d.Attrs, path)
		if strings.EqualFold(path, AttrID) || strings.EqualFold(path, SchemaUser+":"+AttrID) {
			d.IDs = append(d.IDs, value)
		} else if attr, ok := filterAttr(path); ok {
			d.Filters = append(d.Filters, connector.AccountFilter{Attr: attr, Value: value})
		} else {
			return Disjunction{}, fmt.Errorf("filter attribute %q is not supported", path)
		}
		spaced := p.space()
		if p.pos == len(p.s) {
			return d, nil
		}
		at := p.pos
		if word := p.attrPath(); !spaced || !strings.EqualFold(word, "or") || !p.space() {
			p.pos = at
			return Disjunction{}, p.errorf("unexpected %q; only comparisons joined by or are supported", p.s[p.pos:])
		}
	}
}

// comparison reads `<attr> eq "<value>"` or `emails[value eq "<value>"]` (then
// the path is emails.value), with leading space.
func (p *filterParser) comparison() (path, value string, err error) {
	p.space()
	path = p.attrPath()
	if path == "" {
		return "", "", p.errorf("attribute name expected")
	}
	if p.peek() != '[' {
		value, err = p.eqValue()
		return path, value, err
	}
	p.pos++
	p.space()
	if sub := p.attrPath(); !strings.EqualFold(sub, "value") || !strings.EqualFold(path, "emails") {
		return "", "", p.errorf("only emails[value eq \"...\"] is supported")
	}
	if value, err = p.eqValue(); err != nil {
		return "", "", err
	}
	p.space()
	if p.peek() != ']' {
		return "", "", p.errorf("] expected")
	}
	p.pos++
	return "emails.value", value, nil
}

// filterAttr maps an attribute path, case-insensitively, to the attribute it names.
func filterAttr(path string) (connector.FilterAttr, bool) {
	p := strings.ToLower(path)
	if rest, ok := strings.CutPrefix(p, strings.ToLower(SchemaUser)+":"); ok {
		p = rest
	}
	switch p {
	case "externalid":
		return connector.ByExternalID, true
	case "username":
		return connector.ByUserName, true
	case "emails", "emails.value":
		return connector.ByEmail, true
	case "employeenumber", strings.ToLower(employeeNumberPath):
		return connector.ByEmployeeNumber, true
	}
	return "", false
}

type filterParser struct {
	s   string
	pos int
}

func (p *filterParser) errorf(format string, args ...any) error {
	return fmt.Errorf("filter at %d: %s", p.pos, fmt.Sprintf(format, args...))
}

func (p *filterParser) peek() byte {
	if p.pos < len(p.s) {
		return p.s[p.pos]
	}
	return 0
}

// space skips spaces and tabs and reports whether there were any.
func (p *filterParser) space() bool {
	start := p.pos
	for p.pos < len(p.s) && (p.s[p.pos] == ' ' || p.s[p.pos] == '\t') {
		p.pos++
	}
	return p.pos > start
}

// attrPath reads an attribute path: letters, digits and ":._-$".
func (p *filterParser) attrPath() string {
	start := p.pos
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		if c == ' ' || c == '\t' || c == '[' || c == ']' || c == '"' || c == '(' || c == ')' {
			break
		}
		p.pos++
	}
	return p.s[start:p.pos]
}

// eqValue reads ` eq "<string>"`.
func (p *filterParser) eqValue() (string, error) {
	p.space()
	if op := p.attrPath(); !strings.EqualFold(op, "eq") {
		return "", p.errorf("operator %q is not supported; only eq", op)
	}
	p.space()
	if p.peek() != '"' {
		return "", p.errorf("a quoted string value is expected")
	}
	start := p.pos
	p.pos++
	for p.pos < len(p.s) {
		switch p.s[p.pos] {
		case '\\':
			p.pos += 2
			continue
		case '"':
			p.pos++
			return unquote(p.s[start:p.pos]), nil
		}
		p.pos++
	}
	return "", p.errorf("unterminated string")
}

// unquote decodes a JSON string literal; if it is not valid JSON (a raw control
// character, say), a backslash simply escapes the next character.
func unquote(lit string) string {
	var s string
	if json.Unmarshal([]byte(lit), &s) == nil {
		return s
	}
	var b strings.Builder
	in := lit[1 : len(lit)-1]
	for i := 0; i < len(in); i++ {
		if in[i] == '\\' && i+1 < len(in) {
			i++
		}
		b.WriteByte(in[i])
	}
	return b.String()
}

// filterForms returns equivalent filter expressions for f, the canonical one
// (Filter) first. Servers evaluate different forms; FindAccounts tries them in
// turn. Every form selects a superset of what f means, as the client re-checks
// each result with f.Matches.
func filterForms(f connector.AccountFilter) ([]string, error) {
	first, err := Filter(f)
	if err != nil {
		return nil, err
	}
	attrs := []string{first[:strings.Index(first, " eq ")]}
	switch f.Attr {
	case connector.ByEmail:
		attrs = append(attrs, "emails[value") // emails[value eq "…"]
	case connector.ByEmployeeNumber:
		attrs = append(attrs, "employeeNumber")
	}
	var forms []string
	for _, a := range attrs {
		forms = append(forms, filterExpr(a, "eq", escapeFilterValue(f.Value)))
	}
	// Some servers compare the escaped literal (`a\"b`) with the value (`a"b`)
	// and never match; a starts-with on the part before the first quote or
	// backslash needs no escaping.
	if i := strings.IndexAny(f.Value, `"\`); i > 0 {
		for _, a := range attrs {
			forms = append(forms, filterExpr(a, "sw", f.Value[:i]))
		}
	}
	return forms, nil
}

func filterExpr(attr, op, escaped string) string {
	if strings.HasSuffix(attr, "[value") {
		return attr + " " + op + ` "` + escaped + `"]`
	}
	return attr + " " + op + ` "` + escaped + `"`
}
