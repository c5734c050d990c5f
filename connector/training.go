package connector

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// CompletionRecord is one course completion as the LMS reports it.
type CompletionRecord struct {
	Course      string    `json:"course"`
	CompletedAt time.Time `json:"completed_at"`
}

// TrainingReader is the optional LMS capability that reads an account's course
// completions. An adapter whose LMS keeps no learning records, or does not report
// them, returns ErrTrainingUnknown.
type TrainingReader interface {
	Completions(ctx context.Context, accountID string) ([]CompletionRecord, error)
}

// ErrTrainingUnknown: the LMS does not tell an account's learning records.
var ErrTrainingUnknown = errors.New("the LMS does not report learning records")

// The statuses of a course in the rehire training report.
const (
	CourseValid    = "valid"     // completed, and within its validity period
	CourseExpired  = "expired"   // completed, but the validity period has run out
	CourseNoExpiry = "no-expiry" // completed; no validity period is configured
)

// CourseStatus is one course in the rehire training report: the latest
// completion and whether it still counts.
type CourseStatus struct {
	Course string `json:"course"`
	// CompletedAt is the latest completion; Completions counts them all.
	CompletedAt time.Time `json:"completed_at"`
	Completions int       `json:"completions"`
	// Validity is the configured validity period, 0 if none.
	Validity time.Duration `json:"-"`
	// ExpiresAt is CompletedAt + Validity, zero if no validity is configured.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	Status    string    `json:"status"`
}

// Expired reports whether the course must be taken again.
func (c CourseStatus) Expired() bool { return c.Status == CourseExpired }

// RehireTraining lists a rehire's prior completions, one row per course (the
// latest completion counts), sorted by course, and marks each expired or valid
// under the per-course validity periods at now. A completion expires at
// CompletedAt + validity exactly. Courses without a validity period never
// expire. It performs no I/O.
func RehireTraining(completions []CompletionRecord, validity map[string]time.Duration, now time.Time) []CourseStatus {
	byCourse := map[string]*CourseStatus{}
	for _, c := range completions {
		s, ok := byCourse[c.Course]
		if !ok {
			s = &CourseStatus{Course: c.Course}
			byCourse[c.Course] = s
		}
		s.Completions++
		if c.CompletedAt.After(s.CompletedAt) {
			s.CompletedAt = c.CompletedAt
		}
	}
	out := make([]CourseStatus, 0, len(byCourse))
	for _, s := range byCourse {
		s.Status = CourseNoExpiry
		if v := validity[s.Course]; v > 0 {
			s.Validity = v
			s.ExpiresAt = s.CompletedAt.Add(v)
			s.Status = CourseValid
			if !now.Before(s.ExpiresAt) {
				s.Status = CourseExpired
			}
		}
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b CourseStatus) int { return cmp.Compare(a.Course, b.Course) })
	return out
}

// RehireTrainingNote sums up a rehire training report in one line for the audit:
// "rehire training: 3 courses, 1 expired (safety-101)".
func RehireTrainingNote(report []CourseStatus) string {
	var expired []string
	for _, s := range report {
		if s.Expired() {
			expired = append(expired, s.Course)
		}
	}
	note := fmt.Sprintf("rehire training: %d courses, %d expired", len(report), len(expired))
	if len(expired) > 0 {
		note += " (" + strings.Join(expired, ", ") + ")"
	}
	return note
}

// rehireTraining returns "; " and the rehire training note of account id, for the
// audit row of a rehire's reactivation; "" when the LMS does not report learning
// records. A failed read is noted, never fatal: the account is already back.
func (c *Converger) rehireTraining(ctx context.Context, id string, pol Policy) string {
	tr, ok := c.cfg.LMS.(TrainingReader)
	if !ok || id == "" {
		return ""
	}
	comps, err := tr.Completions(ctx, id)
	switch {
	case errors.Is(err, ErrTrainingUnknown):
		return ""
	case err != nil:
		return "; rehire training: not read (" + err.Error() + ")"
	}
	return "; " + RehireTrainingNote(RehireTraining(comps, pol.CourseValidity, c.cfg.Now()))
}
