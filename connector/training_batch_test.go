package connector_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/store"
)

// trainingCounter counts the training reads that reach the sandbox.
type trainingCounter struct {
	*sandbox.LMS
	one, many atomic.Int64
}

func (c *trainingCounter) Completions(ctx context.Context, id string) ([]connector.CompletionRecord, error) {
	c.one.Add(1)
	return c.LMS.Completions(ctx, id)
}

func (c *trainingCounter) CompletionsOf(ctx context.Context, ids []string) (map[string][]connector.CompletionRecord, error) {
	c.many.Add(1)
	return c.LMS.CompletionsOf(ctx, ids)
}

// trainingOneByOne is trainingCounter without the batch read (its fields shadow the
// promoted methods of TrainingBatchReader).
type trainingOneByOne struct {
	*trainingCounter
	MaxTrainingBatch, CompletionsOf struct{}
}

// TestConvergerRehireTrainingBatched (issue 12): the rehire training notes of a
// claimed batch are read in one call where the LMS reads many accounts'
// completions at once, and one by one where it cannot; each rehire's audit row
// gets its own note either way.
func TestConvergerRehireTrainingBatched(t *testing.T) {
	t.Parallel()
	for _, batch := range []bool{true, false} {
		t.Run(fmt.Sprintf("batch=%v", batch), func(t *testing.T) {
			day := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
			b := setup(t, day)
			counter := &trainingCounter{LMS: b.lms}
			var lms connector.LMS = counter
			if !batch {
				lms = &trainingOneByOne{trainingCounter: counter}
				if _, ok := lms.(connector.TrainingBatchReader); ok {
					t.Fatal("trainingOneByOne still reads in batches")
				}
			}
			var err error
			b.conv, err = connector.NewConverger(connector.ConvergerConfig{Store: b.db, LMS: lms, Feeds: b.feeds, Now: b.clock, Batch: 10})
			if err != nil {
				t.Fatal(err)
			}
			const n = 5
			var hires, leaves, rehires []connector.Fact
			for i := range n {
				w := fmt.Sprintf("w%d", i)
				hires = append(hires, connector.Fact{WorkerID: w, Kind: connector.KindHired, Effective: day, Profile: profile(w + "@example.com")})
				leaves = append(leaves, connector.Fact{WorkerID: w, Kind: connector.KindLeft, Effective: day.AddDate(0, 1, 0)})
				rehires = append(rehires, connector.Fact{WorkerID: w, Kind: connector.KindRehired, Effective: day.AddDate(0, 2, 0), Profile: profile(w + "@example.com")})
			}
			b.recordAll(t, hires...)
			for i := range n {
				if err := b.lms.CompleteCourse(b.account(t, fmt.Sprintf("hr:w%d", i)).ID, "course-"+fmt.Sprint(i), day.AddDate(0, 0, 7)); err != nil {
					t.Fatal(err)
				}
			}
			b.set(day.AddDate(0, 1, 0))
			b.recordAll(t, leaves...)
			b.set(day.AddDate(0, 2, 0))
			b.recordAll(t, rehires...)
			entries, err := b.db.ListAudit(context.Background(), store.AuditFilter{Feed: "hr", Action: connector.ActionReactivate})
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != n {
				t.Fatalf("%d reactivations, want %d", len(entries), n)
			}
			for _, e := range entries {
				if !strings.HasSuffix(e.Detail, "; rehire training: 1 courses, 0 expired") {
					t.Errorf("%s: detail %q, want its rehire training note", e.WorkerID, e.Detail)
				}
			}
			one, many := counter.one.Load(), counter.many.Load()
			if batch && (many != 1 || one != 0) {
				t.Errorf("batch: %d batch reads and %d single reads, want 1 and 0", many, one)
			}
			if !batch && (many != 0 || one != n) {
				t.Errorf("one by one: %d batch reads and %d single reads, want 0 and %d", many, one, n)
			}
		})
	}
}
