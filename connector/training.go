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

// TrainingBatchReader is implemented by LMS adapters that read the course
// completions of many accounts in one call (for SCIM, one filtered query whose
// users carry the training extension). The converger reads the rehire training
// notes of a claimed batch with it, one call for the batch's rehires instead of
// one each; without it, or when MaxTrainingBatch is zero or less, it reads them
// one by one (TrainingReader).
type TrainingBatchReader interface {
	MaxTrainingBatch(ctx context.Context) int
	// CompletionsOf returns the completions of each of ids; an id missing from
	// the map is one whose records the LMS did not report (gone, or unknown).
	CompletionsOf(ctx context.Context, ids []string) (map[string][]CompletionRecord, error)
}

// trainingNote is a rehire's reactivation whose audit row gets the rehire
// training note once the batch's writes are done (noteTraining).
type trainingNote struct {
	audit    int // index into the completion's Audit
	account  string
	validity map[string]time.Duration
}

// noteTraining adds the rehire training notes to the audit rows of comps, with
// the fewest LMS reads the LMS allows: one call per MaxTrainingBatch rehires of
// the batch where it reads many at once, else one per rehire. A read that fails
// is noted on the row ("not read") and never changes an outcome.
func (c *Converger) noteTraining(ctx context.Context, comps []Completion) {
	var ids []string
	for _, comp := range comps {
		for _, n := range comp.training {
			ids = append(ids, n.account)
		}
	}
	if len(ids) == 0 {
		return
	}
	got := map[string][]CompletionRecord{}
	failed := map[string]error{}
	br, batch := c.cfg.LMS.(TrainingBatchReader)
	size := 0
	if batch {
		size = br.MaxTrainingBatch(ctx)
	}
	if size > 0 {
		slices.Sort(ids)
		ids = slices.Compact(ids)
		for chunk := range slices.Chunk(ids, size) {
			m, err := br.CompletionsOf(ctx, chunk)
			for _, id := range chunk {
				switch recs, ok := m[id]; {
				case err != nil:
					failed[id] = err
				case ok:
					got[id] = recs
				default:
					failed[id] = ErrTrainingUnknown
				}
			}
		}
	}
	tr, single := c.cfg.LMS.(TrainingReader)
	for i := range comps {
		for _, n := range comps[i].training {
			recs, ok := got[n.account]
			err := failed[n.account]
			if !ok && err == nil {
				if !single {
					continue
				}
				recs, err = tr.Completions(ctx, n.account)
			}
			switch {
			case errors.Is(err, ErrTrainingUnknown):
			case err != nil:
				comps[i].Audit[n.audit].Detail += "; rehire training: not read (" + err.Error() + ")"
			default:
				comps[i].Audit[n.audit].Detail += "; " + RehireTrainingNote(RehireTraining(recs, n.validity, c.cfg.Now()))
			}
		}
	}
}
