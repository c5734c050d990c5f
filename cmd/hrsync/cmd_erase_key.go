package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
)

// cmdEraseForgetKey is "hrsync erase forget-key": the way out when an erasure key
// is lost (docs/erasure.md, "A lost key"). The store's logic is
// store.(*DB).ForgetErasureKey; this lists the keys and asks for confirmation.
func cmdEraseForgetKey(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "erase forget-key", "erase forget-key [--fingerprint FP --by NAME --reason TEXT --confirm FP] [flags]", `
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

Nothing changes unless --confirm repeats the fingerprint.`)
	vars := map[string]string{}
	var c connFlags
	c.registerBase(fs, vars, false)
	fp := fs.String("fingerprint", "", "the fingerprint of the lost key (16 hex digits, as the list and hrsync run's error show it)")
	confirm := fs.String("confirm", "", "the fingerprint again, to confirm that the key is lost for good")
	by := fs.String("by", "", "who decided that the key is lost (kept in the audit)")
	reason := fs.String("reason", "", "why, e.g. the incident's reference (kept in the audit)")
	if err := parseFlags(fs, env, args, vars); err != nil {
		return err
	}
	// The keys this process is given, by fingerprint; they are not checked against
	// the tombstones (that is the point: one of them may be missing).
	held := map[string]string{}
	if k := env.getenv(erasureKeyEnv); k != "" {
		held[connector.ErasureKeyCheck([]byte(k))] = erasureKeyEnv
	}
	old, err := oldErasureKeys(env.getenv)
	if err != nil {
		return err
	}
	for _, k := range old {
		held[connector.ErasureKeyCheck(k)] = erasureKeysOldEnv
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
		if len(keys) == 0 {
			fmt.Fprintln(out, "the store holds no erasure tombstone")
			return nil
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "FINGERPRINT\tTOMBSTONES\tFIRST\tLAST\tKEY")
		for _, k := range keys {
			state := "NOT SET here: hrsync run cannot start without it"
			switch {
			case !k.Lost.IsZero():
				state = "declared lost on " + k.Lost.UTC().Format(time.DateOnly)
			case held[k.Fingerprint] != "":
				state = "set in " + held[k.Fingerprint]
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", k.Fingerprint, k.Tombstones, k.First.UTC().Format(time.DateOnly), k.Last.UTC().Format(time.DateOnly), state)
		}
		return tw.Flush()
	}
	switch {
	case held[*fp] != "":
		return fmt.Errorf("--fingerprint %s: that is the key set in %s: it is not lost", *fp, held[*fp])
	case strings.TrimSpace(*by) == "":
		return errors.New("--by is required: who decided that the key is lost")
	case strings.TrimSpace(*reason) == "":
		return errors.New("--reason is required: why the key is lost (e.g. the incident's reference)")
	}
	var live *store.KeyTombstones
	for i, k := range keys {
		if k.Fingerprint == *fp && k.Lost.IsZero() {
			live = &keys[i]
		}
	}
	if live == nil {
		return fmt.Errorf("--fingerprint %s: no tombstone still needs that key (run hrsync erase forget-key without flags to list them)", *fp)
	}
	fmt.Fprintf(env.stderr, "WARNING: %d tombstones (erasures from %s to %s) were made with erasure key %s. Once it is declared lost, hrsync can no longer recognise those erased people: a new event for one of them is recorded, and their LMS account may be created again. Erase them again with the current key from your register of erasure requests.\n",
		live.Tombstones, live.First.UTC().Format(time.DateOnly), live.Last.UTC().Format(time.DateOnly), *fp)
	if *confirm != *fp {
		return fmt.Errorf("not confirmed: nothing changed; repeat the fingerprint in --confirm %s to declare the key lost", *fp)
	}
	n, err := db.ForgetErasureKey(ctx, store.ForgetKey{Fingerprint: *fp, By: *by, Reason: *reason})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "erasure key %s declared lost: %d tombstones released (kept, no longer checked); audited\n", *fp, n)
	fmt.Fprintln(out, "hrsync run now starts without that key; erase the people it named again with the current key (hrsync erase --worker FEED:ID)")
	return nil
}
