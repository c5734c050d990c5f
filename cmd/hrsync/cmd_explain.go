package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/app"
	"github.com/hrsync/hrsync/cmd/hrsync/internal/person"
	"github.com/hrsync/hrsync/connector"
)

// explainAuditLimit bounds the audit rows a story prints (newest first).
const explainAuditLimit = 50

func newExplainCmd(env *environment) *cobra.Command {
	cmd := newCmd("explain", "one person's story and what hrsync would do now (--apply does it)", `
Print one worker's story, as the console's person page shows it: their facts in
the order hrsync folds them, what hrsync wants for them now, their LMS account as
it is now (read through the same guard as the daemon: rate limit, retries,
quarantine), how it was matched, the plan against it (the actions, with their
reasons), and their audit trail (newest first). Without --apply this reads the
store and the LMS and changes nothing: the plan is the converger's own Plan of
the same want and account, not a second copy of its rules. It does not ask the
safeguard (which would count the removal), so a planned removal may still be held.

--apply converges this one person now, whether or not they are due, through the
same assembly as the daemon: the converger's match, plan, safeguard (holds),
conditional LMS writes and audit; no one else is touched. It prints each step:
the match, the plan, the LMS calls with their outcomes, and the account after.
A removal that joins a burst settles for safeguard.settle first, as live events
do: --apply waits for that (at most safeguard.settle) and converges again.

Exits 3 when the person needs a person: their removal is held in an open hold
(hrsync holds show ID), a review item was raised, or several accounts match.
Exits 1 when hrsync has no facts about the worker, or the converge failed (a
temporary LMS failure: it is retried at the time printed, as the daemon would).`, noArgs)
	cmd.Example = "  hrsync explain --worker hr:w-1001\n  hrsync explain --worker hr:w-1001 --apply --format json"
	fs := cmd.Flags()
	var c connFlags
	var l lmsFlags
	c.addDB(fs)
	c.addConfig(fs)
	l.register(fs)
	l.registerRate(fs)
	worker := fs.String("worker", "", "the worker, `FEED:ID` (required)")
	apply := fs.Bool("apply", false, "converge this person now, through the daemon's converger, safeguard and audit")
	out := addOutput(fs, false, "table", "json")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		format, err := out.resolve(cmd)
		if err != nil {
			return err
		}
		feed, id, ok := strings.Cut(*worker, ":")
		if !ok || !connector.ValidFeedName(feed) || id == "" {
			return usagef(cmd, "--worker %q: want FEED:ID, e.g. hr:w-1001", *worker)
		}
		return explain(cmd.Context(), env, &c, &l, connector.WorkerKey{Feed: feed, WorkerID: id}, *apply, format)
	}
	return cmd
}

// explain is "hrsync explain".
func explain(ctx context.Context, env *environment, c *connFlags, l *lmsFlags, wk connector.WorkerKey, apply bool, format string) error {
	a, err := c.openApp(ctx, env, l, app.Options{}, nil)
	if err != nil {
		return err
	}
	defer a.Close()
	lms, err := a.LMS()
	if err != nil {
		return err
	}
	src := person.Sources{Store: a.Store(), Feeds: a.Settings().Feeds, LMS: lms, Policy: a.Policy}
	now := a.Clock()
	story, err := person.Tell(ctx, src, wk, now(), explainAuditLimit)
	switch {
	case errors.Is(err, connector.ErrNotFound):
		return fmt.Errorf("worker %s:%s: hrsync has no facts about this worker of feed %s (check the feed and the id: hrsync audit --worker %s:%s)",
			wk.Feed, wk.WorkerID, wk.Feed, wk.Feed, wk.WorkerID)
	case errors.Is(err, person.ErrUnknownFeed):
		return fmt.Errorf("worker %s:%s: %w (feeds: %s)", wk.Feed, wk.WorkerID, err, strings.Join(feedNames(src.Feeds), ", "))
	case err != nil:
		return fmt.Errorf("worker %s:%s: %w", wk.Feed, wk.WorkerID, err)
	}
	var done *person.Applied
	if apply {
		if done, err = applyOne(ctx, env, a, src, story); err != nil {
			return err
		}
	}
	if err := writeExplain(env.stdout, format, story, done); err != nil {
		return err
	}
	return explainVerdict(story, done)
}

