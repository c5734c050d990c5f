package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// maxChainDepth bounds every walk along superseded_by, so a cycle in bad data
// cannot loop forever.
const maxChainDepth = 16

// batchRows is the number of rows per multi-row INSERT. 500 rows of the widest
// table stay far below the bind-parameter limits of both backends.
const batchRows = 500

// insertRows is the number of rows per insert of facts or workers: batchRows on
// SQLite; on PostgreSQL, where the rows travel as column arrays and bind no
// parameter each, a whole chunk (a consumer batch of 512 would otherwise take
// two statements of each).
func (db *DB) insertRows() int {
	if db.backend == Postgres {
		return db.chunkSize()
	}
	return batchRows
}

// factColumns are the columns of facts, in insert order; factColumnCount of them.
const factColumns = `source, id, feed, worker_id, kind, effective_at, event_time,
	email, given_name, family_name, employee_number, org_unit, job_title, manager_id, locale,
	reason, previous_worker_id, recorded_at, requested_by`

const factColumnCount = 19

// placeholders returns "(?,?,?),(?,?,?)" for rows rows of cols columns.
func placeholders(rows, cols int) string {
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", cols), ",") + ")"
	return strings.TrimSuffix(strings.Repeat(row+",", rows), ",")
}

// workerBump is what one RecordFacts batch does to a worker row.
type workerBump struct {
	key          connector.WorkerKey
	facts        int64  // newly recorded facts of the worker
	supersededBy string // set when a rehire names this worker as predecessor
}

// versionBump is how much the worker's version grows: one per new fact, and one
// for being taken over.
func (b *workerBump) versionBump() int64 {
	if b.supersededBy != "" {
		return b.facts + 1
	}
	return b.facts
}

// RecordFacts records facts in one transaction and returns how many were new.
//
// Every fact is validated first; an invalid one fails the whole batch with an
// error marked connector.Permanent, and so does a fact about a worker erased under
// GDPR (see erase.go; *ErasedError). A fact already stored under (Source, ID), or
// repeated in the batch, is skipped and not counted. Each worker that gets a new
// fact has its version bumped and becomes due now (store clock). A rehire with a
// PreviousWorkerID marks that predecessor superseded by the rehired worker. A new
// fact of a superseded worker also bumps and marks due the end of its chain of
// successors, which is the worker that converges the account.
func (db *DB) RecordFacts(ctx context.Context, facts []connector.Fact) (recorded int, err error) {
	for _, f := range facts {
		if err := f.Validate(); err != nil {
			return 0, connector.Permanent(fmt.Errorf("store: fact %s#%s: %w", f.Source, f.ID, err))
		}
	}
	if len(facts) == 0 {
		return 0, nil
	}
	// Drop repeats within the batch and sort, so that concurrent batches lock index
	// entries in the same order (no deadlocks on PostgreSQL).
	facts = slices.Clone(facts)
	slices.SortFunc(facts, func(a, b connector.Fact) int {
		return cmp.Or(cmp.Compare(a.Source, b.Source), cmp.Compare(a.ID, b.ID))
	})
	facts = slices.CompactFunc(facts, func(a, b connector.Fact) bool { return a.Source == b.Source && a.ID == b.ID })

	err = db.inTx(ctx, func(tx *sqlx.Tx) error {
		recorded, err = db.recordFacts(ctx, tx, facts, db.now())
		return err
	})
	if err != nil {
		return 0, err
	}
	return recorded, nil
}

