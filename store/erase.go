package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/jmoiron/sqlx"
)

// GDPR erasure: see docs/erasure.md.
//
// The store keeps one tombstone per erased (feed, worker id), keyed by
// connector.ErasureHash, which needs the erasure key. RecordFacts refuses a fact
// whose worker (or rehire predecessor) has a tombstone, so an erased person is
// never silently resurrected. For that the store must hold the key of every
// tombstone (erasure_keys.go): the daemon and the erase command call
// UseErasureKeys at start, which refuses a key ring that does not cover the
// tombstones; a tombstone made later with a key the handle lacks makes
// RecordFacts fail closed with an *ErasureKeyError (temporary: the message is
// retried, never dropped), which the daemon turns into a stop and /readyz 503.

// ErasedError is the permanent error of RecordFacts for a fact about an erased worker.
type ErasedError struct {
	Fact  string // source#id
	Field string // worker_id or previous_worker_id
	At    time.Time
}

func (e *ErasedError) Error() string {
	return fmt.Sprintf("store: fact %s: %s: worker was erased on %s (GDPR erasure); a new fact for this person is refused so that the erased data does not silently come back; see docs/erasure.md",
		e.Fact, e.Field, e.At.UTC().Format(time.DateOnly))
}

// checkErased returns a connector.Permanent *ErasedError if a fact is about an
// erased worker, by the hashes of every key of the ring. It runs in the
// recording transaction, so an erasure that commits first is seen.
func (db *DB) checkErased(ctx context.Context, tx *sqlx.Tx, facts []connector.Fact) error {
	ring := db.erasure.Load()
	if ring == nil {
		return nil // no tombstone needs a key: RecordFacts ran checkErasureKeys first
	}
	type ref struct {
		fact, field string
	}
	refs := map[string]ref{}
	for _, f := range facts {
		id := f.Source + "#" + f.ID
		// Every key of the ring: a tombstone made with an old key still counts.
		for _, key := range ring.all {
			if h := connector.ErasureHash(key, f.Key()); refs[h] == (ref{}) {
				refs[h] = ref{id, "worker_id"}
			}
			if f.PreviousWorkerID != "" {
				h := connector.ErasureHash(key, connector.WorkerKey{Feed: f.Feed, WorkerID: f.PreviousWorkerID})
				if _, dup := refs[h]; !dup {
					refs[h] = ref{id, "previous_worker_id"}
				}
			}
		}
	}
	hashes := make([]string, 0, len(refs))
	for h := range refs {
		hashes = append(hashes, h)
	}
	slices.Sort(hashes)
	for chunk := range slices.Chunk(hashes, batchRows) {
		query, args, err := sqlx.In(`SELECT hash, at FROM erasures WHERE hash IN (?) ORDER BY hash LIMIT 1`, chunk)
		if err != nil {
			return err
		}
		var hash string
		var at instant
		err = tx.QueryRowContext(ctx, db.q(query), args...).Scan(&hash, &at)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return fmt.Errorf("store: erasure tombstones: %w", err)
		}
		r := refs[hash]
		return connector.Permanent(&ErasedError{Fact: r.fact, Field: r.field, At: at.T})
	}
	return nil
}

// Erasure is one GDPR erasure request.
type Erasure struct {
	Worker connector.WorkerKey
	// Reason and By are the operator's words; they are kept with the tombstone and
	// in the audit, so they must not name the person.
	Reason, By string
	// AccountID is the LMS account that was anonymised, if any (audited: an id is
	// not personal data once the account is anonymised).
	AccountID string
	// Training says what became of the learning records (connector.Training*).
	Training string
	// Identifiers are more strings that name the person (e.g. the email the LMS
	// account had); dead letters containing any of them are deleted too.
	Identifiers []string
}

// ErasureSubject is what the store holds about a worker to erase: its chain (the
// worker, its predecessors and successors), their links, and the identifiers that
// dead letters are searched for.
type ErasureSubject struct {
	Worker connector.WorkerKey
	// Chain are the worker ids of the person in this feed, sorted.
	Chain []string
	// Accounts are the linked LMS account ids of the chain, the last successor's first.
	Accounts []string
	// Identifiers are the worker ids, emails and employee numbers found in the facts.
	Identifiers []string
	// Facts counts the facts of the chain.
	Facts int
	// Erased is set when a tombstone for the worker already exists.
	Erased bool
}

