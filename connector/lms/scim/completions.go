package scim

import (
	"context"

	"github.com/hrsync/hrsync/connector"
)

var _ connector.TrainingReader = (*Client)(nil)

// Completions returns the course completions of user id from the training
// extension (SchemaTrainingUser) of the user. A server that does not send the
// extension does not report learning records: connector.ErrTrainingUnknown.
// Right after a GetAccounts that read the user, it answers once from that read
// instead of reading the user again (see trainingMemo).
func (c *Client) Completions(ctx context.Context, id string) ([]connector.CompletionRecord, error) {
	if e, ok := c.takeTraining(id); ok {
		if !e.known {
			return nil, connector.ErrTrainingUnknown
		}
		return e.comps, nil
	}
	u, err := c.GetUser(ctx, id)
	if err != nil {
		return nil, err
	}
	if u.Training == nil {
		return nil, connector.ErrTrainingUnknown
	}
	return completionsOf(u.Training), nil
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
