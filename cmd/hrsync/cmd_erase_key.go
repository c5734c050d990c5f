package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/erasure"
)

// newEraseForgetKeyCmd is "hrsync erase forget-key": the way out when an erasure
// key is lost (docs/erasure.md, "A lost key"). The store's logic is
// store.(*DB).ForgetErasureKey; this lists the keys and asks for confirmation.
func newEraseForgetKeyCmd(env *environment) *cobra.Command {
	cmd := newCmd("forget-key", "list the erasure keys of the tombstones, or declare one lost", `
Without --fingerprint: list the erasure keys the store's tombstones were made
with (by fingerprint), how many tombstones each made, and whether the keys set in
HRSYNC_ERASURE_KEY and HRSYNC_ERASURE_KEYS_OLD include it.

With --fingerprint: declare that key lost for good. Without its key nobody can
tell whether a fact belongs to a person erased with it, so hrsync run refuses to
start, and records no fact of anyone. Declaring the key lost releases those
tombstones: they are kept (the erasures happened), one audit row per feed says who
decided it and why, and hrsync run starts without that key again. The price:
hrsync can no longer recognise those erased people; a new event for one of them
is recorded like anyone's. Erase them again with the current key, from your
register of erasure requests (hrsync erase --worker FEED:ID), to protect them again.

Nothing changes unless --confirm repeats the fingerprint.`, noArgs)
	fs := cmd.Flags()
	var c connFlags
	c.addDB(fs)
	fp := fs.String("fingerprint", "", "the fingerprint of the lost key (16 hex digits, as the list and hrsync run's error show it)")
	confirm := fs.String("confirm", "", "the fingerprint again, to confirm that the key is lost for good")
	by := fs.String("by", "", "`NAME` of who decided that the key is lost (kept in the audit)")
	reason := fs.String("reason", "", "`TEXT` saying why, e.g. the incident's reference (kept in the audit)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		held, err := erasure.HeldKeys(env.getenv)
		if err != nil {
			return err
		}
		db, _, err := c.openStore(ctx, env)
		if err != nil {
			return err
		}
		defer db.Close()
		keys, err := db.ErasureKeys(ctx)
		if err != nil {
			return err
		}
		out := env.stdout
		if *fp == "" {
			return erasure.WriteKeys(out, keys, held)
		}
		n, err := erasure.ForgetKey(ctx, db, keys, held, erasure.Forget{Fingerprint: *fp, Confirm: *confirm, By: *by, Reason: *reason}, env.stderr)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "erasure key %s declared lost: %d tombstones released (kept, no longer checked); audited\n", *fp, n)
		fmt.Fprintln(out, "hrsync run now starts without that key; erase the people it named again with the current key (hrsync erase --worker FEED:ID --reason TEXT --by NAME)")
		return nil
	}
	return cmd
}