// ErasureReport is what Erase removed.
type ErasureReport struct {
	Hash                                        string
	Workers, Facts, Links, Reviews, DeadLetters int
	Audit, HoldWorkers, Removals                int
	// HoldPayloads counts held roster uploads whose payload names the person; they
	// are not changed (see docs/erasure.md).
	HoldPayloads int
	// AlreadyErased is set when the worker had a tombstone before.
	AlreadyErased bool
}

// key returns the current erasure key, the one new tombstones are made with.
func (db *DB) key() ([]byte, error) {
	k := db.erasure.Load()
	if k == nil {
		return nil, errors.New("store: erasure needs the erasure key (HRSYNC_ERASURE_KEY); call UseErasureKeys")
	}
	return k.current, nil
}

// chain returns the worker ids of w's person in its feed: w, the workers it
// succeeded and the workers that succeeded it, following superseded_by both ways
// (bounded by maxChainDepth per step).
func (db *DB) chain(ctx context.Context, q sqlx.QueryerContext, w connector.WorkerKey) ([]string, error) {
	last, err := db.lastSuccessor(ctx, q, w)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{w.WorkerID: true, last.WorkerID: true}
	queue := []string{last.WorkerID}
	for depth := 0; len(queue) > 0 && depth < maxChainDepth*maxChainDepth; depth++ {
		id := queue[0]
		queue = queue[1:]
		var preds []string
		if err := sqlx.SelectContext(ctx, q, &preds, db.q(`SELECT worker_id FROM workers WHERE feed = ? AND superseded_by = ?
			UNION SELECT previous_worker_id FROM facts WHERE feed = ? AND worker_id = ? AND previous_worker_id <> ''`),
			w.Feed, id, w.Feed, id); err != nil {
			return nil, fmt.Errorf("store: chain of %s: %w", w, err)
		}
		for _, p := range preds {
			if !seen[p] {
				seen[p] = true
				queue = append(queue, p)
			}
		}
	}
	out := make([]string, 0, len(seen))
	for id := range seen {
		out = append(out, id)
	}
	slices.Sort(out)
	return out, nil
}

// ErasureSubject returns what the store holds about w's person, for the LMS step
// and the dry run. It needs no key, except to tell whether w was already erased.
func (db *DB) ErasureSubject(ctx context.Context, w connector.WorkerKey) (ErasureSubject, error) {
	s := ErasureSubject{Worker: w}
	ids, err := db.chain(ctx, db.x, w)
	if err != nil {
		return s, err
	}
	s.Chain = ids
	last, err := db.lastSuccessor(ctx, db.x, w)
	if err != nil {
		return s, err
	}
	idents := map[string]bool{}
	for _, id := range ids {
		idents[id] = true
		var acct string
		err := db.x.GetContext(ctx, &acct, db.q(`SELECT account_id FROM links WHERE feed = ? AND worker_id = ?`), w.Feed, id)
		if err == nil {
			if id == last.WorkerID {
				s.Accounts = append([]string{acct}, s.Accounts...)
			} else {
				s.Accounts = append(s.Accounts, acct)
			}
		} else if !errors.Is(err, sql.ErrNoRows) {
			return s, fmt.Errorf("store: erasure subject %s: %w", w, err)
		}
		facts, err := db.Facts(ctx, connector.WorkerKey{Feed: w.Feed, WorkerID: id})
		if err != nil {
			return s, err
		}
		s.Facts += len(facts)
		for _, f := range facts {
			for _, v := range []string{f.Profile.Email, f.Profile.EmployeeNumber} {
				if v != "" {
					idents[v] = true
				}
			}
		}
	}
	for v := range idents {
		s.Identifiers = append(s.Identifiers, v)
	}
	slices.Sort(s.Identifiers)
	if k := db.erasure.Load(); k != nil {
		hashes := make([]string, 0, len(k.all))
		for _, key := range k.all {
			hashes = append(hashes, connector.ErasureHash(key, w))
		}
		query, args, err := sqlx.In(`SELECT COUNT(*) FROM erasures WHERE hash IN (?)`, hashes)
		if err != nil {
			return s, err
		}
		var n int
		if err := db.x.GetContext(ctx, &n, db.q(query), args...); err != nil {
			return s, fmt.Errorf("store: erasure subject %s: %w", w, err)
		}
		s.Erased = n > 0
	}
	return s, nil
}

