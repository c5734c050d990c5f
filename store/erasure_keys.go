package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/jmoiron/sqlx"
)

// Erasure keys: see docs/erasure.md ("Keys: rotation, and a lost key").
//
// A tombstone names its person only by HMAC(key, "feed:worker id"), so a store
// handle can tell whether a fact belongs to an erased person only with the key
// that made the tombstone. Without it there is no telling, for anyone: a fact of
// a worker who was never erased looks exactly like one of a worker who was. So a
// handle must hold the key of every tombstone (each records its key's
// fingerprint, connector.ErasureKeyCheck), or record nothing at all. A handle
// holds a key ring: the current key, which makes new tombstones, and old keys,
// which only check. A tombstone whose key is lost for good can be released by a
// person (ForgetErasureKey); from then on no key is needed for it, and its
// person can no longer be recognised.

// erasureKeyRing is the keys that UseErasureKeys set.
type erasureKeyRing struct {
	current []byte
	// all are the current and the old keys by fingerprint.
	all map[string][]byte
}

// erasureState is the store's key ring, held by pointer so that it can be set
// while the store is in use.
type erasureState = atomic.Pointer[erasureKeyRing]

// KeyTombstones is what the store holds of one erasure key: the tombstones made
// with it.
type KeyTombstones struct {
	// Fingerprint is connector.ErasureKeyCheck of the key.
	Fingerprint string
	Tombstones  int
	// First and Last are when the oldest and the newest of them were made.
	First, Last time.Time
	// Lost is when a person declared the key lost (ForgetErasureKey); zero if not.
	Lost time.Time
	// Held is set when this store handle holds the key.
	Held bool
}

// ErasureKeyError says that the store holds tombstones made with keys that this
// handle does not hold: it cannot tell whether a fact belongs to an erased
// person, so it records none. It is temporary (the facts are retried, never
// dropped); it is fixed by giving the handle the keys, or by a person declaring
// a key lost (ForgetErasureKey).
type ErasureKeyError struct {
	// Missing are the keys of live tombstones that the handle does not hold.
	Missing []KeyTombstones
	// NoKey is set when the handle holds no key at all.
	NoKey bool
}

func (e *ErasureKeyError) Error() string {
	n := 0
	fps := make([]string, 0, len(e.Missing))
	for _, m := range e.Missing {
		n += m.Tombstones
		fps = append(fps, m.Fingerprint)
	}
	held := "this process holds no erasure key"
	if !e.NoKey {
		held = "this process does not hold that key"
	}
	return fmt.Sprintf("store: the store holds %d GDPR erasure tombstones made with erasure key fingerprint %s, and %s: "+
		"it cannot tell whether a fact belongs to an erased person, so it records none; "+
		"set HRSYNC_ERASURE_KEY to the key the erasures were made with (after a rotation: the current key, and the old one in HRSYNC_ERASURE_KEYS_OLD); "+
		"if that key is lost for good, see docs/erasure.md (A lost key: hrsync erase forget-key)",
		n, strings.Join(fps, ", "), held)
}

// UseErasureKey gives the store one erasure key: UseErasureKeys(ctx, key).
func (db *DB) UseErasureKey(ctx context.Context, key []byte) error {
	return db.UseErasureKeys(ctx, key)
}

// UseErasureKeys gives the store its erasure keys: current makes new tombstones,
// current and old check facts against the tombstones. It returns an
// *ErasureKeyError if the store holds live tombstones made with a key not among
// them (a daemon must not start: it could record nothing). With no tombstones an
// empty ring is fine. An old key without a current one is an error.
func (db *DB) UseErasureKeys(ctx context.Context, current []byte, old ...[]byte) error {
	if len(current) == 0 && len(old) > 0 {
		return errors.New("store: erasure keys: old keys are set (HRSYNC_ERASURE_KEYS_OLD) but no current key (HRSYNC_ERASURE_KEY): new tombstones need the current key")
	}
	var ring *erasureKeyRing
	if len(current) > 0 {
		ring = &erasureKeyRing{current: slices.Clone(current), all: map[string][]byte{}}
		for i, k := range append([][]byte{current}, old...) {
			if len(k) == 0 {
				return fmt.Errorf("store: erasure keys: old key %d is empty", i)
			}
			ring.all[connector.ErasureKeyCheck(k)] = slices.Clone(k)
		}
	}
	if err := db.missingErasureKeys(ctx, db.x, ring); err != nil {
		return err
	}
	db.erasure.Store(ring)
	return nil
}

// ErasureKeyProblem returns an *ErasureKeyError if the store holds live
// tombstones made with a key this handle does not hold (RecordFacts would refuse
// every fact), or nil. It is a readiness check: another process may have erased
// someone with another key, or with a key while this one runs without.
func (db *DB) ErasureKeyProblem(ctx context.Context) error {
	return db.missingErasureKeys(ctx, db.x, db.erasure.Load())
}

// checkErasureKeys is ErasureKeyProblem in the recording transaction.
func (db *DB) checkErasureKeys(ctx context.Context, tx *sqlx.Tx) error {
	return db.missingErasureKeys(ctx, tx, db.erasure.Load())
}

