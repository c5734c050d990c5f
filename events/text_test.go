package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/hrsync/hrsync/connector"
)

// badChars are characters of every class the character rule refuses, with the
// name the reason gives them.
var badChars = []struct {
	class string
	r     rune
	name  string
}{
	{"C0", 0x01, "U+0001 (a control character)"},
	{"Tab", '\t', "U+0009 (a control character)"},
	{"LineFeed", '\n', "U+000A (a control character)"},
	{"DEL", 0x7f, "U+007F (a control character)"},
	{"C1", 0x85, "U+0085 (a control character)"},
	{"BidiOverride", 0x202e, "U+202E RIGHT-TO-LEFT OVERRIDE"},
	{"BidiEmbedding", 0x202a, "U+202A LEFT-TO-RIGHT EMBEDDING"},
	{"BidiIsolate", 0x2067, "U+2067 RIGHT-TO-LEFT ISOLATE"},
	{"BidiPopIsolate", 0x2069, "U+2069 POP DIRECTIONAL ISOLATE"},
	{"BidiMark", 0x200f, "U+200F RIGHT-TO-LEFT MARK"},
	{"ArabicLetterMark", 0x061c, "U+061C ARABIC LETTER MARK"},
	{"ZeroWidthSpace", 0x200b, "U+200B ZERO WIDTH SPACE"},
	{"ZeroWidthJoiner", 0x200d, "U+200D ZERO WIDTH JOINER"},
	{"WordJoiner", 0x2060, "U+2060 WORD JOINER"},
	{"BOM", 0xfeff, "U+FEFF ZERO WIDTH NO-BREAK SPACE"},
	{"SoftHyphen", 0xad, "U+00AD SOFT HYPHEN"},
	{"TagCharacter", 0xe0041, "U+E0041 TAG LATIN CAPITAL LETTER A"},
	{"LineSeparator", 0x2028, "U+2028 LINE SEPARATOR"},
}

// textFields are the text fields of the contract, each in a kind that carries
// it, with a value that puts the bad character at position 3.
var textFields = []struct {
	kind  connector.Kind
	field string
	value func(c string) string
	// breaks: free text, which may hold tab and line breaks.
	breaks bool
}{
	{kind: connector.KindHired, field: "worker_id", value: func(c string) string { return "w-" + c + "1" }},
	{kind: connector.KindHired, field: "email", value: func(c string) string { return "ad" + c + "a@example.com" }},
	{kind: connector.KindHired, field: "given_name", value: func(c string) string { return "Ad" + c + "a" }},
	{kind: connector.KindHired, field: "family_name", value: func(c string) string { return "Lo" + c + "velace" }},
	{kind: connector.KindHired, field: "employee_number", value: func(c string) string { return "E-" + c + "42" }},
	{kind: connector.KindHired, field: "org_unit", value: func(c string) string { return "R&" + c + "D" }},
	{kind: connector.KindHired, field: "job_title", value: func(c string) string { return "En" + c + "gineer" }},
	{kind: connector.KindHired, field: "manager_id", value: func(c string) string { return "w-" + c + "9" }},
	{kind: connector.KindHired, field: "locale", value: func(c string) string { return "de" + c + "DE" }},
	{kind: connector.KindUpdated, field: "given_name", value: func(c string) string { return "Ad" + c + "a" }},
	{kind: connector.KindRehired, field: "previous_worker_id", value: func(c string) string { return "w-" + c + "0" }},
	{kind: connector.KindLeft, field: "reason", value: func(c string) string { return "Mo" + c + "ved" }, breaks: true},
	{kind: connector.KindSuspended, field: "reason", value: func(c string) string { return "Pa" + c + "rental leave" }, breaks: true},
	{kind: connector.KindErasureRequested, field: "reason", value: func(c string) string { return "DS" + c + "R-1" }, breaks: true},
	{kind: connector.KindErasureRequested, field: "requested_by", value: func(c string) string { return "dp" + c + "o@example.com" }},
}