// Erase removes e.Worker's person from the store in one transaction: the facts,
// worker rows, links, reviews, held removals and dead letters of the worker's
// chain; the audit rows are kept but pseudonymised (worker id → ErasedID, detail
// "erased", no facts, no plan). It writes a tombstone per chain worker (keyed hash,
// feed, time, reason, by; never the worker id) and one audit row "anonymise" for the
// erasure. It needs the erasure key (UseErasureKey) and is safe to run again.
//
// Dead letters are matched by content, best effort: a message whose data or headers
// contain a chain worker id (as a JSON string), or any identifier (email, employee
// number; case-insensitive) is deleted.
func (db *DB) Erase(ctx context.Context, e Erasure) (ErasureReport, error) {
	key, err := db.key()
	if err != nil {
		return ErasureReport{}, err
	}
	if e.Worker.Feed == "" || e.Worker.WorkerID == "" {
		return ErasureReport{}, errors.New("store: erase: feed and worker id are required")
	}
	subj, err := db.ErasureSubject(ctx, e.Worker)
	if err != nil {
		return ErasureReport{}, err
	}
	hash := connector.ErasureHash(key, e.Worker)
	pseudo := connector.ErasedID(hash)
	check := connector.ErasureKeyCheck(key)
	var rep ErasureReport
	err = db.inTx(ctx, func(tx *sqlx.Tx) error {
		rep = ErasureReport{Hash: hash, AlreadyErased: subj.Erased}
		now := db.now()
		// The chain again, inside the transaction: a rehire may have arrived.
		ids, err := db.chain(ctx, tx, e.Worker)
		if err != nil {
			return err
		}
		ids = uniqueSorted(append(ids, subj.Chain...))
		exec := func(n *int, query string, args ...any) error {
			res, err := tx.ExecContext(ctx, db.q(query), args...)
			if err != nil {
				return fmt.Errorf("store: erase %s: %w", pseudo, err)
			}
			c, err := res.RowsAffected()
			if err != nil {
				return err
			}
			*n += int(c)
			return nil
		}
		for _, id := range ids {
			h := connector.ErasureHash(key, connector.WorkerKey{Feed: e.Worker.Feed, WorkerID: id})
			var ignored int
			if err := exec(&ignored, `INSERT INTO erasures (hash, feed, at, reason, erased_by, key_check) VALUES (?, ?, ?, ?, ?, ?)
				ON CONFLICT (hash) DO NOTHING`, h, e.Worker.Feed, db.ts(now), e.Reason, e.By, check); err != nil {
				return err
			}
			p := connector.ErasedID(h)
			for _, st := range []struct {
				n     *int
				query string
				args  []any
			}{
				{&rep.Facts, `DELETE FROM facts WHERE feed = ? AND worker_id = ?`, nil},
				{&rep.Links, `DELETE FROM links WHERE feed = ? AND worker_id = ?`, nil},
				{&rep.Reviews, `DELETE FROM reviews WHERE feed = ? AND worker_id = ?`, nil},
				{&rep.HoldWorkers, `DELETE FROM hold_workers WHERE feed = ? AND worker_id = ?`, nil},
				{&rep.Removals, `DELETE FROM removals WHERE feed = ? AND worker_id = ?`, nil},
				{&rep.Workers, `DELETE FROM workers WHERE feed = ? AND worker_id = ?`, nil},
				{&rep.Audit, `UPDATE audit SET worker_id = ?, detail = 'erased', fact_ids = '[]', plan = 'erased' WHERE feed = ? AND worker_id = ?`, []any{p}},
				{&ignored, `UPDATE job_items SET worker_id = ?, user_name = '', email = '', detail = 'erased' WHERE feed = ? AND worker_id = ?`, []any{p}},
			} {
				if err := exec(st.n, st.query, append(st.args, e.Worker.Feed, id)...); err != nil {
					return err
				}
			}
			// Workers that named this one as superseded_by, outside the chain walk's bound.
			var ignored2 int
			if err := exec(&ignored2, `UPDATE workers SET superseded_by = NULL WHERE feed = ? AND superseded_by = ?`, e.Worker.Feed, id); err != nil {
				return err
			}
		}
		// Dead letters and held payloads, by content.
		var needles, folded [][]byte
		for _, id := range ids {
			needles = append(needles, []byte(`"`+id+`"`))
		}
		for _, v := range append(slices.Clone(subj.Identifiers), e.Identifiers...) {
			if v == "" || slices.Contains(ids, v) {
				continue
			}
			folded = append(folded, bytes.ToLower([]byte(v)))
		}
		match := func(bs ...[]byte) bool {
			for _, b := range bs {
				if len(b) == 0 {
					continue
				}
				lower := bytes.ToLower(b)
				for _, n := range needles {
					if bytes.Contains(b, n) {
						return true
					}
				}
				for _, n := range folded {
					if bytes.Contains(lower, n) {
						return true
					}
				}
			}
			return false
		}
		// A dead letter's history (a failed replay's error, a discard's reason)
		// may quote the message too: it counts as part of the dead letter, and
		// goes with it (ON DELETE CASCADE).
		rows, err := tx.QueryContext(ctx, `SELECT d.id, d.subject, d.headers, d.data, d.reason || ' ' || d.discard_reason || ' ' || COALESCE(h.details, '')
			FROM dead_letters d LEFT JOIN (SELECT dead_letter_id, `+db.concatDetails()+` AS details FROM dead_letter_history GROUP BY dead_letter_id) h
			ON h.dead_letter_id = d.id ORDER BY d.id`)
		if err != nil {
			return fmt.Errorf("store: erase %s: dead letters: %w", pseudo, err)
		}
		var dead []int64
		for rows.Next() {
			var id int64
			var subject, reason string
			var headers, data []byte
			if err := rows.Scan(&id, &subject, &headers, &data, &reason); err != nil {
				rows.Close()
				return fmt.Errorf("store: erase %s: dead letters: %w", pseudo, err)
			}
			if match(headers, data, []byte(subject), []byte(reason)) {
				dead = append(dead, id)
			}
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for _, id := range dead {
			if err := exec(&rep.DeadLetters, `DELETE FROM dead_letters WHERE id = ?`, id); err != nil {
				return err
			}
		}
		// The account mirror's copies of the person's accounts (migration 0020):
		// by account, by externalId, and by the emails and employee numbers that
		// name them. A copy forgotten is read again from the LMS when needed.
		var ignoredMirror int
		for _, acc := range append(slices.Clone(subj.Accounts), e.AccountID) {
			if acc == "" {
				continue
			}
			if err := exec(&ignoredMirror, `DELETE FROM lms_mirror WHERE account_id = ?`, acc); err != nil {
				return err
			}
		}
		for _, id := range ids {
			if err := exec(&ignoredMirror, `DELETE FROM lms_mirror WHERE external_id = ?`,
				connector.WorkerKey{Feed: e.Worker.Feed, WorkerID: id}.ExternalID()); err != nil {
				return err
			}
		}
		for _, v := range append(slices.Clone(subj.Identifiers), e.Identifiers...) {
			if v == "" {
				continue
			}
			if err := exec(&ignoredMirror, `DELETE FROM lms_mirror WHERE lower(email) = lower(?) OR employee_number = ? OR lower(user_name) = lower(?)`, v, v, v); err != nil {
				return err
			}
		}
		// Clean-up and offboarding items of the person's accounts that were linked to no worker.
		if e.AccountID != "" {
			var ignored int
			if err := exec(&ignored, `UPDATE job_items SET user_name = '', email = '', detail = 'erased' WHERE account_id = ?`, e.AccountID); err != nil {
				return err
			}
		}
		var payloads [][]byte
		if err := tx.SelectContext(ctx, &payloads, `SELECT payload FROM holds WHERE payload IS NOT NULL`); err != nil {
			return fmt.Errorf("store: erase %s: holds: %w", pseudo, err)
		}
		for _, p := range payloads {
			if match(p) {
				rep.HoldPayloads++
			}
		}
		detail := fmt.Sprintf("GDPR erasure by %s: %s; learning records: %s; removed %d facts, %d links, %d reviews, %d dead letters; pseudonymised %d audit rows",
			orNone(e.By), orNone(e.Reason), orNone(e.Training), rep.Facts, rep.Links, rep.Reviews, rep.DeadLetters, rep.Audit)
		if _, err := tx.ExecContext(ctx, db.q(`INSERT INTO audit (`+auditColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, '[]', ?)`),
			db.ts(now), e.Worker.Feed, pseudo, e.AccountID, string(connector.ActionAnonymise), string(connector.OutcomeOK), detail, "erase"); err != nil {
			return fmt.Errorf("store: erase %s: audit: %w", pseudo, err)
		}
		return nil
	})
	if err != nil {
		return ErasureReport{}, err
	}
	return rep, nil
}

// concatDetails is the aggregate that joins the details of a dead letter's history.
func (db *DB) concatDetails() string {
	if db.backend == Postgres {
		return `string_agg(actor || ' ' || detail, ' ')`
	}
	return `group_concat(actor || ' ' || detail, ' ')`
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func uniqueSorted(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}

// Tombstone is one erasure as the store keeps it: no worker id, only the keyed hash.
type Tombstone struct {
	Hash   string    `json:"hash" db:"hash"`
	Feed   string    `json:"feed" db:"feed"`
	At     time.Time `json:"at" db:"-"`
	Reason string    `json:"reason" db:"reason"`
	By     string    `json:"by" db:"erased_by"`
}

// Tombstones returns every erasure tombstone, oldest first.
func (db *DB) Tombstones(ctx context.Context) ([]Tombstone, error) {
	rows, err := db.x.QueryContext(ctx, `SELECT hash, feed, at, reason, erased_by FROM erasures ORDER BY at, hash`)
	if err != nil {
		return nil, fmt.Errorf("store: tombstones: %w", err)
	}
	defer rows.Close()
	var out []Tombstone
	for rows.Next() {
		var t Tombstone
		var at instant
		if err := rows.Scan(&t.Hash, &t.Feed, &at, &t.Reason, &t.By); err != nil {
			return nil, fmt.Errorf("store: tombstones: %w", err)
		}
		t.At = at.T
		out = append(out, t)
	}
	return out, rows.Err()
}

// Residue is one place where a searched string still occurs.
type Residue struct {
	Table, Column, Needle string
}

func (r Residue) String() string { return r.Table + "." + r.Column + " contains " + r.Needle }

// FindResidue searches every text and binary column of every table of the store
// for each needle (case-insensitive) and returns where they occur. It reads whole
// tables; it is the check behind "hrsync erase --verify" and the erasure tests.
func (db *DB) FindResidue(ctx context.Context, needles []string) ([]Residue, error) {
	type col struct{ table, column string }
	var cols []col
	if db.backend == Postgres {
		rows, err := db.x.QueryContext(ctx, `SELECT table_name, column_name FROM information_schema.columns
			WHERE table_schema = current_schema() AND data_type IN ('text', 'bytea', 'character varying', 'json', 'jsonb')
			ORDER BY table_name, column_name`)
		if err != nil {
			return nil, fmt.Errorf("store: residue: %w", err)
		}
		for rows.Next() {
			var c col
			if err := rows.Scan(&c.table, &c.column); err != nil {
				rows.Close()
				return nil, err
			}
			cols = append(cols, c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	} else {
		var tables []string
		if err := db.x.SelectContext(ctx, &tables, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`); err != nil {
			return nil, fmt.Errorf("store: residue: %w", err)
		}
		for _, t := range tables {
			rows, err := db.x.QueryContext(ctx, `SELECT name, type FROM pragma_table_info(?)`, t)
			if err != nil {
				return nil, fmt.Errorf("store: residue: %w", err)
			}
			for rows.Next() {
				var name, typ string
				if err := rows.Scan(&name, &typ); err != nil {
					rows.Close()
					return nil, err
				}
				if typ = strings.ToUpper(typ); typ == "TEXT" || typ == "BLOB" || typ == "" {
					cols = append(cols, col{t, name})
				}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return nil, err
			}
		}
	}
	var lowered [][]byte
	for _, n := range needles {
		lowered = append(lowered, bytes.ToLower([]byte(n)))
	}
	var out []Residue
	for _, c := range cols {
		found := map[int]bool{}
		rows, err := db.x.QueryContext(ctx, `SELECT "`+c.column+`" FROM "`+c.table+`"`)
		if err != nil {
			return nil, fmt.Errorf("store: residue %s.%s: %w", c.table, c.column, err)
		}
		for rows.Next() {
			var v []byte
			if err := rows.Scan(&v); err != nil {
				rows.Close()
				return nil, fmt.Errorf("store: residue %s.%s: %w", c.table, c.column, err)
			}
			lv := bytes.ToLower(v)
			for i, n := range lowered {
				if len(n) > 0 && bytes.Contains(lv, n) {
					found[i] = true
				}
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		for i := range needles {
			if found[i] {
				out = append(out, Residue{c.table, c.column, needles[i]})
			}
		}
	}
	return out, nil
}
