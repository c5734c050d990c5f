package sandbox

import (
	"encoding/json"
	"strings"

	"github.com/hrsync/hrsync/connector/lms/scim"
)

// attrList splits a comma-separated attributes or excludedAttributes query
// parameter (RFC 7644 §3.4.2.5); "" is none.
func attrList(s string) []string {
	var out []string
	for a := range strings.SplitSeq(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// project returns u with only the attributes named in attrs (when attrs is not
// empty), less those named in excluded (RFC 7644 §3.4.2.5, §3.9). Names are in
// standard attribute notation (§3.10) and case-insensitive: "userName",
// "name.givenName", "emails.value", a schema URN's attribute
// ("urn:...:enterprise:2.0:User:employeeNumber") or a whole extension (its URN).
// The sub-attribute of an extension's attribute ("...:manager.value") selects
// that attribute whole. id and schemas are returned always ("returned" is
// "always" for id, RFC 7643 §3.1): they are neither left out nor excluded.
func project(u scim.User, attrs, excluded []string) (map[string]json.RawMessage, error) {
	b, err := json.Marshal(u)
	if err != nil {
		return nil, err
	}
	var full map[string]json.RawMessage
	if err := json.Unmarshal(b, &full); err != nil {
		return nil, err
	}
	always := func(k string) bool { return strings.EqualFold(k, "id") || strings.EqualFold(k, "schemas") }
	out := full
	if len(attrs) > 0 {
		out = map[string]json.RawMessage{}
		for k, v := range full {
			if always(k) {
				out[k] = v
			}
		}
		for key, subs := range selection(full, attrs) {
			if subs == nil {
				out[key] = full[key]
			} else if v, ok := filterSubs(full[key], subs, true); ok {
				out[key] = v
			}
		}
	}
	for key, subs := range selection(out, excluded) {
		switch {
		case always(key):
		case subs == nil:
			delete(out, key)
		default:
			if v, ok := filterSubs(out[key], subs, false); ok {
				out[key] = v
			}
		}
	}
	return out, nil
}

// selection resolves attribute names to the keys of m they select: a nil set for
// the whole attribute, else the (folded) sub-attributes. Names that select
// nothing in m are left out.
func selection(m map[string]json.RawMessage, names []string) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, name := range names {
		attr, sub := resolveAttr(name)
		for k := range m {
			if !strings.EqualFold(k, attr) {
				continue
			}
			subs, seen := out[k]
			switch {
			case sub == "" || (seen && subs == nil):
				out[k] = nil // the whole attribute
			case !seen:
				out[k] = map[string]bool{strings.ToLower(sub): true}
			default:
				subs[strings.ToLower(sub)] = true
			}
		}
	}
	return out
}

// resolveAttr splits an attribute name into the top-level key it names (an
// extension's URN, or a core attribute, its core URN prefix dropped) and a
// sub-attribute ("" for none).
func resolveAttr(name string) (attr, sub string) {
	lower := strings.ToLower(strings.TrimSpace(name))
	for _, urn := range []string{scim.SchemaEnterpriseUser, scim.SchemaTrainingUser} {
		u := strings.ToLower(urn)
		if lower == u {
			return urn, ""
		}
		if rest, ok := strings.CutPrefix(lower, u+":"); ok {
			rest, _, _ = strings.Cut(rest, ".")
			return urn, rest
		}
	}
	lower = strings.TrimPrefix(lower, strings.ToLower(scim.SchemaUser)+":")
	attr, sub, _ = strings.Cut(lower, ".")
	return attr, sub
}

// filterSubs keeps (keep true) or drops the sub-attributes subs of a complex
// attribute, or of each value of a multi-valued one. ok is false when raw is
// neither, or nothing is left of it.
func filterSubs(raw json.RawMessage, subs map[string]bool, keep bool) (json.RawMessage, bool) {
	one := func(obj map[string]json.RawMessage) map[string]json.RawMessage {
		out := map[string]json.RawMessage{}
		for k, v := range obj {
			if subs[strings.ToLower(k)] == keep {
				out[k] = v
			}
		}
		return out
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) == nil {
		o := one(obj)
		if len(o) == 0 {
			return nil, false
		}
		b, err := json.Marshal(o)
		return b, err == nil
	}
	var list []map[string]json.RawMessage
	if json.Unmarshal(raw, &list) != nil {
		return nil, false
	}
	var out []map[string]json.RawMessage
	for _, obj := range list {
		if o := one(obj); len(o) > 0 {
			out = append(out, o)
		}
	}
	if len(out) == 0 {
		return nil, false
	}
	b, err := json.Marshal(out)
	return b, err == nil
}