// missingErasureKeys returns an *ErasureKeyError naming the keys of live
// tombstones that ring lacks, or nil. One query on the partial index
// erasures_key_check.
func (db *DB) missingErasureKeys(ctx context.Context, q sqlx.QueryerContext, ring *erasureKeyRing) error {
	query, args := `SELECT key_check, COUNT(*), MIN(at), MAX(at) FROM erasures WHERE key_lost_at IS NULL`, []any(nil)
	if ring != nil {
		var err error
		query, args, err = sqlx.In(query+` AND key_check NOT IN (?)`, slices.Sorted(maps.Keys(ring.all)))
		if err != nil {
			return err
		}
	}
	rows, err := q.QueryContext(ctx, db.q(query+` GROUP BY key_check ORDER BY key_check`), args...)
	if err != nil {
		return fmt.Errorf("store: erasure keys: %w", err)
	}
	defer rows.Close()
	var missing []KeyTombstones
	for rows.Next() {
		var k KeyTombstones
		var first, last instant
		if err := rows.Scan(&k.Fingerprint, &k.Tombstones, &first, &last); err != nil {
			return fmt.Errorf("store: erasure keys: %w", err)
		}
		k.First, k.Last = first.T, last.T
		missing = append(missing, k)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: erasure keys: %w", err)
	}
	if len(missing) > 0 {
		return &ErasureKeyError{Missing: missing, NoKey: ring == nil}
	}
	return nil
}

// ErasureKeys returns, per key fingerprint, the tombstones made with it, and
// whether this handle holds the key, by fingerprint.
func (db *DB) ErasureKeys(ctx context.Context) ([]KeyTombstones, error) {
	rows, err := db.x.QueryContext(ctx, `SELECT key_check, COUNT(*), MIN(at), MAX(at), MAX(key_lost_at) FROM erasures GROUP BY key_check ORDER BY key_check`)
	if err != nil {
		return nil, fmt.Errorf("store: erasure keys: %w", err)
	}
	defer rows.Close()
	ring := db.erasure.Load()
	var out []KeyTombstones
	for rows.Next() {
		var k KeyTombstones
		var first, last, lost instant
		if err := rows.Scan(&k.Fingerprint, &k.Tombstones, &first, &last, &lost); err != nil {
			return nil, fmt.Errorf("store: erasure keys: %w", err)
		}
		k.First, k.Last, k.Lost = first.T, last.T, lost.T
		if ring != nil {
			_, k.Held = ring.all[k.Fingerprint]
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// ForgetKey is a person's decision that an erasure key is lost for good.
type ForgetKey struct {
	// Fingerprint names the key (connector.ErasureKeyCheck, as errors and
	// ErasureKeys show it).
	Fingerprint string
	// By and Reason are kept in the audit; both are required.
	By, Reason string
}

// ForgetErasureKey releases the tombstones made with a lost key: they stay (the
// erasures happened, and their time, reason and by remain), but no store handle
// needs their key any more, so a daemon without it starts and records facts. The
// price: hrsync can no longer recognise those people; a new event for one of
// them is recorded like anyone's. It writes one audit row per feed, and returns
// how many tombstones it released. It refuses a key this handle holds (it is not
// lost), and a fingerprint no live tombstone has. If the key turns up again,
// giving it to the store (as an old key) makes those tombstones check again.
func (db *DB) ForgetErasureKey(ctx context.Context, f ForgetKey) (int, error) {
	switch {
	case f.Fingerprint == "":
		return 0, errors.New("store: forget erasure key: fingerprint is required")
	case strings.TrimSpace(f.By) == "":
		return 0, errors.New("store: forget erasure key: by is required: who decided that the key is lost")
	case strings.TrimSpace(f.Reason) == "":
		return 0, errors.New("store: forget erasure key: reason is required: why the key is lost")
	}
	if ring := db.erasure.Load(); ring != nil {
		if _, held := ring.all[f.Fingerprint]; held {
			return 0, fmt.Errorf("store: forget erasure key: fingerprint %s is a key this process holds: it is not lost", f.Fingerprint)
		}
	}
	released := 0
	err := db.inTx(ctx, func(tx *sqlx.Tx) error {
		released = 0
		type feedCount struct {
			Feed string `db:"feed"`
			N    int    `db:"n"`
		}
		var feeds []feedCount
		if err := tx.SelectContext(ctx, &feeds, db.q(`SELECT feed, COUNT(*) AS n FROM erasures WHERE key_check = ? AND key_lost_at IS NULL GROUP BY feed ORDER BY feed`),
			f.Fingerprint); err != nil {
			return fmt.Errorf("store: forget erasure key: %w", err)
		}
		if len(feeds) == 0 {
			return fmt.Errorf("store: forget erasure key: no tombstone still needs a key with fingerprint %s (see hrsync erase forget-key without --fingerprint)", f.Fingerprint)
		}
		now := db.now()
		if _, err := tx.ExecContext(ctx, db.q(`UPDATE erasures SET key_lost_at = ? WHERE key_check = ? AND key_lost_at IS NULL`),
			db.ts(now), f.Fingerprint); err != nil {
			return fmt.Errorf("store: forget erasure key: %w", err)
		}
		for _, fc := range feeds {
			released += fc.N
			detail := fmt.Sprintf("GDPR erasure key %s declared lost by %s: %s; %d tombstones released: hrsync can no longer recognise these erased people, and records new events for them like anyone's",
				f.Fingerprint, f.By, f.Reason, fc.N)
			if _, err := tx.ExecContext(ctx, db.q(`INSERT INTO audit (`+auditColumns+`) VALUES (?, ?, '', '', ?, ?, ?, '[]', 'erasure key forgotten')`),
				db.ts(now), fc.Feed, string(connector.ActionNone), string(connector.OutcomeOK), detail); err != nil {
				return fmt.Errorf("store: forget erasure key: audit: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return released, nil
}
