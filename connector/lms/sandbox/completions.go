package sandbox

import (
	"context"

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