// recordFacts is RecordFacts in tx, for facts validated, sorted and without
// repeats, at now.
func (db *DB) recordFacts(ctx context.Context, tx *sqlx.Tx, facts []connector.Fact, now time.Time) (recorded int, err error) {
	// A closed feed's facts are refused whatever the keys.
	if err := db.checkClosed(ctx, tx, facts); err != nil {
		return 0, err
	}
	// Then: can this handle tell an erased person at all? Without the key of
	// every tombstone it records nothing (not even an erasure request, which
	// would otherwise be refused as unknown and dead-lettered with its id).
	if err := db.checkErasureKeys(ctx, tx); err != nil {
		return 0, err
	}
	todo, err := db.screenErasureRequests(ctx, tx, facts, now)
	if err != nil {
		return 0, err
	}
	if err := db.checkErased(ctx, tx, todo); err != nil {
		return 0, err
	}
	inserted, err := db.insertFacts(ctx, tx, todo, now)
	if err != nil {
		return 0, err
	}
	recorded = len(inserted)
	if recorded == 0 {
		return 0, nil
	}
	bumps := map[connector.WorkerKey]*workerBump{}
	bump := func(k connector.WorkerKey) *workerBump {
		b := bumps[k]
		if b == nil {
			b = &workerBump{key: k}
			bumps[k] = b
		}
		return b
	}
	for _, f := range inserted {
		bump(f.Key()).facts++
		if f.Kind == connector.KindRehired && f.PreviousWorkerID != "" && f.PreviousWorkerID != f.WorkerID {
			prev := bump(connector.WorkerKey{Feed: f.Feed, WorkerID: f.PreviousWorkerID})
			prev.supersededBy = f.WorkerID
		}
	}
	list := make([]*workerBump, 0, len(bumps))
	for _, b := range bumps {
		list = append(list, b)
	}
	slices.SortFunc(list, func(a, b *workerBump) int {
		return cmp.Or(cmp.Compare(a.key.Feed, b.key.Feed), cmp.Compare(a.key.WorkerID, b.key.WorkerID))
	})
	superseded, err := db.upsertWorkers(ctx, tx, list, now)
	if err != nil {
		return 0, err
	}
	// A fact for a worker that was taken over changes what its successor wants.
	done := map[connector.WorkerKey]bool{}
	for _, k := range superseded {
		if bumps[k].facts == 0 {
			continue // only marked superseded in this batch; its successor has the rehire
		}
		last, err := db.lastSuccessor(ctx, tx, k)
		if err != nil {
			return 0, err
		}
		if last == k || done[last] {
			continue
		}
		done[last] = true
		if _, err := tx.ExecContext(ctx, db.q(`UPDATE workers SET version = version + 1, due_at = ? WHERE feed = ? AND worker_id = ?`),
			db.ts(now), last.Feed, last.WorkerID); err != nil {
			return 0, fmt.Errorf("store: mark successor %s due: %w", last, err)
		}
	}
	return recorded, nil
}

// insertFacts inserts facts (sorted, without repeats) and returns those that
// were not stored before.
//
// On PostgreSQL the rows go as one array per column through unnest: one short
// statement that plans in microseconds, where a multi-row VALUES list of 1800
// parameters costs milliseconds to parse and plan per batch. SQLite, in process,
// takes multi-row VALUES.
func (db *DB) insertFacts(ctx context.Context, tx *sqlx.Tx, facts []connector.Fact, now time.Time) ([]connector.Fact, error) {
	byKey := make(map[[2]string]connector.Fact, len(facts))
	for _, f := range facts {
		byKey[[2]string{f.Source, f.ID}] = f
	}
	var inserted []connector.Fact
	for chunk := range slices.Chunk(facts, db.insertRows()) {
		var query string
		var args []any
		if db.backend == Postgres {
			query, args = factsUnnest(chunk, now)
		} else {
			query, args = db.factsValues(chunk, now)
		}
		rows, err := tx.QueryContext(ctx, query, args...)
		if err != nil {
			return nil, fmt.Errorf("store: insert facts: %w", err)
		}
		for rows.Next() {
			var k [2]string
			if err := rows.Scan(&k[0], &k[1]); err != nil {
				rows.Close()
				return nil, fmt.Errorf("store: insert facts: %w", err)
			}
			inserted = append(inserted, byKey[k])
		}
		if err := rows.Close(); err != nil {
			return nil, fmt.Errorf("store: insert facts: %w", err)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("store: insert facts: %w", err)
		}
	}
	return inserted, nil
}

// factsValues is the multi-row VALUES insert of facts (SQLite).
func (db *DB) factsValues(facts []connector.Fact, now time.Time) (string, []any) {
	recordedAt := db.ts(now)
	args := make([]any, 0, len(facts)*factColumnCount)
	for _, f := range facts {
		p := f.Profile
		args = append(args, f.Source, f.ID, f.Feed, f.WorkerID, string(f.Kind), db.ts(f.Effective), db.ts(f.Time),
			p.Email, p.GivenName, p.FamilyName, p.EmployeeNumber, p.OrgUnit, p.JobTitle, p.ManagerID, p.Locale,
			f.Reason, f.PreviousWorkerID, recordedAt, f.RequestedBy)
	}
	query := `INSERT INTO facts (` + factColumns + `) VALUES ` + placeholders(len(facts), factColumnCount) +
		` ON CONFLICT (source, id) DO NOTHING RETURNING source, id`
	return db.q(query), args
}

