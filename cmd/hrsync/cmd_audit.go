package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
)

func newAuditCmd(env *environment) *cobra.Command {
	cmd := newCmd("audit", "query the audit trail: decisions and LMS actions, with facts, plan and outcome", `
Query the audit trail: every decision and LMS action hrsync took, newest first. Each
row shows the facts that led to it (source#id), the whole plan it was part of, its
outcome, and whether a safeguard held it or a person approved or rejected it.

Filter by worker, feed, account, action and time range; print a table, or export
CSV or JSON lines (--format). CSV cells are escaped against formula injection, so
the file is safe to open in a spreadsheet.`, noArgs)
	cmd.Example = "  hrsync audit --worker hr:w-1001\n" +
		"  hrsync audit --feed partner-acme --action deactivate --since 2026-10-01 --format csv --out audit.csv"
	fs := cmd.Flags()
	var c connFlags
	c.addDB(fs)
	feed := addFeed(fs, "only this feed")
	worker := fs.String("worker", "", "only this worker id (with --feed, or FEED:ID)")
	account := fs.String("account", "", "only this LMS account id")
	action := fs.String("action", "", "only this action: create, update, deactivate, reactivate, delete, anonymise or none")
	since := fs.String("since", "", "only from this time on: RFC 3339 date-time or date (UTC)")
	until := fs.String("until", "", "only before this time: RFC 3339 date-time or date (UTC)")
	limit := fs.Int("limit", 1000, "at most this many rows (0: all)")
	out := addOutput(fs, true, "table", "csv", "json")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		f := store.AuditFilter{Feed: feed.name, WorkerID: *worker, AccountID: *account, Action: connector.ActionKind(*action), Limit: *limit}
		if fd, id, ok := strings.Cut(*worker, ":"); ok && feed.name == "" {
			f.Feed, f.WorkerID = fd, id
		}
		if *action != "" && *action != string(connector.ActionNone) && !isAction(connector.ActionKind(*action)) {
			return usagef(cmd, "--action %q: want one of %v or none", *action, connector.ActionKinds)
		}
		var err error
		if f.Since, err = parseWhen("--since", *since); err != nil {
			return usageErr(cmd, err)
		}
		if f.Until, err = parseWhen("--until", *until); err != nil {
			return usageErr(cmd, err)
		}
		format, err := out.resolve(cmd)
		if err != nil {
			return err
		}
		db, _, err := c.openStore(cmd.Context(), env)
		if err != nil {
			return err
		}
		defer db.Close()
		rows, err := db.ListAudit(cmd.Context(), f)
		if err != nil {
			return err
		}
		w, done, err := out.create(env)
		if err != nil {
			return err
		}
		werr := writeAudit(w, format, rows)
		return done(fmt.Sprintf("%d audit rows", len(rows)), werr)
	}
	return cmd
}

func isAction(k connector.ActionKind) bool {
	for _, a := range connector.ActionKinds {
		if a == k {
			return true
		}
	}
	return false
}

// parseWhen reads a date-time or a date (UTC); empty is the zero time.
func parseWhen(flag, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%s %q: want an RFC 3339 date-time (2026-12-01T18:00:00Z) or a date (2026-12-01)", flag, v)
}

var holdRef = regexp.MustCompile(`(approved|held|rejected) in hold (\d+)|hold (\d+) (approved|rejected)`)

// safeguardOf says whether the row was held, approved or rejected by a person.
func safeguardOf(a connector.AuditEntry) string {
	switch a.Outcome {
	case connector.OutcomeHeld, connector.OutcomeApproved, connector.OutcomeRejected:
		if m := holdRef.FindString(a.Detail); m != "" {
			return m
		}
		return string(a.Outcome)
	}
	if m := holdRef.FindString(a.Detail); m != "" {
		return m
	}
	return ""
}

var auditHeader = []string{"id", "at", "feed", "worker_id", "account_id", "action", "outcome", "safeguard", "plan", "facts", "detail"}

func writeAudit(w io.Writer, format string, rows []connector.AuditEntry) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		for _, a := range rows {
			if err := enc.Encode(struct {
				connector.AuditEntry
				Safeguard string `json:"safeguard,omitempty"`
			}{a, safeguardOf(a)}); err != nil {
				return err
			}
		}
		return nil
	case "csv":
		cw := csv.NewWriter(w)
		if err := cw.Write(auditHeader); err != nil {
			return err
		}
		for _, a := range rows {
			rec := []string{fmt.Sprint(a.ID), a.At.UTC().Format(time.RFC3339Nano), a.Feed, a.WorkerID, a.AccountID, string(a.Action),
				string(a.Outcome), safeguardOf(a), a.Plan, strings.Join(a.FactIDs, " "), a.Detail}
			for i := range rec {
				rec[i] = connector.EscapeCSVCell(rec[i])
			}
			if err := cw.Write(rec); err != nil {
				return err
			}
		}
		cw.Flush()
		return cw.Error()
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "AT\tWORKER\tACCOUNT\tACTION\tOUTCOME\tSAFEGUARD\tPLAN\tFACTS\tDETAIL")
	for _, a := range rows {
		fmt.Fprintf(tw, "%s\t%s:%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", a.At.UTC().Format(time.RFC3339), a.Feed, a.WorkerID,
			orDash(a.AccountID), a.Action, a.Outcome, orDash(safeguardOf(a)), a.Plan, len(a.FactIDs), a.Detail)
	}
	return tw.Flush()
}