// applyOne converges wk now through the app's converger and returns what it did.
func applyOne(ctx context.Context, env *environment, a *app.App, src person.Sources, story person.Story) (*person.Applied, error) {
	conv, err := a.Converger(connector.ConvergerConfig{})
	if err != nil {
		return nil, err
	}
	return person.Apply(ctx, conv, src, story, a.Settings().Safeguard.Settle, a.Clock(), explainAuditLimit, func(until time.Time) {
		fmt.Fprintf(env.stderr, "the removal settles into its burst until %s (safeguard.settle); waiting\n", until.UTC().Format(time.RFC3339))
	})
}

// explainVerdict is the exit of explain: 3 when a person must act.
func explainVerdict(story person.Story, done *person.Applied) error {
	if done == nil {
		if strings.Contains(story.Match, "a person must decide") {
			return attentionf("%s:%s: %s", story.Worker.Feed, story.Worker.WorkerID, story.Match)
		}
		return nil
	}
	if done.Failed {
		return fmt.Errorf("%s:%s: the converge failed and is retried at %s (see the steps above)", story.Worker.Feed, story.Worker.WorkerID,
			done.NextDue.UTC().Format(time.RFC3339))
	}
	for _, e := range done.Steps {
		switch {
		case e.Outcome == connector.OutcomeHeld:
			return attentionf("%s:%s: %s is held in hold %d and was not done: a person must decide (hrsync holds show %d)",
				e.Feed, e.WorkerID, e.Action, e.HoldID, e.HoldID)
		case e.Outcome == connector.OutcomeReview:
			return attentionf("%s:%s: a review item was raised: %s (hrsync review list)", e.Feed, e.WorkerID, e.Detail)
		}
	}
	return nil
}

// planJSON is one action of a plan, as JSON.
type planJSON struct {
	Kind      connector.ActionKind `json:"kind"`
	AccountID string               `json:"account_id,omitempty"`
	Reason    string               `json:"reason,omitempty"`
	HoldID    int64                `json:"hold_id,omitempty"`
}

// wantJSON is what hrsync wants, as JSON.
type wantJSON struct {
	State      connector.State   `json:"state"`
	Profile    connector.Profile `json:"profile"`
	LeftReason string            `json:"left_reason,omitempty"`
	ChangesAt  time.Time         `json:"changes_at,omitzero"`
}

