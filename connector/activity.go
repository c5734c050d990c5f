package connector

import (
	"context"
	"errors"
	"time"
)

// Activity is what an LMS knows of an account's use: a login, enrollments
// (including enrolled but never started), completions, content the user uploaded,
// rewards. Deleting an account with any of it loses learning history.
type Activity struct {
	// Known is false when the LMS cannot tell (plain SCIM): such an account is
	// treated as active and never deleted by an activity rule.
	Known       bool       `json:"known"`
	LastLogin   *time.Time `json:"last_login,omitempty"`
	Enrollments int        `json:"enrollments"`
	Completions int        `json:"completions"`
	Uploads     int        `json:"uploads"`
	Rewards     int        `json:"rewards"`
}

// Any reports whether the account shows any activity. Unknown activity counts as
// activity, so that no activity rule ever deletes an account the LMS cannot vouch for.
func (a Activity) Any() bool {
	return !a.Known || a.LastLogin != nil || a.Enrollments+a.Completions+a.Uploads+a.Rewards > 0
}

// ActivityReader is the optional LMS capability that reports an account's
// activity. An adapter whose LMS does not tell returns ErrTrainingUnknown (or
// Activity with Known false).
type ActivityReader interface {
	Activity(ctx context.Context, accountID string) (Activity, error)
}

// ReadActivity returns the activity of the account id through lms, and unknown
// activity (Known false) when the LMS cannot tell.
func ReadActivity(ctx context.Context, lms LMS, id string) (Activity, error) {
	ar, ok := lms.(ActivityReader)
	if !ok {
		return Activity{}, nil
	}
	a, err := ar.Activity(ctx, id)
	if errors.Is(err, ErrTrainingUnknown) {
		return Activity{}, nil
	}
	return a, err
}
