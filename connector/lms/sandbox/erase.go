package sandbox

import (
	"context"
	"time"

	"github.com/hrsync/hrsync/connector"
)

var _ connector.TrainingDeleter = (*LMS)(nil)

// DeleteTraining deletes the learning records of the account id (last login,
// enrollments, completions) and keeps the account: a GDPR erasure where retention
// does not require the records. Returns an error matching connector.ErrNotFound.
func (l *LMS) DeleteTraining(ctx context.Context, id string) error {
	if err := ctxErr(ctx, "DeleteTraining"); err != nil {
		return err
	}
	return l.clearTraining("DeleteTraining", id)
}

// clearTraining deletes the learning records of id: DeleteTraining, and a SCIM
// PATCH that removes the training extension (see patch).
func (l *LMS) clearTraining(op, id string) error {
	return l.train(op, id, func(t *Training, _ time.Time) error {
		*t = Training{}.clone()
		return nil
	})
}