// writeExplain prints the story and what --apply did in format.
func writeExplain(w io.Writer, format string, s person.Story, done *person.Applied) error {
	plan := make([]planJSON, len(s.Plan))
	for i, a := range s.Plan {
		plan[i] = planJSON{Kind: a.Kind, AccountID: a.AccountID, Reason: a.Reason, HoldID: a.HoldID}
	}
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Worker   string                 `json:"worker"`
			Facts    []connector.Fact       `json:"facts"`
			Want     wantJSON               `json:"want"`
			Account  *connector.Account     `json:"account"`
			Match    string                 `json:"match,omitempty"`
			Plan     []planJSON             `json:"plan"`
			Kept     string                 `json:"kept,omitempty"`
			LMSError string                 `json:"lms_error,omitempty"`
			Audit    []connector.AuditEntry `json:"audit"`
			Applied  *person.Applied        `json:"applied,omitempty"`
		}{s.Worker.Feed + ":" + s.Worker.WorkerID, s.Facts, wantJSON{s.Want.State, s.Want.Profile, s.Want.LeftReason, s.Next},
			s.Account, s.Match, plan, s.Kept, s.LMSErr, s.Audit, done})
	}
	at := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	name := strings.TrimSpace(s.Want.Profile.GivenName + " " + s.Want.Profile.FamilyName)
	fmt.Fprintf(tw, "worker:\t%s:%s\t%s\n", s.Worker.Feed, s.Worker.WorkerID, name)
	fmt.Fprintf(tw, "\nfacts (in the order hrsync folds them):\n")
	fmt.Fprintln(tw, "  EFFECTIVE\tKIND\tEVENT\tREASON\tRECORDED")
	for _, f := range s.Facts {
		fmt.Fprintf(tw, "  %s\t%s\t%s#%s\t%s\t%s\n", at(f.Effective), f.Kind, f.Source, f.ID, f.Reason, at(f.Recorded))
	}
	fmt.Fprintln(tw)
	want := string(s.Want.State)
	if s.Want.LeftReason != "" {
		want += " (" + s.Want.LeftReason + ")"
	}
	fmt.Fprintf(tw, "wants:\t%s\temail %s, employee number %s\n", want, s.Want.Profile.Email, s.Want.Profile.EmployeeNumber)
	if !s.Next.IsZero() {
		fmt.Fprintf(tw, "changes at:\t%s\n", at(s.Next))
	}
	fmt.Fprintf(tw, "account:\t%s\n", describeAccount(s.Account))
	if s.Match != "" {
		fmt.Fprintf(tw, "match:\t%s\n", s.Match)
	}
	if s.LMSErr != "" {
		fmt.Fprintf(tw, "lms:\tcannot read the account: %s\n", s.LMSErr)
	}
	switch {
	case s.LMSErr != "":
		fmt.Fprintf(tw, "plan:\tunknown (the LMS could not be read)\n")
	case len(s.Plan) == 0:
		fmt.Fprintf(tw, "plan:\tnothing to do\n")
	default:
		for i, a := range s.Plan {
			label := ""
			if i == 0 {
				label = "plan:"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", label, a, a.Reason)
		}
	}
	if s.Kept != "" {
		fmt.Fprintf(tw, "not reactivated:\t%s\n", s.Kept)
	}
	fmt.Fprintf(tw, "\naudit (newest first):\n")
	fmt.Fprintln(tw, "  AT\tACCOUNT\tACTION\tOUTCOME\tDETAIL")
	for _, e := range s.Audit {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", at(e.At), e.AccountID, e.Action, e.Outcome, e.Detail)
	}
	if done != nil {
		fmt.Fprintf(tw, "\napplied (converged now, through the daemon's converger):\n")
		fmt.Fprintf(tw, "  match:\t%s\n", orDash(s.Match))
		fmt.Fprintf(tw, "  plan:\t%s\n", orDash(connector.PlanString(s.Plan)))
		if !done.Waited.IsZero() {
			fmt.Fprintf(tw, "  settle:\twaited for the removal's burst until %s\n", at(done.Waited))
		}
		if len(done.Steps) == 0 {
			fmt.Fprintf(tw, "  steps:\tnone (no LMS call, no hold, no review)\n")
		}
		for _, e := range done.Steps {
			// An LMS call with its outcome, or a hold or review that stopped one.
			fmt.Fprintf(tw, "  step:\t%s %s: %s\t%s\n", e.Action, e.AccountID, e.Outcome, e.Detail)
		}
		if !done.NextDue.IsZero() {
			fmt.Fprintf(tw, "  next:\tconverged again at %s\n", at(done.NextDue))
		}
		fmt.Fprintf(tw, "  result:\t%s\n", describeAccount(done.After))
	}
	return tw.Flush()
}

// describeAccount says in words what an account is.
func describeAccount(a *connector.Account) string {
	if a == nil {
		return "none"
	}
	state := "inactive"
	if a.Active {
		state = "active"
	}
	return fmt.Sprintf("%s (%s), user name %s, externalId %s", a.ID, state, a.UserName, orDash(a.ExternalID))
}

// feedNames returns the configured feeds' names, sorted.
func feedNames(fs connector.Feeds) []string {
	var names []string
	for n := range fs {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
