package scim

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/hrsync/hrsync/connector"
)

var _ connector.TrainingDeleter = (*Client)(nil)

// DeleteTraining implements connector.TrainingDeleter: it deletes the learning
// records of user id and keeps the user, for a GDPR erasure whose retention
// policy does not keep them. It removes the training extension as a whole with
//
//	PATCH /Users/{id}
//	{"schemas": [PatchOp], "Operations": [{"op": "remove", "path": SchemaTrainingUser}]}
//
// (RFC 7644 §3.5.2.2), conditional on the version it just read where the server
// has ETags (a 412 reads again, a bounded number of times), and reads the user
// back: it returns nil only when the user then carries no records.
//
// It changes nothing and returns an error matching connector.ErrTrainingUnknown
// when the user does not carry the extension (the server does not report
// learning records, so deletion cannot be checked), and one matching
// connector.ErrTrainingNotDeletable when the server has no PATCH (405, 501, or
// its ServiceProviderConfig says so) or refuses the removal with 400 noTarget,
// invalidPath or mutability. A user whose extension is already empty needs no
// PATCH. A server that accepts the removal but still reports records is an
// error (KindInvalid), never success.
func (c *Client) DeleteTraining(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	op := "PATCH " + userPath(id)
	var err error
	for range putAttempts {
		var u User
		u, err = c.GetUser(ctx, id)
		if err != nil {
			return err
		}
		if !hasTraining(u) {
			return fmt.Errorf("scim: user %s carries no %s extension: %w", id, SchemaTrainingUser, connector.ErrTrainingUnknown)
		}
		if trainingEmpty(u.Training) {
			return nil
		}
		caps := c.Capabilities(ctx)
		if !caps.Patch {
			return &connector.LMSError{Kind: connector.KindInvalid, Op: op,
				Reason: "the server does not support PATCH, which removing the training extension needs",
				Err:    connector.ErrTrainingNotDeletable}
		}
		var hdr http.Header
		if v := u.Meta; caps.ETag && v != nil && v.Version != "" {
			hdr = http.Header{"If-Match": {v.Version}}
		}
		body := PatchOp{Schemas: []string{MessagePatchOp}, Operations: []PatchOperation{{Op: "remove", Path: SchemaTrainingUser}}}
		_, err = c.do(ctx, http.MethodPatch, userPath(id), nil, body, hdr, nil)
		if errors.Is(err, connector.ErrPrecondition) {
			continue // another write got in between: read again
		}
		if err != nil {
			return c.trainingRefused(ctx, id, err)
		}
		return c.checkTrainingGone(ctx, id)
	}
	return err
}

// trainingRefused turns the error of the removal PATCH into
// connector.ErrTrainingNotDeletable where it says the server cannot do it.
func (c *Client) trainingRefused(ctx context.Context, id string, err error) error {
	le, ok := errors.AsType[*connector.LMSError](err)
	if !ok {
		return err
	}
	switch le.Status {
	case http.StatusMethodNotAllowed, http.StatusNotImplemented:
		c.noPatch.Store(true)
		return &connector.LMSError{Kind: connector.KindInvalid, Op: le.Op, Status: le.Status,
			Reason: "the server does not support PATCH, which removing the training extension needs",
			Err:    connector.ErrTrainingNotDeletable}
	case http.StatusBadRequest:
		switch le.Code {
		case ErrNoTarget, ErrInvalidPath, ErrMutability:
			return &connector.LMSError{Kind: connector.KindInvalid, Op: le.Op, Status: le.Status,
				Reason: "the server refuses to remove the training extension (" + le.Code + "): " + le.Reason,
				Err:    connector.ErrTrainingNotDeletable}
		}
	}
	return c.gone(ctx, id, err)
}

// checkTrainingGone reads user id back after the removal and fails unless it
// carries no learning records.
func (c *Client) checkTrainingGone(ctx context.Context, id string) error {
	u, err := c.GetUser(ctx, id)
	if err != nil {
		return fmt.Errorf("scim: learning records of %s: removed, but reading the user back failed: %w", id, err)
	}
	if trainingEmpty(u.Training) {
		return nil
	}
	t := u.Training
	return &connector.LMSError{Kind: connector.KindInvalid, Op: "GET " + userPath(id),
		Reason: fmt.Sprintf("the server accepted the removal of %s but the user still carries %d enrollments, %d completions, last login %v, %d uploads, %d rewards",
			SchemaTrainingUser, len(t.Enrollments), len(t.Completions), t.LastLogin != nil, t.Uploads, t.Rewards)}
}

// hasTraining reports whether the server reports learning records for u: it
// sends the training extension, or lists it in schemas (an unassigned
// extension may be left out of the body).
func hasTraining(u User) bool {
	return u.Training != nil || slices.ContainsFunc(u.Schemas, func(s string) bool { return strings.EqualFold(s, SchemaTrainingUser) })
}

// trainingEmpty reports whether t (nil: the extension has no value) holds no
// learning record.
func trainingEmpty(t *Training) bool {
	return t == nil || (t.LastLogin == nil && len(t.Enrollments) == 0 && len(t.Completions) == 0 && t.Uploads == 0 && t.Rewards == 0)
}
