package events

import (
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hrsync/hrsync/connector"
)

// The quick check of event data. Almost every event's data is a flat JSON object
// of plain strings, and for those a few byte loops decide what the JSON Schema
// pass decides at several times the cost. quickData accepts only data it can
// prove valid against the kind's schema; anything else (escapes, other JSON
// types, a repeated or unknown field, a value it is unsure of) it leaves to the
// schema pass, which then gives the same answer and the same error as ever.
// TestQuickDataAgreesWithSchema and FuzzQuickData hold it to that.

// quickField is the check of one field: true only if the schema admits v (a
// JSON string's content, without escapes, valid UTF-8, no byte below 0x20).
type quickField func(v string) bool

// quickFields are the fields of each kind's data with the check of the
// definition the schema gives them. Kinds not here always take the schema pass.
var quickFields = func() map[connector.Kind]map[string]quickField {
	person := map[string]quickField{
		"worker_id":       quickID,
		"email":           quickEmail,
		"given_name":      quickText,
		"family_name":     quickText,
		"employee_number": quickText,
		"org_unit":        quickText,
		"job_title":       quickText,
		"manager_id":      quickID,
		"locale":          quickLocale,
		"effective":       quickEffective,
		"timezone":        quickTimezone,
	}
	with := func(extra map[string]quickField) map[string]quickField {
		m := make(map[string]quickField, len(person)+len(extra))
		for k, v := range person {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	return map[connector.Kind]map[string]quickField{
		connector.KindHired:   person,
		connector.KindUpdated: person,
		connector.KindResumed: person,
		connector.KindLeft:    with(map[string]quickField{"reason": quickReason}),
		connector.KindRehired: with(map[string]quickField{"previous_worker_id": quickID}),
	}
}()

// quickRequired are the required fields of each kind in quickFields.
var quickRequired = map[connector.Kind][]string{
	connector.KindHired:   {"worker_id", "effective", "email"},
	connector.KindRehired: {"worker_id", "effective", "email"},
	connector.KindUpdated: {"worker_id", "effective"},
	connector.KindResumed: {"worker_id", "effective"},
	connector.KindLeft:    {"worker_id", "effective"},
}

// quickData decodes data (valid UTF-8) of kind k if it can prove it valid
// against the schema; ok false means "not proven", not "invalid".
func quickData(k connector.Kind, data []byte) (d Data, ok bool) {
	fields := quickFields[k]
	if fields == nil {
		return Data{}, false
	}
	var vals [16]struct{ name, value string }
	n := 0
	s := string(data)
	i := skipSpace(s, 0)
	if i >= len(s) || s[i] != '{' {
		return Data{}, false
	}
	i = skipSpace(s, i+1)
	if i < len(s) && s[i] == '}' {
		return Data{}, false // required fields are missing: the schema says which
	}
	for {
		name, j, ok := plainString(s, i)
		if !ok {
			return Data{}, false
		}
		j = skipSpace(s, j)
		if j >= len(s) || s[j] != ':' {
			return Data{}, false
		}
		value, j2, ok := plainString(s, skipSpace(s, j+1))
		if !ok {
			return Data{}, false
		}
		check := fields[name]
		if check == nil || n == len(vals) || !check(value) {
			return Data{}, false
		}
		for _, v := range vals[:n] {
			if v.name == name {
				return Data{}, false
			}
		}
		vals[n].name, vals[n].value = name, value
		n++
		i = skipSpace(s, j2)
		if i >= len(s) {
			return Data{}, false
		}
		if s[i] == '}' {
			break
		}
		if s[i] != ',' {
			return Data{}, false
		}
		i = skipSpace(s, i+1)
	}
	if skipSpace(s, i+1) != len(s) {
		return Data{}, false
	}
	get := func(name string) string {
		for _, v := range vals[:n] {
			if v.name == name {
				return v.value
			}
		}
		return ""
	}
	for _, name := range quickRequired[k] {
		if get(name) == "" {
			return Data{}, false
		}
	}
	return Data{
		WorkerID:         get("worker_id"),
		Email:            get("email"),
		GivenName:        get("given_name"),
		FamilyName:       get("family_name"),
		EmployeeNumber:   get("employee_number"),
		OrgUnit:          get("org_unit"),
		JobTitle:         get("job_title"),
		ManagerID:        get("manager_id"),
		Locale:           get("locale"),
		Effective:        get("effective"),
		Timezone:         get("timezone"),
		Reason:           get("reason"),
		PreviousWorkerID: get("previous_worker_id"),
	}, true
}

// skipSpace returns the index of the first byte at or after i that is not JSON
// whitespace.
func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

// plainString reads a JSON string without escapes at s[i] and returns its
// content and the index after its closing quote. A string with a backslash or a
// control byte is not plain.
func plainString(s string, i int) (string, int, bool) {
	if i >= len(s) || s[i] != '"' {
		return "", 0, false
	}
	for j := i + 1; j < len(s); j++ {
		switch c := s[j]; {
		case c == '"':
			return s[i+1 : j], j + 1, true
		case c == '\\' || c < 0x20:
			return "", 0, false
		}
	}
	return "", 0, false
}

// runeLen reports whether s has from min to max characters.
func runeLen(s string, min, max int) bool {
	if len(s) < min {
		return false
	}
	if len(s) <= max {
		return true
	}
	n := utf8.RuneCountInString(s)
	return n >= min && n <= max
}

// quickID is $defs/id: 1 to 128 characters, none of them whitespace or control.
// Only printable ASCII is proven here.
func quickID(v string) bool {
	if len(v) < 1 || len(v) > 128 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// quickText is $defs/text: 1 to 256 characters that keep the character rule
// (badText: no control, format, line or paragraph separator characters). The
// value has no byte below 0x20 (plainString).
func quickText(v string) bool {
	return runeLen(v, 1, 256) && badText(v, false) == ""
}

// quickReason is the reason of left: 1 to 1024 characters that keep the
// character rule for free text (tab and line breaks would be escaped, and are
// admitted anyway).
func quickReason(v string) bool {
	return runeLen(v, 1, 1024) && badText(v, true) == ""
}

// quickEmail is $defs/email, on plain addresses: the schema's pattern (one @,
// no whitespace, a dot in the domain) and the email format as the validator
// asserts it (an unquoted local part of at most 64 allowed characters without
// stray dots; a host name of letters, digits and hyphens).
func quickEmail(v string) bool {
	if len(v) > 254 {
		return false
	}
	at := strings.IndexByte(v, '@')
	if at < 1 || at > 64 {
		return false
	}
	local, domain := v[:at], v[at+1:]
	if local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return false
	}
	for i := 0; i < len(local); i++ {
		c := local[i]
		if !isAlnum(c) && !strings.ContainsRune(".!#$%&'*+-/=?^_`{|}~", rune(c)) {
			return false
		}
	}
	if len(domain) > 253 || !strings.Contains(domain, ".") {
		return false
	}
	for label := range strings.SplitSeq(domain, ".") {
		if len(label) < 1 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !isAlnum(c) && c != '-' {
				return false
			}
		}
	}
	return true
}

// quickLocale is $defs/locale: ^[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8})*$, at most 35.
func quickLocale(v string) bool {
	if len(v) > 35 {
		return false
	}
	parts := strings.FieldsFunc(v, func(r rune) bool { return r == '-' || r == '_' })
	if len(parts) == 0 || strings.Count(v, "-")+strings.Count(v, "_") != len(parts)-1 {
		return false // empty, or a separator at an end or twice in a row
	}
	for i, p := range parts {
		if i == 0 && (len(p) < 2 || len(p) > 3) || len(p) > 8 {
			return false
		}
		for j := 0; j < len(p); j++ {
			if c := p[j]; !isAlpha(c) && (i == 0 || !isDigit(c)) {
				return false
			}
		}
	}
	return true
}

// quickEffective is $defs/effective: a full-date, or a date-time with seconds,
// an optional fraction of 1 to 9 digits and Z or a ±hh:mm offset, each part in
// range (no leap seconds).
func quickEffective(v string) bool {
	if len(v) < len(time.DateOnly) || !quickDate(v[:len(time.DateOnly)]) {
		return false
	}
	t := v[len(time.DateOnly):]
	if t == "" {
		return true
	}
	// Thh:mm:ss
	if len(t) < 9 || t[0] != 'T' || t[3] != ':' || t[6] != ':' ||
		!num(t[1:3], 23) || !num(t[4:6], 59) || !num(t[7:9], 59) {
		return false
	}
	t = t[9:]
	if strings.HasPrefix(t, ".") {
		d := 1
		for d < len(t) && isDigit(t[d]) {
			d++
		}
		if d == 1 || d > 10 {
			return false
		}
		t = t[d:]
	}
	if t == "Z" {
		return true
	}
	return len(t) == 6 && (t[0] == '+' || t[0] == '-') && t[3] == ':' && num(t[1:3], 23) && num(t[4:6], 59)
}

// quickDate reports whether v is an RFC 3339 full-date of a real day.
func quickDate(v string) bool {
	if len(v) != len(time.DateOnly) || v[4] != '-' || v[7] != '-' {
		return false
	}
	for _, i := range []int{0, 1, 2, 3, 5, 6, 8, 9} {
		if !isDigit(v[i]) {
			return false
		}
	}
	_, err := time.Parse(time.DateOnly, v)
	return err == nil
}

// quickTimezone is $defs/timezone: 1 to 64 characters,
// ^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$. Whether the zone exists is for
// the decoder to check afterwards, as on the schema path.
func quickTimezone(v string) bool {
	if len(v) < 1 || len(v) > 64 || !isAlpha(v[0]) || v[len(v)-1] == '/' {
		return false
	}
	for i := 1; i < len(v); i++ {
		switch c := v[i]; {
		case isAlnum(c) || c == '_' || c == '+' || c == '-':
		case c == '/' && v[i-1] != '/':
		default:
			return false
		}
	}
	return true
}

// num reports whether s is two digits of at most max.
func num(s string, max int) bool {
	return len(s) == 2 && isDigit(s[0]) && isDigit(s[1]) && int(s[0]-'0')*10+int(s[1]-'0') <= max
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }
func isAlnum(c byte) bool { return isDigit(c) || isAlpha(c) }
