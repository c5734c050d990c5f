package erasure

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
)

// KeysOldEnv lists the old erasure keys, comma-separated: after a rotation they
// still check the tombstones made with them; new tombstones use HRSYNC_ERASURE_KEY
// (docs/erasure.md, "Keys: rotation, and a lost key").
const KeysOldEnv = "HRSYNC_ERASURE_KEYS_OLD"

// OldKeys reads HRSYNC_ERASURE_KEYS_OLD.
func OldKeys(getenv func(string) string) ([][]byte, error) {
	v := getenv(KeysOldEnv)
	if v == "" {
		return nil, nil
	}
	var out [][]byte
	for i, k := range strings.Split(v, ",") {
		if k == "" {
			return nil, fmt.Errorf("%s: key %d of the comma-separated list is empty", KeysOldEnv, i+1)
		}
		out = append(out, []byte(k))
	}
	return out, nil
}

// KeyUser is a store that checks erasure tombstones with the keys it is given.
// Implemented by *store.DB.
type KeyUser interface {
	// UseErasureKeys gives the store the current key and the old ones; it fails
	// if a tombstone needs a key it was not given.
	UseErasureKeys(ctx context.Context, current []byte, old ...[]byte) error
}

// UseKeys gives db the current key and the old keys of the environment.
func UseKeys(ctx context.Context, db KeyUser, current string, getenv func(string) string) error {
	old, err := OldKeys(getenv)
	if err != nil {
		return err
	}
	return db.UseErasureKeys(ctx, []byte(current), old...)
}

// HeldKeys returns the fingerprints of the keys this process is given (in
// HRSYNC_ERASURE_KEY and HRSYNC_ERASURE_KEYS_OLD), each with the variable that
// holds it. They are not checked against the tombstones (that is the point of
// forget-key: one of them may be missing).
func HeldKeys(getenv func(string) string) (map[string]string, error) {
	held := map[string]string{}
	if k := getenv(KeyEnv); k != "" {
		held[connector.ErasureKeyCheck([]byte(k))] = KeyEnv
	}
	old, err := OldKeys(getenv)
	if err != nil {
		return nil, err
	}
	for _, k := range old {
		held[connector.ErasureKeyCheck(k)] = KeysOldEnv
	}
	return held, nil
}

// WriteKeys lists to out the erasure keys the tombstones were made with (keys),
// how many tombstones each made, and whether held (HeldKeys) includes it.
func WriteKeys(out io.Writer, keys []store.KeyTombstones, held map[string]string) error {
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

// KeyStore is what forget-key needs of the store. Implemented by *store.DB.
type KeyStore interface {
	// ErasureKeys returns the keys of the tombstones, by fingerprint.
	ErasureKeys(ctx context.Context) ([]store.KeyTombstones, error)
	// ForgetErasureKey releases the tombstones of a lost key, audited, and
	// returns how many.
	ForgetErasureKey(ctx context.Context, f store.ForgetKey) (int, error)
}

// Forget is one "hrsync erase forget-key --fingerprint": the lost key's
// fingerprint, the same again in Confirm, who decided it and why.
type Forget struct {
	Fingerprint, Confirm string
	By, Reason           string
}

// ForgetKey declares the key of f.Fingerprint lost for good (docs/erasure.md, "A
// lost key"): it refuses a key that held (HeldKeys) includes, writes the warning
// to warn, and changes nothing unless f.Confirm repeats the fingerprint. It
// returns how many tombstones were released; the store's logic is
// store.(*DB).ForgetErasureKey.
func ForgetKey(ctx context.Context, db KeyStore, keys []store.KeyTombstones, held map[string]string, f Forget, warn io.Writer) (int, error) {
	fp := f.Fingerprint
	switch {
	case held[fp] != "":
		return 0, fmt.Errorf("--fingerprint %s: that is the key set in %s: it is not lost", fp, held[fp])
	case strings.TrimSpace(f.By) == "":
		return 0, errors.New("--by is required: who decided that the key is lost")
	case strings.TrimSpace(f.Reason) == "":
		return 0, errors.New("--reason is required: why the key is lost (e.g. the incident's reference)")
	}
	var live *store.KeyTombstones
	for i, k := range keys {
		if k.Fingerprint == fp && k.Lost.IsZero() {
			live = &keys[i]
		}
	}
	if live == nil {
		return 0, fmt.Errorf("--fingerprint %s: no tombstone still needs that key (run hrsync erase forget-key without flags to list them)", fp)
	}
	fmt.Fprintf(warn, "WARNING: %d tombstones (erasures from %s to %s) were made with erasure key %s. Once it is declared lost, hrsync can no longer recognise those erased people: a new event for one of them is recorded, and their LMS account may be created again. Erase them again with the current key from your register of erasure requests.\n",
		live.Tombstones, live.First.UTC().Format(time.DateOnly), live.Last.UTC().Format(time.DateOnly), fp)
	if f.Confirm != fp {
		return 0, fmt.Errorf("not confirmed: nothing changed; repeat the fingerprint in --confirm %s to declare the key lost", fp)
	}
	return db.ForgetErasureKey(ctx, store.ForgetKey{Fingerprint: fp, By: f.By, Reason: f.Reason})
}
