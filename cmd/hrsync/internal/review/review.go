// Package review is the use case behind "hrsync review": the items hrsync
// refused to guess, and their end, a person's resolution (docs/reviews.md). It
// is tested without the CLI; package main parses the flags and calls it.
package review

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
)

// Store is what the use case needs of the store; *store.DB implements it.
type Store interface {
	// GetReview returns an error matching connector.ErrNotFound for an unknown id.
	GetReview(ctx context.Context, id int64) (connector.Review, error)
	// ResolveReview closes the item and makes its worker due again, in one
	// transaction; connector.ErrConflict if it was resolved already.
	ResolveReview(ctx context.Context, id int64, r store.Resolution) (connector.Review, error)
}

var _ Store = (*store.DB)(nil)

// Resolve closes the open review item id with by and reason (both required),
// kept with the item and audited. The item's worker becomes due now and is
// marked woken, so that a running daemon converges it at its next poll with the
// fix the person made (an account merged or removed in the LMS, a feed
// declared), without a reconcile; if the problem is still there, the converger
// raises a new item. Resolving an unknown item is an error matching
// connector.ErrNotFound, a resolved one connector.ErrConflict.
func Resolve(ctx context.Context, s Store, id int64, by, reason string) (connector.Review, error) {
	switch {
	case strings.TrimSpace(reason) == "":
		return connector.Review{}, fmt.Errorf("review resolve %d: --reason is required: what was done about the item (it is kept with it and audited)", id)
	case strings.TrimSpace(by) == "":
		return connector.Review{}, fmt.Errorf("review resolve %d: --by is required: who resolves the item (it is audited)", id)
	}
	r, err := s.ResolveReview(ctx, id, store.Resolution{By: by, Reason: reason})
	switch {
	case errors.Is(err, connector.ErrNotFound):
		return r, fmt.Errorf("review %d: no such review item (hrsync review list lists the open ones): %w", id, connector.ErrNotFound)
	case errors.Is(err, connector.ErrConflict):
		// The store's message says who resolved it, when and why.
		prev, gerr := s.GetReview(ctx, id)
		if gerr != nil || prev.ResolvedAt == nil {
			return r, fmt.Errorf("review %d: %w", id, err)
		}
		return r, fmt.Errorf("review %d was already resolved by %s at %s (%s): %w",
			id, prev.ResolvedBy, prev.ResolvedAt.UTC().Format(time.RFC3339), prev.Resolution, connector.ErrConflict)
	case err != nil:
		return r, fmt.Errorf("review %d: %w", id, err)
	}
	return r, nil
}

// WriteResolved writes what Resolve did, for a person.
func WriteResolved(w io.Writer, r connector.Review) error {
	_, err := fmt.Fprintf(w, "review %d resolved by %s; %s:%s is due now: a running daemon converges it at its next poll, and raises a new item if the problem is still there\n",
		r.ID, r.ResolvedBy, r.Feed, r.WorkerID)
	return err
}