// TestCharacterRule holds every text field of every kind to the character rule,
// through each path a value can take: the quick check must not prove it, the
// schema pass and Decode (both content modes) must refuse it naming the field,
// the character and its position.
func TestCharacterRule(t *testing.T) {
	t.Parallel()
	dec := &Decoder{Feeds: testFeeds(t)}
	for _, tf := range textFields {
		for _, bc := range badChars {
			t.Run(string(tf.kind)+"/"+tf.field+"/"+bc.class, func(t *testing.T) {
				t.Parallel()
				v := tf.value(string(bc.r))
				field := "data." + tf.field
				allowed := tf.breaks && (bc.r == '\t' || bc.r == '\n')
				want := "contains " + bc.name + " at position 3"

				data := baseData(tf.kind)
				data[tf.field] = v
				raw, err := json.Marshal(data)
				if err != nil {
					t.Fatal(err)
				}
				if _, ok := quickData(tf.kind, raw); ok && !allowed {
					t.Errorf("quickData proves %s valid", raw)
				}
				_, err = schemaData(tf.kind, raw)
				checkRefusal(t, "schema pass", err, allowed, field, want)

				// The data is checked before data.worker_id is compared with the
				// subject, so worker_id is blamed even though the subject differs.
				s := structuredMsg(t, tf.kind, setData(tf.field, v))
				_, err = dec.Decode(s.subject, s.header, s.body)
				checkRefusal(t, "structured", err, allowed, field, want)

				b := binaryMsg(t, tf.kind, func(_ nats.Header, d map[string]any) { d[tf.field] = v })
				_, err = dec.Decode(b.subject, b.header, b.body)
				checkRefusal(t, "binary", err, allowed, field, want)
			})
		}
	}
}

// checkRefusal checks that err is the refusal of field with reason want, or nil
// if the value is allowed.
func checkRefusal(t *testing.T, path string, err error, allowed bool, field, want string) {
	t.Helper()
	if allowed {
		if err != nil {
			t.Errorf("%s: refused a value the rule admits: %v", path, err)
		}
		return
	}
	var ve *ValidationError
	if !errors.As(err, &ve) || !connector.IsPermanent(err) {
		t.Errorf("%s: error %v (%T), want a permanent *ValidationError", path, err, err)
		return
	}
	if ve.Field != field || ve.Reason != want {
		t.Errorf("%s: %v, want field %q: %s", path, err, field, want)
	}
}

// TestCharacterRuleAdmits checks that the rule leaves names alone that only look
// unusual: letters of any script, combining marks, no-break and ideographic
// spaces, emoji; and line breaks in a reason.
func TestCharacterRuleAdmits(t *testing.T) {
	t.Parallel()
	dec := &Decoder{Feeds: testFeeds(t)}
	for _, v := range []string{"Zoë", "Zoe\u0308", "محمد", "דוד", "José María", "Jean\u00a0Luc", "山田\u3000太郎", "Ṣàngó", "🙂"} {
		for _, mode := range []Mode{Structured, Binary} {
			ev := hiredEvent("w-1", "evt-1")
			ev.Data.GivenName, ev.Data.FamilyName, ev.Data.JobTitle = v, v, v
			msg, err := Encode(ev, mode)
			if err != nil {
				t.Fatal(err)
			}
			f, err := dec.Decode(msg.Subject, msg.Header, msg.Data)
			if err != nil {
				t.Errorf("%s %q: %v", mode, v, err)
			} else if f.Profile.GivenName != v {
				t.Errorf("%s %q: given name %q", mode, v, f.Profile.GivenName)
			}
		}
	}
	left := hiredEvent("w-1", "evt-2")
	left.Kind, left.Data.Email, left.Data.Reason = connector.KindLeft, "", "Moved abroad.\r\n\tSee ticket 42."
	msg, err := Encode(left, Binary)
	if err != nil {
		t.Fatal(err)
	}
	if f, err := dec.Decode(msg.Subject, msg.Header, msg.Data); err != nil || f.Reason != left.Data.Reason {
		t.Errorf("reason with line breaks: %+v, %v", f, err)
	}
}

