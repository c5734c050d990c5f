package deadletter

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/events"
	"github.com/hrsync/hrsync/store"
)

// Shown is a dead letter as "hrsync dead show" prints it: the row, its message
// decoded as far as it goes, and its history. It is also the command's JSON.
type Shown struct {
	ID     int64     `json:"id"`
	Status string    `json:"status"` // connector.DeadLetterOpen, DeadLetterReplayed or DeadLetterDiscarded
	At     time.Time `json:"at"`
	Feed   string    `json:"feed,omitempty"`
	// Subject is the NATS subject the message came on.
	Subject string `json:"subject"`
	// Reason names the field and what is wrong with it.
	Reason    string `json:"reason"`
	Stream    string `json:"stream,omitempty"`
	StreamSeq uint64 `json:"stream_seq,omitempty"`
	// DataBytes and DataSHA256 describe the whole body as it arrived.
	DataBytes  int64      `json:"data_bytes"`
	DataSHA256 string     `json:"data_sha256,omitempty"`
	Truncated  bool       `json:"truncated,omitempty"`
	PrunedAt   *time.Time `json:"pruned_at,omitempty"`
	ReplayedAt *time.Time `json:"replayed_at,omitempty"`

	DiscardedAt   *time.Time `json:"discarded_at,omitempty"`
	DiscardedBy   string     `json:"discarded_by,omitempty"`
	DiscardReason string     `json:"discard_reason,omitempty"`

	Message Message                 `json:"message"`
	History []store.DeadLetterEvent `json:"history"`
}

// Message is a dead letter's raw message, decoded as far as it goes: a dead
// letter is a message that failed to decode, so every step is best effort and
// says in Notes what it could not do.
type Message struct {
	// Kept is false once the store pruned the message (retention).
	Kept bool `json:"kept"`
	// Mode is "binary" (CloudEvent attributes in ce- headers, the data in the
	// body), "structured" (a CloudEvents JSON envelope in the body) or "" (neither).
	Mode string `json:"mode,omitempty"`
	// Headers are the NATS headers as they arrived.
	Headers map[string][]string `json:"headers,omitempty"`
	// Attributes are the CloudEvent's context attributes (id, source, type,
	// specversion, time, extensions), without the data.
	Attributes map[string]any `json:"attributes,omitempty"`
	// The event data (binary mode: the body): JSON if it is JSON, else Text if it
	// is UTF-8, else Hex.
	Data json.RawMessage `json:"data,omitempty"`
	Text string          `json:"text,omitempty"`
	Hex  string          `json:"hex,omitempty"`
	// Notes say what could not be decoded, and why.
	Notes []string `json:"notes,omitempty"`
}

// Show returns dead letter id with its message decoded and its history.
func Show(ctx context.Context, s Store, id int64) (Shown, error) {
	d, err := get(ctx, s, id)
	if err != nil {
		return Shown{}, err
	}
	hist, err := s.DeadLetterHistory(ctx, id)
	if err != nil {
		return Shown{}, err
	}
	if hist == nil {
		hist = []store.DeadLetterEvent{}
	}
	return Shown{
		ID: d.ID, Status: d.Status(), At: d.At, Feed: d.Feed, Subject: d.Subject, Reason: d.Reason,
		Stream: d.Stream, StreamSeq: d.StreamSeq, DataBytes: d.DataBytes, DataSHA256: d.DataSHA256,
		Truncated: d.Truncated, PrunedAt: d.PrunedAt, ReplayedAt: d.ReplayedAt,
		DiscardedAt: d.DiscardedAt, DiscardedBy: d.DiscardedBy, DiscardReason: d.DiscardReason,
		Message: Decode(d), History: hist,
	}, nil
}

