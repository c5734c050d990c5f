package sandbox

import (
	"context"
	"errors"

	"github.com/hrsync/hrsync/connector"
)

var _ connector.TrainingReader = (*LMS)(nil)

// Completions returns the course completions of account id: the
// connector.TrainingReader capability, over Training.
func (l *LMS) Completions(ctx context.Context, id string) ([]connector.CompletionRecord, error) {
	if err := ctxErr(ctx, "Completions"); err != nil {
		return nil, err
	}
	t, err := l.Training(id)
	if err != nil {
		return nil, err
	}
	out := make([]connector.CompletionRecord, 0, len(t.Completions))
	for _, c := range t.Completions {
		out = append(out, connector.CompletionRecord{Course: c.Course, CompletedAt: c.CompletedAt})
	}
	return out, nil
}

// Activity implements connector.ActivityReader: the sandbox knows every kind of
// activity.
func (l *LMS) Activity(ctx context.Context, id string) (connector.Activity, error) {
	if err := ctxErr(ctx, "Activity"); err != nil {
		return connector.Activity{}, err
	}
	t, err := l.Training(id)
	if err != nil {
		return connector.Activity{}, err
	}
	return connector.Activity{Known: true, LastLogin: t.LastLogin, Enrollments: len(t.Enrollments),
		Completions: len(t.Completions), Uploads: t.Uploads, Rewards: t.Rewards}, nil
}

var _ connector.ActivityReader = (*LMS)(nil)

// MaxTrainingBatch implements connector.TrainingBatchReader: as many as the
// sandbox's batch reads take.
func (l *LMS) MaxTrainingBatch(ctx context.Context) int { return l.MaxReadBatch(ctx) }

// CompletionsOf implements connector.TrainingBatchReader: Completions of each of
// ids that exists, in one call.
func (l *LMS) CompletionsOf(ctx context.Context, ids []string) (map[string][]connector.CompletionRecord, error) {
	if err := ctxErr(ctx, "CompletionsOf"); err != nil {
		return nil, err
	}
	out := make(map[string][]connector.CompletionRecord, len(ids))
	for _, id := range ids {
		recs, err := l.Completions(ctx, id)
		if errors.Is(err, connector.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[id] = recs
	}
	return out, nil
}

var _ connector.TrainingBatchReader = (*LMS)(nil)
