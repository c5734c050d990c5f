package main

import "github.com/hrsync/hrsync/cmd/hrsync/internal/erasure"

// The erasure's names that the commands and the tests use; the logic is package
// erasure's.
const (
	erasureKeyEnv     = erasure.KeyEnv
	erasureKeysOldEnv = erasure.KeysOldEnv
)

// oldErasureKeys reads HRSYNC_ERASURE_KEYS_OLD.
var oldErasureKeys = erasure.OldKeys
