package events

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
)

// rosterFile returns a snapshot file of n rows and a current roster of n members:
// 2% of the members are missing from the file (leavers), 2% of the rows are new
// (hires), 1% were leavers (rehires) and 1% have a changed job title (updates).
func rosterFile(n int) ([]byte, []Member) {
	var buf bytes.Buffer
	buf.WriteString("\uFEFFPersonalnummer;E-Mail;Vorname;Nachname;Eintritt;Abteilung;Funktion;Sprache;Bemerkung\r\n")
	current := make([]Member, 0, n)
	for i := range n {
		id := fmt.Sprintf("A-%07d", i)
		p := connector.Profile{
			Email:      fmt.Sprintf("person.%d@acme.example", i),
			GivenName:  "Vorname",
			FamilyName: fmt.Sprintf("Nachname-%d", i),
			OrgUnit:    fmt.Sprintf("Abteilung %d", i%50),
			JobTitle:   "Sachbearbeitung",
			Locale:     "de-DE",
		}
		m := Member{WorkerID: id, Active: true, Profile: p}
		switch i % 100 {
		case 0, 1: // a leaver: in current, not in the file
			current = append(current, m)
			id = fmt.Sprintf("N-%07d", i) // and a hire in its place
		case 2:
			m.Active = false
			current = append(current, m)
		case 3:
			p.JobTitle = "Teamleitung"
			current = append(current, m)
		default:
			current = append(current, m)
		}
		fmt.Fprintf(&buf, "%s;%s;%s;%s;2024-%02d-01;%s;%s;%s;\"frei; Text\"\r\n", id, p.Email, p.GivenName, p.FamilyName, 1+i%12, p.OrgUnit, p.JobTitle, p.Locale)
	}
	return buf.Bytes(), current
}

// BenchmarkRoster100k parses a 100,000-row snapshot and turns it into events
// against a current roster of 100,000 members. The target is under 2 s.
func BenchmarkRoster100k(b *testing.B) {
	bb := setupRoster(b)
	data, current := rosterFile(100_000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var evs []Event
	var sum RosterSummary
	for b.Loop() {
		start := time.Now()
		r, err := ParseRoster(bytes.NewReader(data), bb.mapping, RosterOptions{Mode: RosterSnapshot})
		if err != nil {
			b.Fatal(err)
		}
		parsed := time.Since(start)
		evs, sum, err = r.Events(bb.feed, current, bb.upload)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(parsed.Milliseconds()), "parse-ms")
	}
	if sum.Hires != 2000 || sum.Leavers != 2000 || sum.Rehires != 1000 || sum.Updates != 1000 || len(evs) != 6000 {
		b.Fatalf("summary %+v, %d events", sum, len(evs))
	}
}
