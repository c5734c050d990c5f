package main

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/app"
	"github.com/hrsync/hrsync/cmd/hrsync/internal/erasure"
	"github.com/hrsync/hrsync/connector"
)

func newEraseCmd(env *environment) *cobra.Command {
	cmd := newCmd("erase", "GDPR erasure of one worker: anonymise the LMS account, remove the person from the store, keep a tombstone", `
Erase a person (GDPR Art. 17), account by account. docs/erasure.md has the details.

In the LMS it anonymises the worker's account (the linked one, else the one whose
externalId is FEED:ID): userName and email become erased-<hash>@erased.invalid, the
names "Erased", the externalId erased:<hash>, employee number, org unit, title,
manager and locale are cleared, and the account is deactivated. The learning records
stay on the anonymised account (pseudonymised) when the feed's retention policy
keeps them (feeds[].retention.keep_learning_records, default true), and are deleted
otherwise, where the LMS can (else the output and the audit say so).

In the store, in one transaction, it deletes the facts, links, reviews and dead
letters of the worker and of its predecessors and successors (rehires), rewrites its
audit rows to the pseudonym erased:<hash>, and writes a tombstone: the feed, a keyed
hash of FEED:ID, the time, the reason and who asked, never the worker id. A later
event for the person is refused and dead-lettered with the reason.

<hash> is HMAC-SHA256 with the erasure key (--erasure-key or HRSYNC_ERASURE_KEY,
required; prefer the environment variable). "hrsync run" needs the same key once
any erasure exists. Neither the reason nor --by may name the person: both are kept.
Running erase again for the same worker is safe.

After a key rotation, HRSYNC_ERASURE_KEY is the new key and HRSYNC_ERASURE_KEYS_OLD
lists the old ones (comma-separated): they still recognise the people erased with
them. "hrsync erase forget-key" lists the keys of the tombstones, and is the way
out when one is lost (docs/erasure.md).`, noArgs)
	cmd.Example = "  hrsync erase --worker hr:w-1001 --reason DSR-2026-0042 --by privacy-office --dry-run"
	fs := cmd.Flags()
	var c connFlags
	var l lmsFlags
	c.addDB(fs)
	c.addConfig(fs)
	l.register(fs)
	l.registerRate(fs)
	worker := fs.String("worker", "", "the worker to erase: `FEED:ID` (required)")
	reason := fs.String("reason", "", "`TEXT` saying why, e.g. the request's reference; kept in the tombstone and the audit, so it must not name the person (required)")
	by := fs.String("by", "", "`NAME` of who asked for or approved the erasure (required)")
	dryRun := fs.Bool("dry-run", false, "show what would be erased; change nothing")
	verify := fs.Bool("verify", true, "afterwards, search every table of the store for the person's identifiers and report any left")
	var key string
	addErasureKey(fs, &key, "secret key of the keyed hash (prefer the environment variable; never logged)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		feed, id, ok := strings.Cut(*worker, ":")
		if !ok || feed == "" || id == "" {
			return usagef(cmd, "--worker %q: want FEED:ID", *worker)
		}
		w := connector.WorkerKey{Feed: feed, WorkerID: id}
		if strings.TrimSpace(*reason) == "" {
			return usagef(cmd, "--reason is required: why the person is erased (e.g. the request's reference)")
		}
		if strings.TrimSpace(*by) == "" {
			return usagef(cmd, "--by is required: who asked for or approved the erasure")
		}
		if key == "" {
			return usagef(cmd, "the erasure key is required: set %s (or --erasure-key); the daemon needs the same key", erasureKeyEnv)
		}
		ctx := cmd.Context()
		a, err := c.openApp(ctx, env, &l, app.Options{}, func(s *app.Settings) { s.ErasureKey = []byte(key) })
		if err != nil {
			return err
		}
		defer a.Close()
		lms, err := a.LMS()
		if err != nil {
			return err
		}
		return erasure.Erase(ctx, a.Store(), lms, erasure.Request{Worker: w, Reason: *reason, By: *by, Key: []byte(key),
			Keep: a.Settings().Retention.Keep(feed), DryRun: *dryRun, Verify: *verify}, env.stdout)
	}
	cmd.AddCommand(newEraseForgetKeyCmd(env))
	return cmd
}