// factsUnnest is the insert of facts as column arrays (PostgreSQL).
func factsUnnest(facts []connector.Fact, now time.Time) (string, []any) {
	cols := make([]pq.StringArray, factColumnCount)
	for i := range cols {
		cols[i] = make(pq.StringArray, 0, len(facts))
	}
	recordedAt := pgTime(now)
	for _, f := range facts {
		p := f.Profile
		for i, v := range [factColumnCount]string{f.Source, f.ID, f.Feed, f.WorkerID, string(f.Kind), pgTime(f.Effective), pgTime(f.Time),
			p.Email, p.GivenName, p.FamilyName, p.EmployeeNumber, p.OrgUnit, p.JobTitle, p.ManagerID, p.Locale,
			f.Reason, f.PreviousWorkerID, recordedAt, f.RequestedBy} {
			cols[i] = append(cols[i], v)
		}
	}
	args := make([]any, factColumnCount)
	for i := range cols {
		args[i] = cols[i]
	}
	query := `INSERT INTO facts (` + factColumns + `) SELECT * FROM unnest(
		$1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::timestamptz[],
		$8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[],
		$16::text[], $17::text[], $18::timestamptz[], $19::text[])
		ON CONFLICT (source, id) DO NOTHING RETURNING source, id`
	return query, args
}

// pgTime formats an instant for a timestamptz[] array literal: UTC, microseconds.
func pgTime(t time.Time) string {
	return t.UTC().Truncate(time.Microsecond).Format("2006-01-02T15:04:05.999999Z07:00")
}

// upsertWorkers applies the bumps (sorted by key) and returns the keys of the
// touched workers that are superseded.
func (db *DB) upsertWorkers(ctx context.Context, tx *sqlx.Tx, list []*workerBump, now time.Time) ([]connector.WorkerKey, error) {
	const upsert = `
		ON CONFLICT (feed, worker_id) DO UPDATE SET
			version = workers.version + excluded.version,
			due_at = excluded.due_at,
			superseded_by = COALESCE(excluded.superseded_by, workers.superseded_by)
		RETURNING feed, worker_id, superseded_by`
	var superseded []connector.WorkerKey
	for chunk := range slices.Chunk(list, db.insertRows()) {
		var query string
		var args []any
		if db.backend == Postgres {
			// Column arrays, as in factsUnnest. Worker ids are never empty, so ''
			// stands for "not superseded".
			var feeds, ids, sups pq.StringArray
			var bumps pq.Int64Array
			for _, b := range chunk {
				feeds, ids, bumps, sups = append(feeds, b.key.Feed), append(ids, b.key.WorkerID), append(bumps, b.versionBump()), append(sups, b.supersededBy)
			}
			query = `INSERT INTO workers (feed, worker_id, version, due_at, superseded_by)
				SELECT f, w, v, $4::timestamptz, NULLIF(s, '') FROM unnest($1::text[], $2::text[], $3::bigint[], $5::text[]) AS u(f, w, v, s)` + upsert
			args = []any{feeds, ids, bumps, pgTime(now), sups}
		} else {
			due := db.ts(now)
			args = make([]any, 0, len(chunk)*5)
			for _, b := range chunk {
				var sup any
				if b.supersededBy != "" {
					sup = b.supersededBy
				}
				args = append(args, b.key.Feed, b.key.WorkerID, b.versionBump(), due, sup)
			}
			query = db.q(`INSERT INTO workers (feed, worker_id, version, due_at, superseded_by) VALUES ` + placeholders(len(chunk), 5) + upsert)
		}
		rows, err := tx.QueryContext(ctx, query, args...)
		if err != nil {
			return nil, fmt.Errorf("store: upsert workers: %w", err)
		}
		for rows.Next() {
			var k connector.WorkerKey
			var sup *string
			if err := rows.Scan(&k.Feed, &k.WorkerID, &sup); err != nil {
				rows.Close()
				return nil, fmt.Errorf("store: upsert workers: %w", err)
			}
			if sup != nil {
				superseded = append(superseded, k)
			}
		}
		if err := rows.Close(); err != nil {
			return nil, fmt.Errorf("store: upsert workers: %w", err)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("store: upsert workers: %w", err)
		}
	}
	return superseded, nil
}

