package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/hrsync/hrsync/store"
)

// erasureKeysOldEnv lists the old erasure keys, comma-separated: after a
// rotation they still check the tombstones made with them; new tombstones use
// HRSYNC_ERASURE_KEY (docs/erasure.md, "Keys: rotation, and a lost key").
const erasureKeysOldEnv = "HRSYNC_ERASURE_KEYS_OLD"

// oldErasureKeys reads HRSYNC_ERASURE_KEYS_OLD.
func oldErasureKeys(getenv func(string) string) ([][]byte, error) {
	v := getenv(erasureKeysOldEnv)
	if v == "" {
		return nil, nil
	}
	var out [][]byte
	for i, k := range strings.Split(v, ",") {
		if k == "" {
			return nil, fmt.Errorf("%s: key %d of the comma-separated list is empty", erasureKeysOldEnv, i+1)
		}
		out = append(out, []byte(k))
	}
	return out, nil
}

// useErasureKeys gives db the current key and the old keys of the environment.
func useErasureKeys(ctx context.Context, db *store.DB, current string, getenv func(string) string) error {
	old, err := oldErasureKeys(getenv)
	if err != nil {
		return err
	}
	return db.UseErasureKeys(ctx, []byte(current), old...)
}
