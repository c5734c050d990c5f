package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/runenames"
)

// The character rule of contract v1. Every text value an event or a roster row
// carries to the store or the LMS (ids, names, email, employee number, org unit,
// job title, locale, manager, reason, requested_by) is refused if it holds:
//
//   - invalid UTF-8;
//   - a control character (Unicode category Cc: U+0000-U+001F, U+007F-U+009F),
//     except that free text (a reason) may hold tab, line feed and carriage return;
//   - a format character (category Cf): among them the bidi controls U+061C,
//     U+200E, U+200F, U+202A-U+202E and U+2066-U+2069, the zero-width characters
//     U+200B-U+200D, U+2060 and U+FEFF, and the soft hyphen U+00AD;
//   - a line or paragraph separator (U+2028, U+2029: categories Zl and Zp).
//
// Names and the other one-line fields reach admin screens and exports of the LMS,
// where a right-to-left override or an invisible character makes one person look
// like another; a reason is read by a person too, and may span lines. The JSON
// Schemas say the same with \p{Cc}\p{Cf}\p{Zl}\p{Zp}; badText is the Go side of
// it, used to explain a refusal and to check roster cells. docs/events.md is the
// publisher's view.

// badText returns why s breaks the character rule, naming the first offending
// character and its position (1-based, in characters), or "" if s keeps it.
// breaks admits tab, line feed and carriage return (free text).
func badText(s string, breaks bool) string {
	pos := 0
	for i, r := range s {
		pos++
		if r < utf8.RuneSelf && r >= 0x20 && r != 0x7f {
			continue
		}
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				return fmt.Sprintf("is not valid UTF-8: byte 0x%02X at position %d", s[i], pos)
			}
		}
		if breaks && (r == '\t' || r == '\n' || r == '\r') {
			continue
		}
		if unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) {
			return fmt.Sprintf("contains %s at position %d", runeName(r), pos)
		}
	}
	return ""
}

// runeName returns e.g. "U+202E RIGHT-TO-LEFT OVERRIDE", or "U+000A (a control
// character)" where Unicode gives the character no name of its own.
func runeName(r rune) string {
	if name := runenames.Name(r); name != "" && name[0] != '<' {
		return fmt.Sprintf("%U %s", r, name)
	}
	return fmt.Sprintf("%U (a control character)", r)
}

// utf8Error is the error for JSON text raw at field that is not valid UTF-8. It
// names the member that holds the first bad byte, as deep as objects go (the
// field "body" names its members without a prefix: "id", "data.given_name"),
// and the byte's position in that member's JSON string.
func utf8Error(field string, raw []byte) error {
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) == nil { // invalid UTF-8 inside strings is not a syntax error
		for _, name := range slices.Sorted(maps.Keys(obj)) {
			if v := obj[name]; !utf8.Valid(v) {
				if field != "body" {
					name = field + "." + name
				}
				return utf8Error(name, v)
			}
		}
	}
	if raw = bytes.TrimSpace(raw); len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' {
		if p := badText(string(raw[1:len(raw)-1]), true); p != "" {
			return invalid(field, "%s", p)
		}
	}
	return invalid(field, "not valid UTF-8")
}