// lastSuccessor follows superseded_by from k, at most maxChainDepth steps, and
// returns the last worker of the chain (k itself if it is not superseded).
func (db *DB) lastSuccessor(ctx context.Context, q sqlx.QueryerContext, k connector.WorkerKey) (connector.WorkerKey, error) {
	seen := map[string]bool{k.WorkerID: true}
	for range maxChainDepth {
		var sup *string
		err := sqlx.GetContext(ctx, q, &sup, db.q(`SELECT superseded_by FROM workers WHERE feed = ? AND worker_id = ?`), k.Feed, k.WorkerID)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && (sup == nil || seen[*sup])) {
			return k, nil
		}
		if err != nil {
			return k, fmt.Errorf("store: successor of %s: %w", k, err)
		}
		seen[*sup] = true
		k.WorkerID = *sup
	}
	return k, nil
}

// factSelect selects the columns scanFact reads.
const factSelect = `SELECT source, id, feed, worker_id, kind, effective_at, event_time,
	email, given_name, family_name, employee_number, org_unit, job_title, manager_id, locale,
	reason, previous_worker_id, requested_by, recorded_at FROM facts`

// factColumnsOf is factSelect's column list, each qualified by alias.
func factColumnsOf(alias string) string {
	cols := strings.Split(strings.TrimPrefix(strings.TrimSuffix(factSelect, " FROM facts"), "SELECT "), ",")
	for i, c := range cols {
		cols[i] = alias + "." + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}

// nullFact scans factSelect's columns where they may all be NULL: no fact (an
// outer join that found none).
type nullFact struct {
	cols         [16]sql.NullString
	eff, at, rec instant
}

// dest returns the scan destinations in factSelect's order.
func (n *nullFact) dest() []any {
	c := &n.cols
	return []any{&c[0], &c[1], &c[2], &c[3], &c[4], &n.eff, &n.at,
		&c[5], &c[6], &c[7], &c[8], &c[9], &c[10], &c[11], &c[12], &c[13], &c[14], &c[15], &n.rec}
}

// fact returns the fact scanned, and false for none.
func (n *nullFact) fact() (connector.Fact, bool) {
	c := &n.cols
	if !c[0].Valid {
		return connector.Fact{}, false
	}
	f := connector.Fact{Source: c[0].String, ID: c[1].String, Feed: c[2].String, WorkerID: c[3].String,
		Kind: connector.Kind(c[4].String), Effective: n.eff.T, Time: n.at.T,
		Profile: connector.Profile{Email: c[5].String, GivenName: c[6].String, FamilyName: c[7].String, EmployeeNumber: c[8].String,
			OrgUnit: c[9].String, JobTitle: c[10].String, ManagerID: c[11].String, Locale: c[12].String},
		Reason: c[13].String, PreviousWorkerID: c[14].String, RequestedBy: c[15].String, Recorded: n.rec.T}
	return f, true
}

func scanFacts(rows *sqlx.Rows) ([]connector.Fact, error) {
	defer rows.Close()
	var out []connector.Fact
	for rows.Next() {
		var f connector.Fact
		var eff, at, rec instant
		p := &f.Profile
		if err := rows.Scan(&f.Source, &f.ID, &f.Feed, &f.WorkerID, &f.Kind, &eff, &at,
			&p.Email, &p.GivenName, &p.FamilyName, &p.EmployeeNumber, &p.OrgUnit, &p.JobTitle, &p.ManagerID, &p.Locale,
			&f.Reason, &f.PreviousWorkerID, &f.RequestedBy, &rec); err != nil {
			return nil, err
		}
		f.Effective, f.Time, f.Recorded = eff.T, at.T, rec.T
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	slices.SortFunc(out, connector.CompareFacts)
	return out, nil
}

// Facts returns the facts recorded for w alone (not its predecessors), in fold
// order (connector.CompareFacts). A worker without facts has none; that is not
// an error.
func (db *DB) Facts(ctx context.Context, w connector.WorkerKey) ([]connector.Fact, error) {
	rows, err := db.x.QueryxContext(ctx, db.q(factSelect+` WHERE feed = ? AND worker_id = ?`), w.Feed, w.WorkerID)
	if err != nil {
		return nil, fmt.Errorf("store: facts of %s: %w", w, err)
	}
	facts, err := scanFacts(rows)
	if err != nil {
		return nil, fmt.Errorf("store: facts of %s: %w", w, err)
	}
	return facts, nil
}