// Decode decodes d's raw message as far as it goes.
func Decode(d connector.DeadLetter) Message {
	var m Message
	if d.PrunedAt != nil {
		m.Notes = append(m.Notes, fmt.Sprintf("the raw message was pruned at %s (retention): only its size and SHA-256 are kept",
			d.PrunedAt.UTC().Format(time.RFC3339)))
		return m
	}
	m.Kept = true
	if d.Truncated {
		m.Notes = append(m.Notes, fmt.Sprintf("the message was cut to the store's cap: %d of %d body bytes kept, so it may not parse", len(d.Data), d.DataBytes))
	}
	if len(d.Headers) > 0 && string(d.Headers) != "null" {
		if err := json.Unmarshal(d.Headers, &m.Headers); err != nil {
			m.Notes = append(m.Notes, fmt.Sprintf("the headers do not parse (%v); as stored: %s", err, Clean(string(d.Headers))))
		}
	}
	ct, attrs := "", map[string]any{}
	for k, vs := range m.Headers {
		lk := strings.ToLower(k)
		if len(vs) == 0 {
			continue
		}
		switch {
		case lk == "content-type":
			ct = vs[0]
		case strings.HasPrefix(lk, "ce-"):
			attrs[lk[len("ce-"):]] = headerValue(vs[0])
		}
	}
	mt, _, _ := mime.ParseMediaType(ct)
	switch {
	case mt == events.ContentTypeStructured:
		m.Mode = "structured"
	case len(attrs) > 0:
		m.Mode = "binary"
		if ct != "" {
			attrs["datacontenttype"] = ct
		}
	case ct == "" && bytes.HasPrefix(bytes.TrimSpace(d.Data), []byte("{")) && bytes.Contains(d.Data, []byte(`"specversion"`)):
		m.Mode = "structured" // a publisher without headers
	}
	data := d.Data
	if m.Mode == "structured" {
		var env map[string]json.RawMessage
		if err := json.Unmarshal(d.Data, &env); err != nil {
			m.Notes = append(m.Notes, fmt.Sprintf("the body is not a JSON object (%v): shown whole", err))
		} else {
			data = nil
			for k, raw := range env {
				switch k {
				case "data":
					data = raw
				case "data_base64":
					var s string
					if err := json.Unmarshal(raw, &s); err == nil {
						if b, err := base64.StdEncoding.DecodeString(s); err == nil {
							data = b
							continue
						}
					}
					m.Notes = append(m.Notes, "data_base64 is not base64: shown as an attribute")
					attrs[k] = jsonValue(raw)
				default:
					attrs[k] = jsonValue(raw)
				}
			}
		}
	}
	if len(attrs) > 0 {
		m.Attributes = attrs
	}
	switch {
	case len(data) == 0:
	case json.Valid(data):
		var b bytes.Buffer
		_ = json.Indent(&b, data, "", "  ")
		m.Data = b.Bytes()
	case utf8.Valid(data):
		m.Text = string(data)
		m.Notes = append(m.Notes, "the data is not JSON: shown as text")
	default:
		m.Hex = hex.EncodeToString(data)
		m.Notes = append(m.Notes, "the data is not UTF-8: shown in hex")
	}
	return m
}

// headerValue undoes the NATS binding's encoding of an attribute value (an
// optional quoted-string, then percent-encoding), where it can.
func headerValue(v string) string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = strings.ReplaceAll(v[1:len(v)-1], `\"`, `"`)
	}
	if u, err := url.PathUnescape(v); err == nil {
		return u
	}
	return v
}

// jsonValue decodes raw, or keeps it as text if it does not decode.
func jsonValue(raw json.RawMessage) any {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return string(raw)
	}
	return v
}

