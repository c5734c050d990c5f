package scim

import (
	"context"

	"github.com/hrsync/hrsync/connector"
)

var _ connector.TrainingReader = (*Client)(nil)

// Completions returns the course completions of user id from the training
// extension (SchemaTrainingUser) of the user. A server that does not send the
// extension does not report learning records: connector.ErrTrainingUnknown.
func (c *Client) Completions(ctx context.Context, id string) ([]connector.CompletionRecord, error) {
	u, err := c.GetUser(ctx, id)
	if err != nil {
		return nil, err
	}
	if u.Training == nil {
		return nil, connector.ErrTrainingUnknown
	}
	return completionsOf(u.Training), nil
}

var _ connector.TrainingBatchReader = (*Client)(nil)

// MaxTrainingBatch implements connector.TrainingBatchReader: as
// MaxActivityBatch, whose query reads the training extension too.
func (c *Client) MaxTrainingBatch(ctx context.Context) int { return c.MaxActivityBatch(ctx) }

// CompletionsOf implements connector.TrainingBatchReader with the query of
// ActivityOf: one `id eq "a" or id eq "b" ...` as POST /Users/.search where the
// server has it (else GET chunks of 50), the completions taken from each user's
// training extension. The converger's rehire report reads a claimed batch's
// rehires with it after the batch's writes: one request instead of a GET
// /Users/{id} per rehire. An id left out of the map is a user that is gone or
// that carries no training extension (its records are unknown).
func (c *Client) CompletionsOf(ctx context.Context, ids []string) (map[string][]connector.CompletionRecord, error) {
	out := make(map[string][]connector.CompletionRecord, len(ids))
	if _, err := c.activityOf(ctx, ids, func(u User) {
		if u.Training != nil {
			out[u.ID] = completionsOf(u.Training)
		}
	}); err != nil {
		return nil, err
	}
	return out, nil
}

// completionsOf lists the completions of t.
func completionsOf(t *Training) []connector.CompletionRecord {
	out := make([]connector.CompletionRecord, 0, len(t.Completions))
	for _, tc := range t.Completions {
		out = append(out, connector.CompletionRecord{Course: tc.Course, CompletedAt: tc.CompletedAt})
	}
	return out
}

// Activity implements connector.ActivityReader from the training extension
// (urn:hrsync:params:scim:schemas:extension:training:1.0:User) when the server
// sends it; a server without it (plain SCIM) cannot tell: ErrTrainingUnknown.
func (c *Client) Activity(ctx context.Context, id string) (connector.Activity, error) {
	u, err := c.GetUser(ctx, id)
	if err != nil {
		return connector.Activity{}, err
	}
	if u.Training == nil {
		return connector.Activity{}, connector.ErrTrainingUnknown
	}
	t := u.Training
	return connector.Activity{Known: true, LastLogin: t.LastLogin, Enrollments: len(t.Enrollments),
		Completions: len(t.Completions), Uploads: t.Uploads, Rewards: t.Rewards}, nil
}

var _ connector.ActivityReader = (*Client)(nil)