// TestInvalidUTF8NamesTheField checks that a bad byte is blamed on the field
// that holds it, in both content modes.
func TestInvalidUTF8NamesTheField(t *testing.T) {
	t.Parallel()
	dec := &Decoder{Feeds: testFeeds(t)}
	const want = "is not valid UTF-8: byte 0xFF at position 3"
	s := structuredMsg(t, connector.KindHired, setData("given_name", "AdXa"))
	s.body = bytes.Replace(s.body, []byte("AdXa"), []byte("Ad\xffa"), 1)
	_, err := dec.Decode(s.subject, s.header, s.body)
	checkRefusal(t, "structured", err, false, "data.given_name", want)

	b := binaryMsg(t, connector.KindHired, func(_ nats.Header, d map[string]any) { d["job_title"] = "EnXgineer" })
	b.body = bytes.Replace(b.body, []byte("EnXgineer"), []byte("En\xffgineer"), 1)
	_, err = dec.Decode(b.subject, b.header, b.body)
	checkRefusal(t, "binary", err, false, "data.job_title", want)
}

// TestCharacterRuleAttributes checks the CloudEvents attributes hrsync stores
// (id, subject) against the rule too.
func TestCharacterRuleAttributes(t *testing.T) {
	t.Parallel()
	dec := &Decoder{Feeds: testFeeds(t)}
	s := structuredMsg(t, connector.KindHired, setAttr("id", "ev\u202et-1"))
	_, err := dec.Decode(s.subject, s.header, s.body)
	checkRefusal(t, "structured", err, false, "id", "contains U+202E RIGHT-TO-LEFT OVERRIDE at position 3")

	b := binaryMsg(t, connector.KindHired, func(h nats.Header, _ map[string]any) { h.Set("ce-id", "ev\u200bt-1") })
	_, err = dec.Decode(b.subject, b.header, b.body)
	checkRefusal(t, "binary", err, false, "id", "contains U+200B ZERO WIDTH SPACE at position 3")
}

