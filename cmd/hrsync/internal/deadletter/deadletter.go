// Package deadletter is the use case behind "hrsync dead": show a dead letter
// with its message decoded, replay it after a fix, or discard it for good
// (docs/dead-letters.md). It is tested without the CLI; package main parses the
// flags and calls it.
package deadletter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/events"
	"github.com/hrsync/hrsync/store"
)

// Store is what the use case needs of the store; *store.DB implements it.
type Store interface {
	// GetDeadLetter returns an error matching connector.ErrNotFound for an unknown id.
	GetDeadLetter(ctx context.Context, id int64) (connector.DeadLetter, error)
	DeadLetterHistory(ctx context.Context, id int64) ([]store.DeadLetterEvent, error)
	// ReplayDeadLetter records the fact and ends the dead letter in one
	// transaction, waking the worker.
	ReplayDeadLetter(ctx context.Context, id int64, fact connector.Fact, by string) (store.DeadLetterReplay, error)
	NoteDeadLetterReplayFailed(ctx context.Context, id int64, by string, cause error) error
	DiscardDeadLetter(ctx context.Context, id int64, r store.Resolution) (connector.DeadLetter, error)
}

var _ Store = (*store.DB)(nil)

// get returns dead letter id, with an error that names it.
func get(ctx context.Context, s Store, id int64) (connector.DeadLetter, error) {
	d, err := s.GetDeadLetter(ctx, id)
	if errors.Is(err, connector.ErrNotFound) {
		return d, fmt.Errorf("dead letter %d: no such dead letter (hrsync dead list --status all lists them): %w", id, connector.ErrNotFound)
	}
	if err != nil {
		return d, fmt.Errorf("dead letter %d: %w", id, err)
	}
	return d, nil
}

// ended returns an error matching connector.ErrConflict if d was replayed or
// discarded: either is final.
func ended(d connector.DeadLetter) error {
	switch {
	case d.DiscardedAt != nil:
		return fmt.Errorf("dead letter %d was discarded by %s at %s (%s): it is never replayed: %w",
			d.ID, d.DiscardedBy, d.DiscardedAt.UTC().Format(time.RFC3339), d.DiscardReason, connector.ErrConflict)
	case d.ReplayedAt != nil:
		return fmt.Errorf("dead letter %d was already replayed at %s: %w", d.ID, d.ReplayedAt.UTC().Format(time.RFC3339), connector.ErrConflict)
	}
	return nil
}

// Replayed is what Replay did.
type Replayed struct {
	ID   int64          `json:"id"`
	Fact connector.Fact `json:"fact"`
	// Recorded is 1 if the fact was new, 0 if the store had it already (the
	// publisher sent it again meanwhile).
	Recorded int `json:"recorded"`
	// Woken is the worker made due now: the fact's worker, or its successor.
	Woken connector.WorkerKey `json:"woken"`
}

// Replay decodes the message of the open dead letter id again with feeds (the
// configuration as it is now, after a fix such as declaring the feed) and, if it
// decodes, records its fact and ends the dead letter in one transaction: the
// worker becomes due now and is marked woken, so that a running daemon
// converges it at its next poll, without a reconcile. by (may be empty) is kept
// in the dead letter's history.
//
// A message that still fails, or that the store refuses (a closed feed, an
// erased person), leaves the dead letter open and adds the failure to its
// history. A replayed or discarded dead letter is refused (connector.ErrConflict),
// and so is a message the store pruned or truncated: its sender must publish it
// again, and the dead letter can be discarded.
func Replay(ctx context.Context, s Store, feeds connector.Feeds, id int64, by string) (Replayed, error) {
	d, err := get(ctx, s, id)
	if err != nil {
		return Replayed{}, err
	}
	if err := ended(d); err != nil {
		return Replayed{}, err
	}
	failed := func(err error) error {
		if nerr := s.NoteDeadLetterReplayFailed(ctx, id, by, err); nerr != nil {
			return errors.Join(err, nerr)
		}
		return err
	}
	msg, err := events.ReplayMessage(d)
	if err != nil {
		return Replayed{}, failed(fmt.Errorf("%w; give it up with: hrsync dead discard %d --reason TEXT --by NAME", err, id))
	}
	fact, err := (&events.Decoder{Feeds: feeds}).Decode(msg.Subject, msg.Header, msg.Data)
	if err != nil {
		return Replayed{}, failed(fmt.Errorf("dead letter %d still fails: %w", id, err))
	}
	r, err := s.ReplayDeadLetter(ctx, id, fact, by)
	switch {
	case err == nil:
	case connector.IsPermanent(err):
		return Replayed{}, failed(fmt.Errorf("dead letter %d: the store refuses its fact: %w", id, err))
	default:
		return Replayed{}, fmt.Errorf("dead letter %d: %w", id, err)
	}
	return Replayed{ID: id, Fact: fact, Recorded: r.Recorded, Woken: r.Woken}, nil
}

// WriteText writes what the replay did, for a person.
func (r Replayed) WriteText(w io.Writer) error {
	what := "1 new fact"
	if r.Recorded == 0 {
		what = "the fact was recorded already"
	}
	due := "; a running daemon converges it at its next poll"
	if r.Woken != (connector.WorkerKey{}) {
		due = fmt.Sprintf("; %s is due now: a running daemon converges it at its next poll", r.Woken)
	}
	_, err := fmt.Fprintf(w, "dead letter %d replayed: %s %s for %s (%s%s)\n", r.ID, r.Fact.Kind, r.Fact.ID, r.Fact.Key(), what, due)
	return err
}

// Discard gives up the open dead letter id: it is never replayed, is left out
// of "hrsync dead list" (shown with --status discarded), and is kept for the
// record with by, reason and the time, in its history and the audit. by and
// reason are required. A replayed or discarded dead letter is refused
// (connector.ErrConflict).
func Discard(ctx context.Context, s Store, id int64, by, reason string) (connector.DeadLetter, error) {
	switch {
	case strings.TrimSpace(reason) == "":
		return connector.DeadLetter{}, fmt.Errorf("dead discard %d: --reason is required: why this message will never be replayed (it is kept with the dead letter and audited)", id)
	case strings.TrimSpace(by) == "":
		return connector.DeadLetter{}, fmt.Errorf("dead discard %d: --by is required: who gives the message up (it is audited)", id)
	}
	d, err := get(ctx, s, id)
	if err != nil {
		return d, err
	}
	if err := ended(d); err != nil {
		return connector.DeadLetter{}, err
	}
	d, err = s.DiscardDeadLetter(ctx, id, store.Resolution{By: by, Reason: reason})
	if err != nil {
		return connector.DeadLetter{}, fmt.Errorf("dead letter %d: %w", id, err)
	}
	return d, nil
}

// WriteDiscarded writes what Discard did, for a person.
func WriteDiscarded(w io.Writer, d connector.DeadLetter) error {
	_, err := fmt.Fprintf(w, "dead letter %d discarded by %s: it will never be replayed; it is kept, with its message and reason (hrsync dead show %d)\n",
		d.ID, Clean(d.DiscardedBy), d.ID)
	return err
}
