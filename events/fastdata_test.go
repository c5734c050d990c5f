package events

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/hrsync/hrsync/connector"
)

// quickValues are values for each field check of quickData, valid and not, many
// on the edges of the schema's definitions.
var quickValues = []string{
	"", " ", "w1", "w 1", "w\u00a01", "W-0001/x", strings.Repeat("i", 128), strings.Repeat("i", 129),
	"Ada", "Zoë", "Ada\u007f", "Ada\u0085", strings.Repeat("é", 256), strings.Repeat("é", 257), strings.Repeat("r", 1024), strings.Repeat("r", 1025),
	"ada@example.com", "Ada.L+x@mail.example.co", "a@b.c", "a@b", "@b.c", ".a@b.c", "a.@b.c", "a..b@b.c", "a@-b.c", "a@b-.c", "a@b..c",
	"a@b.c.", "a@@b.c", "a b@c.d", `"a"@b.c`, "a@[127.0.0.1]", "zoë@b.c", "a@bü.c", strings.Repeat("a", 64) + "@b.c", strings.Repeat("a", 65) + "@b.c",
	"a@" + strings.Repeat("b", 63) + ".c", "a@" + strings.Repeat("b", 64) + ".c", "a!#$%&'*+-/=?^_`{|}~@b.c",
	"de", "de-DE", "de_DE", "deu-x-1", "d", "deut", "de-", "-de", "de--DE", "de-DE-", "1e", "de-toolongsub", "de-12345678", "zh-Hant-TW",
	"en-" + strings.Repeat("a-", 16),
	"2026-12-01", "2026-02-29", "2028-02-29", "2026-13-01", "2026-1-01", "2026-12-01T18:00:00Z", "2026-12-01t18:00:00Z",
	"2026-12-01T18:00:00+01:00", "2026-12-01T18:00:00.123456789-05:30", "2026-12-01T18:00:00.1234567890Z", "2026-12-01T18:00:00.Z",
	"2026-12-01T24:00:00Z", "2026-12-01T23:60:00Z", "2026-12-01T23:59:60Z", "2026-12-01T18:00:00+24:00", "2026-12-01T18:00:00+01:60",
	"2026-12-01T18:00Z", "2026-12-01T18:00:00", "2026-12-01 18:00:00Z", "２026-12-01",
	"UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires", "Etc/GMT+1", "Europe//Berlin", "Europe/", "/Europe", "1Europe", "Mars/Olympus", strings.Repeat("Z", 64), strings.Repeat("Z", 65),
	"Moved abroad", "tab\there",
	// The character rule: bidi controls, zero-width and other format characters.
	"Ad\u202ea", "Ad\u200ba", "\ufeffAda", "Ada\u00ad", "Ada\u2028", "w\u200d1", "de\u2066DE",
}

func checkQuick(t testing.TB, k connector.Kind, data []byte) {
	t.Helper()
	if !utf8.Valid(data) || len(strings.TrimSpace(string(data))) == 0 {
		return // decodeData refuses these before either pass
	}
	qd, ok := quickData(k, data)
	if !ok {
		return
	}
	sd, err := schemaData(k, data)
	if err != nil {
		t.Fatalf("%s: quickData accepts %s, the schema does not: %v", k, data, err)
	}
	if qd != sd {
		t.Fatalf("%s: %s: quickData decodes %+v, the schema pass %+v", k, data, qd, sd)
	}
}

// TestQuickDataAgreesWithSchema checks, field by field and value by value, that
// quickData accepts nothing the schema rejects and decodes what the schema pass
// decodes; and that it does accept ordinary events.
func TestQuickDataAgreesWithSchema(t *testing.T) {
	base := map[connector.Kind]map[string]string{}
	for k := range quickFields {
		m := map[string]string{"worker_id": "w1", "effective": "2026-12-01"}
		if slices.Contains(quickRequired[k], "email") {
			m["email"] = "ada@example.com"
		}
		base[k] = m
		data, _ := json.Marshal(m)
		if _, ok := quickData(k, data); !ok {
			t.Errorf("%s: quickData does not accept %s", k, data)
		}
		checkQuick(t, k, data)
	}
	accepted := 0
	for k, fields := range quickFields {
		for name := range fields {
			for _, v := range quickValues {
				m := map[string]string{}
				for bk, bv := range base[k] {
					m[bk] = bv
				}
				m[name] = v
				data, _ := json.Marshal(m)
				if _, ok := quickData(k, data); ok {
					accepted++
				}
				checkQuick(t, k, data)
			}
		}
	}
	if accepted == 0 {
		t.Fatal("quickData accepted nothing")
	}
	// Shapes the quick check must leave to the schema pass, or get right.
	for _, data := range []string{
		`{}`, `[]`, `null`, `"x"`, `{"worker_id":"w1","effective":"2026-12-01","email":"a@b.c"} x`,
		` { "worker_id" : "w1" , "effective" : "2026-12-01" , "email" : "a@b.c" } `,
		`{"worker_id":"w1","worker_id":"w2","effective":"2026-12-01","email":"a@b.c"}`,
		`{"worker_id":"w1","effective":"2026-12-01","email":"a@b.c","extra":"x"}`,
		`{"worker_id":"w1","effective":"2026-12-01","email":"a@b.c",}`,
		`{"worker_id":"w\u0031","effective":"2026-12-01","email":"a@b.c"}`,
		`{"worker_id":"w1","effective":"2026-12-01","email":null}`,
		`{"worker_id":"w1","effective":"2026-12-01","email":"a@b.c","locale":1}`,
		`{"Worker_ID":"w1","effective":"2026-12-01","email":"a@b.c"}`,
		`{"worker_id":"w1","effective":"2026-12-01"}`,
	} {
		for k := range quickFields {
			checkQuick(t, k, []byte(data))
		}
	}
}

// FuzzQuickData checks that quickData accepts no data the schema rejects, and
// decodes accepted data as the schema pass does.
func FuzzQuickData(f *testing.F) {
	f.Add(`{"worker_id":"w1","effective":"2026-12-01","email":"ada@example.com","given_name":"Ada","locale":"de-DE","timezone":"Europe/Berlin"}`)
	f.Add(`{"worker_id":"w1","effective":"2026-12-01T18:00:00.5+01:00","reason":"Moved abroad","previous_worker_id":"w0"}`)
	f.Add("{\"worker_id\":\"w1\",\"effective\":\"2026-12-01\",\"email\":\"ada@example.com\",\"given_name\":\"Ad\u202ea\",\"reason\":\"gone\u200b\"}")
	f.Fuzz(func(t *testing.T, data string) {
		for _, k := range connector.Kinds {
			checkQuick(t, k, []byte(data))
		}
	})
}
