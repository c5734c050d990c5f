package report

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hrsync/hrsync/connector"
)

// RehireQuery names the account of a rehire report and the rules it applies.
type RehireQuery struct {
	// Worker is the worker whose account is found by externalId FEED:ID; it is
	// ignored when AccountID is set, and shown in the JSON output when set.
	Worker connector.WorkerKey
	// AccountID names the LMS account instead of finding it by Worker.
	AccountID string
	// Validity is how long a completion of each course counts; a course
	// without one never expires.
	Validity map[string]time.Duration
	// Now is the instant the validity is judged at.
	Now time.Time
}

// RehireRow is one course of a rehire report.
type RehireRow struct {
	Course      string    `json:"course"`
	CompletedAt time.Time `json:"completed_at"`
	Completions int       `json:"completions"`
	Validity    string    `json:"validity,omitempty"`
	ExpiresAt   time.Time `json:"expires_at,omitzero"`
	Status      string    `json:"status"`
}

// Rehired is a rehire's prior course completions, one row per course (the
// latest completion counts), each marked expired or valid.
type Rehired struct {
	Worker    string      `json:"worker,omitempty"`
	AccountID string      `json:"account_id"`
	Now       time.Time   `json:"now"`
	Courses   []RehireRow `json:"courses"`
	Expired   int         `json:"expired"`
}

// Rehire reads the prior course completions of q's account from lms and marks
// each expired or valid under q.Validity (connector.RehireTraining). It returns
// connector.ErrTrainingUnknown if lms does not report learning records
// (connector.TrainingReader), and an error if no account, or more than one,
// has the worker's externalId.
func Rehire(ctx context.Context, lms connector.LMS, q RehireQuery) (*Rehired, error) {
	ctx = connector.WithLMSPriority(ctx, connector.LMSBackground) // waits behind live changes under the LMS's rate limit
	tr, ok := lms.(connector.TrainingReader)
	if !ok {
		return nil, connector.ErrTrainingUnknown
	}
	key := q.Worker
	id := q.AccountID
	if id == "" {
		found, err := lms.FindAccounts(ctx, connector.AccountFilter{Attr: connector.ByExternalID, Value: key.ExternalID()})
		if err != nil {
			return nil, fmt.Errorf("find the account of %s: %w", key, err)
		}
		switch len(found) {
		case 0:
			return nil, fmt.Errorf("no LMS account has externalId %q; name it with --account", key.ExternalID())
		case 1:
			id = found[0].ID
		default:
			var ids []string
			for _, a := range found {
				ids = append(ids, a.ID)
			}
			return nil, fmt.Errorf("%d LMS accounts have externalId %q (%s); name one with --account", len(found), key.ExternalID(), strings.Join(ids, ", "))
		}
	}
	comps, err := tr.Completions(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("read the completions of account %s: %w", id, err)
	}
	now := q.Now.UTC()
	statuses := connector.RehireTraining(comps, q.Validity, now)
	r := &Rehired{AccountID: id, Now: now, Courses: make([]RehireRow, len(statuses))}
	if key != (connector.WorkerKey{}) {
		r.Worker = key.String()
	}
	for i, s := range statuses {
		r.Courses[i] = RehireRow{Course: s.Course, CompletedAt: s.CompletedAt, Completions: s.Completions, ExpiresAt: s.ExpiresAt, Status: s.Status}
		if s.Validity > 0 {
			r.Courses[i].Validity = s.Validity.String()
		}
		if s.Expired() {
			r.Expired++
		}
	}
	return r, nil
}

// Write prints r to w as "json" or, for any other format, an aligned text
// table with a summary line.
func (r *Rehired) Write(w io.Writer, format string) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COURSE\tCOMPLETED\tCOMPLETIONS\tVALIDITY\tEXPIRES\tSTATUS")
	for _, c := range r.Courses {
		exp, val := "-", "-"
		if !c.ExpiresAt.IsZero() {
			exp, val = c.ExpiresAt.Format(time.DateOnly), c.Validity
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", c.Course, c.CompletedAt.Format(time.DateOnly), c.Completions, val, exp, c.Status)
	}
	fmt.Fprintf(tw, "account %s: %d courses, %d expired (reassign those)\n", r.AccountID, len(r.Courses), r.Expired)
	return tw.Flush()
}
