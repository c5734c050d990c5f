package moodle

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/hrsync/hrsync/connector"
)

// course is one course of core_enrol_get_users_courses. Completed is there when
// the site tracks completion (Moodle 3.6 and later); nil when it does not say.
type course struct {
	ID        int64  `json:"id"`
	ShortName string `json:"shortname"`
	FullName  string `json:"fullname"`
	Completed *bool  `json:"completed"`
}

// courseCompletion is core_completion_get_course_completion_status's answer.
type courseCompletion struct {
	CompletionStatus struct {
		Completed   bool `json:"completed"`
		Completions []struct {
			Complete      bool  `json:"complete"`
			TimeCompleted int64 `json:"timecompleted"`
		} `json:"completions"`
	} `json:"completionstatus"`
}

// coursesOf returns the courses the user id is enrolled in, suspended
// enrolments included (a suspended user's enrolments are kept).
func (c *Client) coursesOf(ctx context.Context, id int64) ([]course, error) {
	fm := &form{}
	fm.set(strconv.FormatInt(id, 10), "userid")
	var out []course
	err := c.call(ctx, FnUsersCourses, fm, &out)
	return out, err
}

// userOf reads the user accountID, or returns ErrNotFound.
func (c *Client) userOf(ctx context.Context, op, accountID string) (user, error) {
	n, ok := parseID(accountID)
	if !ok {
		return user{}, notFound(op)
	}
	us, err := c.usersByField(ctx, "id", []string{accountID})
	if err != nil {
		return user{}, rename(err, op)
	}
	for _, u := range us {
		if u.ID == n {
			return u, nil
		}
	}
	return user{}, notFound(op)
}

// Activity implements connector.ActivityReader in two calls: the user's
// lastaccess (0: never) and the courses they are enrolled in, with how many of
// them they completed. Moodle keeps no count of uploads or rewards here.
func (c *Client) Activity(ctx context.Context, accountID string) (connector.Activity, error) {
	const op = "Activity"
	u, err := c.userOf(ctx, op, accountID)
	if err != nil {
		return connector.Activity{}, err
	}
	cs, err := c.coursesOf(ctx, u.ID)
	if err != nil {
		return connector.Activity{}, rename(err, op)
	}
	act := connector.Activity{Known: true, LastLogin: u.lastAccess(), Enrollments: len(cs)}
	for _, co := range cs {
		if co.Completed != nil && *co.Completed {
			act.Completions++
		}
	}
	return act, nil
}

// Completions implements connector.TrainingReader: the user's courses (one
// call), then core_completion_get_course_completion_status for each course
// the user completed (one call each). Moodle keeps one completion per user
// and course; its time is the latest time a completion criterion was met. A
// course without completion criteria is not reported.
func (c *Client) Completions(ctx context.Context, accountID string) ([]connector.CompletionRecord, error) {
	const op = "Completions"
	u, err := c.userOf(ctx, op, accountID)
	if err != nil {
		return nil, err
	}
	cs, err := c.coursesOf(ctx, u.ID)
	if err != nil {
		return nil, rename(err, op)
	}
	out := []connector.CompletionRecord{}
	for _, co := range cs {
		if co.Completed != nil && !*co.Completed {
			continue
		}
		fm := &form{}
		fm.set(strconv.FormatInt(co.ID, 10), "courseid")
		fm.set(strconv.FormatInt(u.ID, 10), "userid")
		var cc courseCompletion
		err := c.call(ctx, FnCourseCompletion, fm, &cc)
		var le *connector.LMSError
		if errors.As(err, &le) && le.Kind == connector.KindInvalid {
			continue // no criteria set, or the user is not tracked in it
		}
		if err != nil {
			return nil, rename(err, op)
		}
		if !cc.CompletionStatus.Completed {
			continue
		}
		var at int64
		for _, cr := range cc.CompletionStatus.Completions {
			if cr.Complete {
				at = max(at, cr.TimeCompleted)
			}
		}
		name := co.ShortName
		if name == "" {
			name = co.FullName
		}
		out = append(out, connector.CompletionRecord{Course: name, CompletedAt: time.Unix(at, 0).UTC()})
	}
	return out, nil
}