// TestParseRosterCharacterRule checks that roster cells keep the same rule,
// naming the line, the field and the column.
func TestParseRosterCharacterRule(t *testing.T) {
	t.Parallel()
	csv := "Personalnummer;E-Mail;given_name;job_title;reason\n" +
		"w1;a@example.com;Ada;Engineer;retired\n" +
		"w2;b@example.com;Bo\u202eb;Engineer;\n" +
		"w\u200b3;c@example.com;Cy;Engineer;\n" +
		"w4;d@example.com;Di;\ufeffEngineer;\n" +
		"w5;e@example.com;Ed;Engineer;\"moved\non\"\n" +
		"w6;f@example.com;Fi;Engineer;moved\u2066on\n"
	mapping := RosterMapping{Columns: map[string]string{"Personalnummer": "worker_id", "E-Mail": "email"}}
	_, err := ParseRoster(strings.NewReader(csv), mapping, RosterOptions{Mode: RosterSnapshot})
	re := rosterErrs(t, err)
	var got []string
	for _, e := range re.Errors {
		got = append(got, e.Error())
	}
	want := []string{
		"line 3: given_name contains U+202E RIGHT-TO-LEFT OVERRIDE at position 3",
		"line 4: worker_id contains U+200B ZERO WIDTH SPACE at position 2 (column Personalnummer)",
		"line 5: job_title contains U+FEFF ZERO WIDTH NO-BREAK SPACE at position 1",
		"line 8: reason contains U+2066 LEFT-TO-RIGHT ISOLATE at position 6",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// A Roster built by hand is held to the same rule by Events.
	r := &Roster{Mode: RosterSnapshot, Rows: []RosterRow{{Line: 2, Data: Data{WorkerID: "w1", Email: "a@example.com", FamilyName: "Lo\u202dvelace"}}}}
	_, _, err = r.Events(connector.DefaultFeed("partner-acme", connector.FeedPartner), nil, UploadInfo{Time: eventTime})
	re = rosterErrs(t, err)
	if got := re.Errors[0].Error(); got != "line 2: family_name contains U+202D LEFT-TO-RIGHT OVERRIDE at position 3" {
		t.Errorf("Events: %s", got)
	}
}

// TestConsumeDeadLettersBadText checks the whole way: an event whose name holds a
// right-to-left override is published, terminated and dead-lettered with the
// reason, and no fact is recorded; a clean event next to it goes through.
func TestConsumeDeadLettersBadText(t *testing.T) {
	t.Parallel()
	b := setupConsumer(t, ConsumerConfig{Batch: 4})
	spoof := hiredEvent("w-1", "evt-1")
	spoof.Data.GivenName = "Ad\u202ea"
	b.publish(t, spoof, Structured)
	hidden := hiredEvent("w-2", "evt-2")
	hidden.Data.FamilyName = "Lovelace\u200b"
	b.publish(t, hidden, Binary)
	b.publish(t, hiredEvent("w-3", "evt-3"), Binary)

	waitFor(t, 10*time.Second, "1 fact and 2 dead letters", func() bool {
		facts, dead, _, _ := b.rec.counts()
		return facts == 1 && dead == 2
	})
	b.settled(t)
	if err := b.stop(); err != nil {
		t.Fatalf("Consume = %v, want nil", err)
	}
	b.rec.mu.Lock()
	defer b.rec.mu.Unlock()
	reasons := map[string]string{}
	for _, d := range b.rec.dead {
		reasons[string(d.Data)] = d.Reason
		if d.Feed != "hr" || d.Subject != "hrsync.events.hr.hired" || len(d.Data) == 0 {
			t.Errorf("dead letter %+v", d)
		}
	}
	var got []string
	for _, r := range reasons {
		got = append(got, r)
	}
	slices.Sort(got)
	want := []string{
		`field "data.family_name": contains U+200B ZERO WIDTH SPACE at position 9`,
		`field "data.given_name": contains U+202E RIGHT-TO-LEFT OVERRIDE at position 3`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("dead-letter reasons:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, ok := b.rec.facts["/feeds/hr evt-3"]; !ok {
		t.Error("the clean event was not recorded")
	}
}

// FuzzBadText checks the character rule's two spellings against each other: the
// schema's $defs/text (\p{Cc}\p{Cf}\p{Zl}\p{Zp}) admits a line exactly when
// badText does, and badText's reason names a character that is in the value.
func FuzzBadText(f *testing.F) {
	for _, s := range []string{"Ada", "Ad\u202ea", "\u200b", "Zoë", "a\u2028b", "\ufeffA", "a\x85", "\u00ad", "a\tb", "\xffA", "e\u0301", "\U000e0041"} {
		f.Add(s)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(SchemaJSON(connector.KindHired)))
	if err != nil {
		f.Fatal(err)
	}
	if err := c.AddResource(SchemaID(connector.KindHired), doc); err != nil {
		f.Fatal(err)
	}
	text := c.MustCompile(SchemaID(connector.KindHired) + "#/$defs/text")
	f.Fuzz(func(t *testing.T, s string) {
		p := badText(s, false)
		if !utf8.ValidString(s) {
			if p == "" {
				t.Fatalf("%q: invalid UTF-8 admitted", s)
			}
			return
		}
		n := utf8.RuneCountInString(s)
		if n < 1 || n > 256 {
			return
		}
		if schemaOK := text.Validate(s) == nil; schemaOK != (p == "") {
			t.Fatalf("%q: schema admits it: %v; badText: %q", s, schemaOK, p)
		}
	})
}
