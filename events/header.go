package events

import (
	"encoding/json"
	"fmt"
	"mime"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"github.com/hrsync/hrsync/connector"
)

const (
	headerPrefix      = "ce-"
	headerContentType = "content-type"
)

// envelope is what the headers say about a message: its content mode and, in
// binary mode, the CloudEvents attributes (lower-case names without "ce-", values
// unescaped).
type envelope struct {
	mode  Mode
	attrs map[string]string
}

// readHeaders finds the content mode and, in binary mode, the attributes.
//
// Header names are matched case-insensitively (the NATS binding says they are
// case-insensitive; nats.Header is not). A content-type of
// application/cloudevents+json means structured mode; otherwise a ce-specversion
// header means binary mode; a message with neither is read as structured, which is
// what a publisher without header support sends.
func readHeaders(h nats.Header) (envelope, error) {
	var ct string
	var haveCT bool
	attrs := map[string]string{}
	for k, vs := range h {
		lk := strings.ToLower(k)
		switch {
		case lk == headerContentType:
			if len(vs) == 0 {
				continue
			}
			if haveCT || len(vs) > 1 {
				return envelope{}, invalid("content-type", "header given more than once")
			}
			ct, haveCT = vs[0], true
		case strings.HasPrefix(lk, headerPrefix):
			if len(vs) == 0 {
				continue
			}
			name := lk[len(headerPrefix):]
			if !validAttrName(name) {
				return envelope{}, invalid(orField(clip(name), "headers"), "header %s: not a CloudEvents attribute name (lower-case letters and digits)", clip(k))
			}
			if _, dup := attrs[name]; dup || len(vs) > 1 {
				return envelope{}, invalid(name, "header %s given more than once", lk)
			}
			v, err := unescapeHeaderValue(vs[0])
			if err != nil {
				return envelope{}, invalid(name, "header %s: %v", lk, err)
			}
			attrs[name] = v
		}
	}
	if haveCT {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil {
			return envelope{}, invalid("content-type", "not a media type: %q", clip(ct))
		}
		switch {
		case mt == ContentTypeStructured:
			return envelope{mode: Structured}, nil
		case strings.HasPrefix(mt, "application/cloudevents"):
			return envelope{}, invalid("content-type", "%q is not supported: structured mode must be %s", clip(mt), ContentTypeStructured)
		}
		// Not a CloudEvents format: binary mode, and content-type is the data's type.
		if dct, ok := attrs["datacontenttype"]; ok && dct != ct {
			return envelope{}, invalid("datacontenttype", "header ce-datacontenttype %q contradicts content-type %q", clip(dct), clip(ct))
		}
		attrs["datacontenttype"] = ct
		if _, ok := attrs["specversion"]; !ok {
			return envelope{}, invalid("specversion", "required: content-type %q is not %s, so this is binary mode, which needs the header ce-specversion", clip(ct), ContentTypeStructured)
		}
		return envelope{mode: Binary, attrs: attrs}, nil
	}
	if len(attrs) == 0 {
		return envelope{mode: Structured}, nil
	}
	if _, ok := attrs["specversion"]; !ok {
		return envelope{}, invalid("specversion", "required: binary mode (ce- headers) needs the header ce-specversion")
	}
	return envelope{mode: Binary, attrs: attrs}, nil
}

// validAttrName reports whether name may be a CloudEvents attribute name.
func validAttrName(name string) bool {
	if name == "" {
		return false
	}
	for _, c := range []byte(name) {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// unescapeHeaderValue undoes the NATS binding's encoding of an attribute value: an
// optional RFC 7230 quoted-string, then one round of percent-decoding. The result
// must be valid UTF-8 (which rejects overlong encodings).
func unescapeHeaderValue(v string) (string, error) {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		var b strings.Builder
		for i := 1; i < len(v)-1; i++ {
			c := v[i]
			if c == '\\' && i+1 < len(v)-1 {
				i++
				c = v[i]
			}
			b.WriteByte(c)
		}
		v = b.String()
	}
	if strings.IndexByte(v, '%') >= 0 {
		var b strings.Builder
		for i := 0; i < len(v); i++ {
			if v[i] != '%' {
				b.WriteByte(v[i])
				continue
			}
			if i+2 >= len(v) || !isHex(v[i+1]) || !isHex(v[i+2]) {
				return "", fmt.Errorf("bad percent-encoding in %q", clip(v))
			}
			b.WriteByte(unhex(v[i+1])<<4 | unhex(v[i+2]))
			i += 2
		}
		v = b.String()
	}
	if !utf8.ValidString(v) {
		return "", fmt.Errorf("not valid UTF-8 after percent-decoding")
	}
	return v, nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// escapeHeaderValue percent-encodes an attribute value as the NATS binding asks:
// space, double quote, percent and everything outside printable ASCII.
func escapeHeaderValue(v string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == '%' {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// HeadersJSON encodes message headers for a dead letter: a JSON object of string
// arrays (map[string][]string). It returns nil for no headers.
func HeadersJSON(h nats.Header) []byte {
	if len(h) == 0 {
		return nil
	}
	b, err := json.Marshal(map[string][]string(h))
	if err != nil { // cannot happen for map[string][]string
		return nil
	}
	return b
}

// ReplayMessage rebuilds the message a dead letter was made from (subject, headers,
// data), so that it can be decoded again after a fix, e.g. with Decoder.Decode.
// A dead letter whose message the store pruned or truncated cannot be rebuilt.
func ReplayMessage(d connector.DeadLetter) (*nats.Msg, error) {
	switch {
	case d.PrunedAt != nil:
		return nil, fmt.Errorf("dead letter %d: its message was pruned at %s (retention); only its reason and SHA-256 %s are kept",
			d.ID, d.PrunedAt.UTC().Format(time.RFC3339), d.DataSHA256)
	case d.Truncated:
		return nil, fmt.Errorf("dead letter %d: its message was cut to the store's cap (%d of %d body bytes kept): it cannot be replayed",
			d.ID, len(d.Data), d.DataBytes)
	}
	msg := &nats.Msg{Subject: d.Subject, Data: d.Data}
	if len(d.Headers) > 0 && string(d.Headers) != "null" {
		var h map[string][]string
		if err := json.Unmarshal(d.Headers, &h); err != nil {
			return nil, fmt.Errorf("dead letter %d: headers: %w", d.ID, err)
		}
		msg.Header = nats.Header(h)
	}
	return msg, nil
}