// WriteText writes sh for a person. Every value from the message is passed
// through Clean: a dead letter may be a hostile feed's, and its bytes must not
// steer the terminal.
func (sh Shown) WriteText(w io.Writer) error {
	ew := &errWriter{w: w}
	p := ew.printf
	p("dead letter %d (%s)\n", sh.ID, sh.Status)
	tw := tabwriter.NewWriter(ew, 0, 4, 2, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "  %s\t%s\n", k, fmt.Sprintf(format, args...)) }
	row("stored", "%s", sh.At.UTC().Format(time.RFC3339))
	row("feed", "%s", orDash(Clean(sh.Feed)))
	row("subject", "%s", Clean(sh.Subject))
	if sh.Stream != "" {
		row("stream", "%s, sequence %d", Clean(sh.Stream), sh.StreamSeq)
	}
	row("reason", "%s", Clean(sh.Reason))
	body := fmt.Sprintf("%d bytes", sh.DataBytes)
	if sh.DataSHA256 != "" {
		body += ", SHA-256 " + sh.DataSHA256
	}
	if sh.Truncated {
		body += ", truncated"
	}
	row("body", "%s", body)
	if sh.PrunedAt != nil {
		row("pruned", "%s", sh.PrunedAt.UTC().Format(time.RFC3339))
	}
	if sh.ReplayedAt != nil {
		row("replayed", "%s", sh.ReplayedAt.UTC().Format(time.RFC3339))
	}
	if sh.DiscardedAt != nil {
		row("discarded", "%s by %s: %s", sh.DiscardedAt.UTC().Format(time.RFC3339), Clean(sh.DiscardedBy), Clean(sh.DiscardReason))
	}
	_ = tw.Flush()

	m := sh.Message
	mode := m.Mode + " mode"
	if m.Mode == "" {
		mode = "not a CloudEvent"
	}
	if m.Kept {
		p("\nmessage (%s)\n", mode)
	} else {
		p("\nmessage\n")
	}
	for _, n := range m.Notes {
		p("  note: %s\n", Clean(n))
	}
	if len(m.Headers) > 0 {
		p("  headers\n")
		for _, k := range slices.Sorted(maps.Keys(m.Headers)) {
			for _, v := range m.Headers[k] {
				p("    %s: %s\n", Clean(k), Clean(v))
			}
		}
	}
	if len(m.Attributes) > 0 {
		p("  CloudEvent attributes\n")
		tw := tabwriter.NewWriter(ew, 0, 4, 2, ' ', 0)
		for _, k := range slices.Sorted(maps.Keys(m.Attributes)) {
			v, ok := m.Attributes[k].(string)
			if !ok {
				b, _ := json.Marshal(m.Attributes[k])
				v = string(b)
			}
			fmt.Fprintf(tw, "    %s\t%s\n", Clean(k), Clean(v))
		}
		_ = tw.Flush()
	}
	switch {
	case len(m.Data) > 0:
		p("  data\n")
		for line := range strings.Lines(string(m.Data)) {
			p("    %s\n", Clean(strings.TrimSuffix(line, "\n")))
		}
	case m.Text != "":
		p("  data (text)\n    %s\n", Clean(m.Text))
	case m.Hex != "":
		b, _ := hex.DecodeString(m.Hex)
		p("  data (hex)\n")
		for line := range strings.Lines(hex.Dump(b)) {
			p("    %s", Clean(line))
		}
	}

	p("\nhistory\n")
	if len(sh.History) == 0 {
		p("  none\n")
	}
	tw = tabwriter.NewWriter(ew, 0, 4, 2, ' ', 0)
	for _, e := range sh.History {
		by := ""
		if e.By != "" {
			by = "by " + Clean(e.By)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", e.At.UTC().Format(time.RFC3339), e.Action, by, Clean(e.Detail))
	}
	_ = tw.Flush()
	if sh.Status == connector.DeadLetterOpen {
		p("\nnext: after a fix, hrsync dead replay %d; or give it up: hrsync dead discard %d --reason TEXT --by NAME\n", sh.ID, sh.ID)
	}
	return ew.err
}

// Clean returns s fit for a terminal: control, format (bidi, zero-width) and
// other unprintable characters are written as \u escapes, bytes that are not
// UTF-8 as \x escapes; newlines are kept.
func Clean(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n' || r == '\t' || (unicode.IsPrint(r) && !unicode.Is(unicode.Bidi_Control, r)):
			b.WriteRune(r)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
		i += n
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// errWriter keeps the first write error.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

func (e *errWriter) printf(format string, args ...any) { fmt.Fprintf(e, format, args...) }
