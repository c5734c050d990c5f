package moodle

import (
	"net/url"
	"strconv"
	"strings"
)

// form is the body of one web service call: Moodle's REST protocol takes the
// function's parameters form-encoded, an array or a structure as one key per
// leaf, its path in brackets: users[0][username]=anna, values[1]=42,
// users[0][customfields][0][type]=jobtitle. Keys keep the order they were
// added in, so that a body reads like the call it makes (and PHP, which keeps
// at most max_input_vars of them, keeps the first ones).
type form struct {
	keys []string
	vals []string
}

// set adds the leaf at path (a name, then names and indexes) with value v.
func (f *form) set(v string, path ...any) {
	var b strings.Builder
	for i, p := range path {
		var s string
		switch p := p.(type) {
		case string:
			s = p
		case int:
			s = strconv.Itoa(p)
		case int64:
			s = strconv.FormatInt(p, 10)
		default:
			panic("moodle: form path element of unexpected type")
		}
		if i == 0 {
			b.WriteString(s)
			continue
		}
		b.WriteByte('[')
		b.WriteString(s)
		b.WriteByte(']')
	}
	f.keys = append(f.keys, b.String())
	f.vals = append(f.vals, v)
}

// len is the number of leaves: what PHP's max_input_vars counts.
func (f *form) len() int { return len(f.keys) }

// encode returns the body, keys in the order they were set.
func (f *form) encode() string {
	var b strings.Builder
	for i, k := range f.keys {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(k))
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(f.vals[i]))
	}
	return b.String()
}
