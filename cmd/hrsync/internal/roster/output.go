package roster

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/hrsync/hrsync/events"
)

// WriteNewToken writes a new upload token and the SHA-256 to configure for it
// (roster.upload_token_sha256): the token itself is never configured.
func WriteNewToken(w io.Writer) error {
	var b [24]byte
	_, _ = rand.Read(b[:])
	tok := "hrs_" + hex.EncodeToString(b[:])
	sum := sha256.Sum256([]byte(tok))
	_, err := fmt.Fprintf(w, "token:               %s\nupload_token_sha256: %s\n\nGive the token to the feed's uploader; put the SHA-256 under the feed's roster: in the configuration.\n",
		tok, hex.EncodeToString(sum[:]))
	return err
}

// WriteResult writes what the upload of the file name did, as text or as JSON;
// a dry run's text lists the events it would publish.
func WriteResult(w io.Writer, name string, res *Result, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(res)
	}
	s := res.Summary
	fmt.Fprintf(w, "%s (%s, %s, %d rows, sha256 %.12s): %d hires, %d rehires, %d leavers, %d updates, %d unchanged; %d active before\n",
		name, s.Mode, readAs(s), s.Rows, s.SHA256, s.Hires, s.Rehires, s.Leavers, s.Updates, s.Unchanged, s.Active)
	if s.ProblemsTotal > 0 {
		if err := ResultReport(res, name).WriteText(w); err != nil {
			return err
		}
		if res.UploadID != 0 {
			fmt.Fprintf(w, "The report is kept with the upload: hrsync roster report %d --feed %s [--format csv|xlsx]\n", res.UploadID, res.Feed)
		}
	}
	switch res.Outcome {
	case "dry-run":
		fmt.Fprintln(w, "dry run: nothing was sent. The upload would publish:")
		var evs []events.Event // a table is aligned over all its rows
		if err := res.EachEvent(func(e events.Event) error { evs = append(evs, e); return nil }); err != nil {
			return err
		}
		return events.FormatEvents(w, evs)
	case "held":
		fmt.Fprintf(w, "HELD as hold %d, nothing was published: %s\nReview it with: hrsync holds show %d; then hrsync holds approve|reject %d --by NAME --reason TEXT\n",
			res.HoldID, res.Reason, res.HoldID, res.HoldID)
	case "unchanged":
		fmt.Fprintln(w, "nothing to do: the feed already matches the file")
	default:
		fmt.Fprintf(w, "published %d events (upload %d)\n", res.Published, res.UploadID)
	}
	return nil
}

// readAs says how the file was read: format, encoding, delimiter or sheet.
func readAs(s events.RosterSummary) string {
	if s.Format == "xlsx" {
		return "xlsx, sheet " + s.Sheet
	}
	d := s.Delimiter
	if d == "\t" {
		d = "tab"
	}
	return fmt.Sprintf("%s %s, delimiter %s", s.Format, s.Encoding, d)
}

// Progress returns a Request.Progress that tells w how many rows were read, at
// most once a second by now.
func Progress(w io.Writer, now func() time.Time) func(rows int) {
	lastShown := now()
	return func(rows int) {
		if now().Sub(lastShown) > time.Second {
			fmt.Fprintf(w, "read %d rows...\n", rows)
			lastShown = now()
		}
	}
}
