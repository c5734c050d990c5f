package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// The batch paths of the converger: LoadHistories reads the histories of a claimed
// batch in two statements, CompleteAll commits the batch's outcomes in one
// transaction of a handful of statements.
//
// Lists of workers travel as key rows (keyRows): on PostgreSQL two text arrays
// through unnest, one short statement whatever the batch size; on SQLite a
// multi-row VALUES list, so a batch is cut into chunks of sqliteChunk workers to
// stay well below the bind-parameter limit.

// sqliteChunk is the number of workers per statement on SQLite.
const sqliteChunk = 200

// pgChunk is the number of workers per statement on PostgreSQL. Arrays have no
// parameter limit; this only bounds the size of one result.
const pgChunk = 4096

func (db *DB) chunkSize() int {
	if db.backend == Postgres {
		return pgChunk
	}
	return sqliteChunk
}

// pgKeys is keyRows' arguments on PostgreSQL as a FROM item, k(kf, kw), in the
// order of the keys. The queries that read rows by key join each table to it
// LATERAL (... OFFSET 0): one index probe per key whatever the planner thinks
// of the table's size (see historyStep).
const pgKeys = `unnest(?::text[], ?::text[]) AS k(kf, kw)`

// keyRows returns a query expression yielding one (feed, worker_id) row per key,
// with ?-placeholders, and its arguments. keys must not be empty. On PostgreSQL
// the arguments are also those of pgKeys.
func (db *DB) keyRows(keys []connector.WorkerKey) (string, []any) {
	if db.backend == Postgres {
		feeds, ids := make(pq.StringArray, len(keys)), make(pq.StringArray, len(keys))
		for i, k := range keys {
			feeds[i], ids[i] = k.Feed, k.WorkerID
		}
		return `SELECT * FROM unnest(?::text[], ?::text[])`, []any{feeds, ids}
	}
	args := make([]any, 0, 2*len(keys))
	for _, k := range keys {
		args = append(args, k.Feed, k.WorkerID)
	}
	return `VALUES ` + placeholders(len(keys), 2), args
}

// inList returns "col = ANY(?)" (PostgreSQL) or "col IN (?,...)" (SQLite) for
// vals, which must not be empty, and its arguments.
func (db *DB) inList(col string, vals []string) (string, []any) {
	if db.backend == Postgres {
		return col + ` = ANY(?::text[])`, []any{pq.StringArray(vals)}
	}
	args := make([]any, len(vals))
	for i, v := range vals {
		args[i] = v
	}
	return col + ` IN (` + strings.TrimSuffix(strings.Repeat("?,", len(vals)), ",") + `)`, args
}

func compareKeys(a, b connector.WorkerKey) int {
	return cmp.Or(cmp.Compare(a.Feed, b.Feed), cmp.Compare(a.WorkerID, b.WorkerID))
}

// uniqueKeys returns keys sorted, without repeats.
func uniqueKeys(keys []connector.WorkerKey) []connector.WorkerKey {
	keys = slices.Clone(keys)
	slices.SortFunc(keys, compareKeys)
	return slices.Compact(keys)
}

// historyChain names, as chain(feed, root, worker_id), every worker of a seed
// (root = worker_id) and its predecessors in the feed, at most maxChainDepth
// deep. The seed is keyRows' expression, spliced in at the first %s, and the
// predecessors of chain row c are read by the second (historyStep).
var historyChain = `WITH RECURSIVE seed(feed, worker_id) AS (%s),
	chain(feed, root, worker_id, depth) AS (
		SELECT feed, worker_id, worker_id, 0 FROM seed
		UNION
		SELECT c.feed, c.root, w.worker_id, c.depth + 1 FROM chain c %s
		WHERE c.depth < ` + fmt.Sprint(maxChainDepth) + `
	) `

// historyStep joins the predecessors w of chain row c. On PostgreSQL it is a
// LATERAL subquery that OFFSET 0 keeps from being flattened into a join, so each
// row is one probe of workers_superseded_by: planned as a join, a chunk of a few
// hundred workers hashes the whole workers table whenever it has fewer than some
// 50,000 rows, because the planner prices index probes as if nothing were cached.
func (db *DB) historyStep() string {
	if db.backend == Postgres {
		return `CROSS JOIN LATERAL (SELECT p.worker_id FROM workers p WHERE p.feed = c.feed AND p.superseded_by = c.worker_id OFFSET 0) w`
	}
	return `JOIN workers w ON w.feed = c.feed AND w.superseded_by = c.worker_id`
}

// LoadHistories returns the history of each worker of ws, in the order given (a
// worker may repeat). A worker the store has never seen gets a History with no
// facts and no links. Per chunk of workers it costs two statements: one walks the
// predecessor chains of the whole chunk and reads successors and links, one reads
// the facts of every worker on those chains. On PostgreSQL (pgHistoryChunk
// workers a chunk) one statement reads the workers and their facts (loadRoots),
// and the two others run only for the workers that have predecessors.
func (db *DB) LoadHistories(ctx context.Context, ws []connector.WorkerKey) ([]connector.History, error) {
	hs, _, err := db.loadHistories(ctx, ws)
	return hs, err
}

// chainInfo is what the chain query says about one requested worker.
type chainInfo struct {
	known   bool
	sup     *string
	members []string          // worker ids of the chain, the worker included
	links   map[string]string // worker id of the chain -> account id
}

// loadHistories is LoadHistories, also reporting which workers the store knows.
func (db *DB) loadHistories(ctx context.Context, ws []connector.WorkerKey) ([]connector.History, []bool, error) {
	if len(ws) == 0 {
		return nil, nil, nil
	}
	roots := uniqueKeys(ws)
	infos := make(map[connector.WorkerKey]*chainInfo, len(roots))
	facts := map[connector.WorkerKey][]connector.Fact{}
	loaded := map[connector.WorkerKey]bool{} // workers whose facts are read, or about to be
	chunkSize := db.chunkSize()
	if db.backend == Postgres {
		chunkSize = pgHistoryChunk
	}
	for chunk := range slices.Chunk(roots, chunkSize) {
		if db.backend == Postgres {
			// Most workers have no predecessor: one statement reads them whole.
			// Only the chains of the others are walked.
			var err error
			if chunk, err = db.loadRoots(ctx, chunk, infos, facts, loaded); err != nil {
				return nil, nil, err
			}
			if len(chunk) == 0 {
				continue
			}
		}
		members, err := db.loadChains(ctx, chunk, infos, loaded)
		if err != nil {
			return nil, nil, err
		}
		// Chains are short, but a chunk's members may outnumber its roots.
		for mchunk := range slices.Chunk(members, db.chunkSize()) {
			if err := db.loadFacts(ctx, mchunk, facts); err != nil {
				return nil, nil, err
			}
		}
	}

	built := make(map[connector.WorkerKey]connector.History, len(roots))
	for _, k := range roots {
		h := connector.History{Worker: k, Links: map[string]string{}}
		info := infos[k]
		if info == nil || !info.known {
			built[k] = h
			continue
		}
		if info.sup != nil {
			h.SupersededBy = &connector.WorkerKey{Feed: k.Feed, WorkerID: *info.sup}
		}
		for _, id := range info.members {
			h.Facts = append(h.Facts, facts[connector.WorkerKey{Feed: k.Feed, WorkerID: id}]...)
		}
		slices.SortFunc(h.Facts, connector.CompareFacts)
		h.Links = info.links
		built[k] = h
	}

	out := make([]connector.History, len(ws))
	known := make([]bool, len(ws))
	used := make(map[connector.WorkerKey]bool, len(roots))
	for i, k := range ws {
		h := built[k]
		if used[k] {
			// A repeated worker gets its own copy, so callers may change one.
			h.Facts = slices.Clone(h.Facts)
			h.Links = maps.Clone(h.Links)
			if h.SupersededBy != nil {
				s := *h.SupersededBy
				h.SupersededBy = &s
			}
		}
		used[k] = true
		out[i] = h
		known[i] = infos[k] != nil && infos[k].known
	}
	return out, known, nil
}

// pgHistoryChunk is the number of workers per LoadHistories statement on
// PostgreSQL. It keeps the estimated cost of loadRoots' statement well below
// the default jit_above_cost: compiling a statement takes tens of milliseconds,
// more than running it.
const pgHistoryChunk = 1024

// loadRoots reads, in one statement on PostgreSQL, what LoadHistories needs of
// each of roots (unique): whether the store knows it, its successor, its link and
// its facts, and whether it has predecessors. It fills infos, facts and loaded
// for those without predecessors and returns the others, whose chains are for
// loadChains to walk (their own facts are read already).
//
// Each table is read with one index probe per worker (see historyStep).
func (db *DB) loadRoots(ctx context.Context, roots []connector.WorkerKey, infos map[connector.WorkerKey]*chainInfo, facts map[connector.WorkerKey][]connector.Fact, loaded map[connector.WorkerKey]bool) ([]connector.WorkerKey, error) {
	_, args := db.keyRows(roots)
	query := `SELECT k.kf, k.kw, w.sup, w.preds, w.acct, ` + factColumnsOf("f") + ` FROM ` + pgKeys + `
		CROSS JOIN LATERAL (SELECT COALESCE(superseded_by, '') AS sup,
				EXISTS (SELECT 1 FROM workers p WHERE p.feed = k.kf AND p.superseded_by = k.kw) AS preds,
				(SELECT l.account_id FROM links l WHERE l.feed = k.kf AND l.worker_id = k.kw) AS acct
			FROM workers WHERE feed = k.kf AND worker_id = k.kw OFFSET 0) w
		LEFT JOIN LATERAL (` + factSelect + ` WHERE feed = k.kf AND worker_id = k.kw OFFSET 0) f ON true`
	rows, err := db.x.QueryContext(ctx, db.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("store: histories: %w", err)
	}
	defer rows.Close()
	chained := map[connector.WorkerKey]bool{}
	for rows.Next() {
		var k connector.WorkerKey
		var sup string
		var preds bool
		var acct *string
		var f nullFact
		dest := append([]any{&k.Feed, &k.WorkerID, &sup, &preds, &acct}, f.dest()...)
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("store: histories: %w", err)
		}
		if preds {
			chained[k] = true
		}
		if infos[k] == nil {
			info := &chainInfo{known: true, members: []string{k.WorkerID}, links: map[string]string{}}
			if sup != "" {
				info.sup = &sup
			}
			if acct != nil {
				info.links[k.WorkerID] = *acct
			}
			infos[k] = info
			loaded[k] = true
		}
		if fact, ok := f.fact(); ok {
			facts[k] = append(facts[k], fact)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: histories: %w", err)
	}
	var rest []connector.WorkerKey
	for _, k := range roots {
		if chained[k] {
			delete(infos, k) // loadChains builds it again, with the whole chain
			rest = append(rest, k)
		}
	}
	return rest, nil
}

// loadChains walks the predecessor chains of roots (unique) in one statement,
// fills infos, and returns the workers on those chains that are not in seen yet,
// adding them to it. (A predecessor may be on the chains of several chunks.)
func (db *DB) loadChains(ctx context.Context, roots []connector.WorkerKey, infos map[connector.WorkerKey]*chainInfo, seen map[connector.WorkerKey]bool) ([]connector.WorkerKey, error) {
	seed, args := db.keyRows(roots)
	// Scalar subqueries, not joins: they keep PostgreSQL on index lookups even
	// when it misjudges the size of the chain. The root's superseded_by comes as
	// NULL for no row and '' for not superseded (worker ids are never empty).
	query := fmt.Sprintf(historyChain, seed, db.historyStep()) + `SELECT DISTINCT c.feed, c.root, c.worker_id,
			(SELECT COALESCE(r.superseded_by, '') FROM workers r WHERE r.feed = c.feed AND r.worker_id = c.root),
			(SELECT l.account_id FROM links l WHERE l.feed = c.feed AND l.worker_id = c.worker_id)
		FROM chain c`
	rows, err := db.x.QueryContext(ctx, db.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("store: histories: chains: %w", err)
	}
	defer rows.Close()
	var members []connector.WorkerKey
	for rows.Next() {
		var feed, root, member string
		var sup, acct *string
		if err := rows.Scan(&feed, &root, &member, &sup, &acct); err != nil {
			return nil, fmt.Errorf("store: histories: chains: %w", err)
		}
		if sup == nil {
			continue // the store has never seen this worker
		}
		k := connector.WorkerKey{Feed: feed, WorkerID: root}
		info := infos[k]
		if info == nil {
			info = &chainInfo{known: true, links: map[string]string{}}
			if *sup != "" {
				info.sup = sup
			}
			infos[k] = info
		}
		info.members = append(info.members, member)
		if acct != nil {
			info.links[member] = *acct
		}
		if m := (connector.WorkerKey{Feed: feed, WorkerID: member}); !seen[m] {
			seen[m] = true
			members = append(members, m)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: histories: chains: %w", err)
	}
	return members, nil
}

// loadFacts reads the facts of workers in one statement into facts, by worker.
func (db *DB) loadFacts(ctx context.Context, workers []connector.WorkerKey, facts map[connector.WorkerKey][]connector.Fact) error {
	keys, args := db.keyRows(workers)
	query := `WITH k(feed, worker_id) AS (` + keys + `) ` + factSelect + ` WHERE (feed, worker_id) IN (SELECT feed, worker_id FROM k)`
	if db.backend == Postgres {
		// One probe of facts_worker per worker (see historyStep), not a hash join.
		query = `SELECT f.* FROM ` + pgKeys + ` CROSS JOIN LATERAL (` + factSelect + ` WHERE feed = k.kf AND worker_id = k.kw OFFSET 0) f`
	}
	rows, err := db.x.QueryxContext(ctx, db.q(query), args...)
	if err != nil {
		return fmt.Errorf("store: histories: facts: %w", err)
	}
	fs, err := scanFacts(rows)
	if err != nil {
		return fmt.Errorf("store: histories: facts: %w", err)
	}
	for _, f := range fs {
		facts[f.Key()] = append(facts[f.Key()], f)
	}
	return nil
}

// completionError is the failure of one completion, named by its worker.
type completionError struct {
	w   connector.WorkerKey
	err error
}

func (e *completionError) Error() string {
	return "store: complete " + e.w.String() + ": " + e.err.Error()
}
func (e *completionError) Unwrap() error { return e.err }

// completeOne commits one completion in its own transaction; the error names the
// worker.
func (db *DB) completeOne(ctx context.Context, c connector.Completion) error {
	err := db.commitCompletions(ctx, []connector.Completion{c})
	var ce *completionError
	if err == nil || errors.As(err, &ce) {
		return err
	}
	return &completionError{w: c.Claim.Worker, err: err}
}

// CompleteAll commits cs as Complete would, one after the other, but in one
// transaction of a few statements: the workers are locked and read at once, the
// links of the batch read at once and changed in two statements, the audit rows
// and reviews inserted with one statement each, and the workers updated with one.
//
// If that transaction fails (one completion's link conflict, an unknown worker,
// or anything else), CompleteAll commits the completions one by one, each in its
// own transaction, so one bad completion holds back no other. It returns the
// failures joined, each naming its worker; nil if all committed.
func (db *DB) CompleteAll(ctx context.Context, cs []connector.Completion) error {
	switch len(cs) {
	case 0:
		return nil
	case 1:
		return db.completeOne(ctx, cs[0])
	}
	err := db.commitCompletions(ctx, cs)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("store: complete %d workers: %w", len(cs), err)
	}
	db.log.DebugContext(ctx, "store: batch completion failed; committing one by one", "completions", len(cs), "err", err)
	var errs []error
	for _, c := range cs {
		if err := db.completeOne(ctx, c); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// commitCompletions commits cs, in order, in one transaction. An error that one
// completion caused is a *completionError.
//
// On PostgreSQL the commit does not wait for its WAL to reach the disk
// (synchronous_commit off, for this transaction only): a completion lost in a
// database crash is a failed commit, which heals itself. The workers stay due,
// their leases expire, they are converged again, and every LMS call the lost
// commit recorded has a pending audit row committed durably before the call
// (BeginActions), which that converge resolves by what the LMS shows. So the
// durability of this commit buys nothing the intent rows do not, and waiting
// for it cost every batch an fsync (docs/audit.md).
func (db *DB) commitCompletions(ctx context.Context, cs []connector.Completion) error {
	return db.inTx(ctx, func(tx *sqlx.Tx) error {
		if db.backend == Postgres {
			if _, err := tx.ExecContext(ctx, `SET LOCAL synchronous_commit TO off`); err != nil {
				return err
			}
		}
		now := db.now()
		for chunk := range slices.Chunk(cs, db.chunkSize()) {
			if err := db.completeChunk(ctx, tx, chunk, now); err != nil {
				return err
			}
		}
		return nil
	})
}

// workerState is a worker row as completions of a batch leave it, worked out in
// order in Go from the row read (and locked) at the start.
type workerState struct {
	version    int64
	leaseOwner *string
	superseded *string // the worker that took this one over, if any
	touched    bool
	attempts   int
	due        time.Time // zero: NULL
	release    bool      // clear the lease
	woken      bool      // made due by a wake since the claim: stays due
	ctid       string    // PostgreSQL: where the row locked by lockWorkers is
}

// linkState is one link as the completions of a batch leave it.
type linkState struct {
	account string
	fresh   bool // (re)linked in this batch: written with linked_at = now
}

func (db *DB) completeChunk(ctx context.Context, tx *sqlx.Tx, cs []connector.Completion, now time.Time) error {
	workers, err := db.lockWorkers(ctx, tx, cs)
	if err != nil {
		return err
	}
	for _, c := range cs {
		if workers[c.Claim.Worker] == nil {
			return &completionError{w: c.Claim.Worker, err: connector.ErrNotFound}
		}
	}
	if err := db.applyLinks(ctx, tx, cs, now, workers); err != nil {
		return err
	}
	if err := db.insertAudit(ctx, tx, cs, now); err != nil {
		return err
	}
	if err := db.insertReviews(ctx, tx, cs, now); err != nil {
		return err
	}
	// The account mirror moves with the outcomes it saw, in the same
	// transaction: a crash between the two would leave a copy that says the
	// opposite of what hrsync just did (connector/mirror.go).
	if err := db.applyMirror(ctx, tx, mirrorOf(cs)); err != nil {
		return err
	}

	// The worker rows: the last completion of a worker sets attempts and due
	// time; any completion whose owner holds the lease at that point releases it.
	for _, c := range cs {
		s := workers[c.Claim.Worker]
		s.touched = true
		s.attempts = 0
		if c.Failed {
			s.attempts = c.Claim.Attempts + 1
		}
		s.due = c.NextDue
		if s.version > c.Claim.Version || s.woken {
			// A fact arrived, or a person approved a hold (or a reconcile asked
			// for a look) after the claim: what this converge decided is stale.
			s.due = now
		}
		if s.leaseOwner != nil && *s.leaseOwner == c.Owner {
			s.leaseOwner, s.release = nil, true
		}
	}
	if err := db.updateWorkers(ctx, tx, workers); err != nil {
		return err
	}
	return db.wakeSuccessors(ctx, tx, cs, workers, now)
}

// wakeSuccessors makes due now the last successor of every worker in cs that was
// taken over (superseded) by the time its outcome was committed. The converge of
// such a worker may have acted on the account from a view that no longer holds,
// and the successor must look at the account again; nothing else would wake it.
func (db *DB) wakeSuccessors(ctx context.Context, tx *sqlx.Tx, cs []connector.Completion, workers map[connector.WorkerKey]*workerState, now time.Time) error {
	done := map[connector.WorkerKey]bool{}
	for _, c := range cs {
		w := c.Claim.Worker
		if s := workers[w]; s == nil || s.superseded == nil || done[w] {
			continue
		}
		done[w] = true
		succ, err := db.lastSuccessor(ctx, tx, w)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, db.q(`UPDATE workers SET due_at = ?
			WHERE feed = ? AND worker_id = ? AND (due_at IS NULL OR due_at > ?)`),
			db.ts(now), succ.Feed, succ.WorkerID, db.ts(now)); err != nil {
			return fmt.Errorf("wake successor %s: %w", succ, err)
		}
	}
	return nil
}

// lockWorkers reads the rows of the batch's workers, on PostgreSQL locking them
// (in key order, as RecordFacts does) so that no fact bumps a version between this
// read and the update. A worker without a row is absent from the map.
func (db *DB) lockWorkers(ctx context.Context, tx *sqlx.Tx, cs []connector.Completion) (map[connector.WorkerKey]*workerState, error) {
	keys := make([]connector.WorkerKey, len(cs))
	for i, c := range cs {
		keys[i] = c.Claim.Worker
	}
	keys = uniqueKeys(keys)
	sel, args := db.keyRows(keys)
	query := `SELECT feed, worker_id, version, lease_owner, superseded_by, woken, '' FROM workers
		WHERE (feed, worker_id) IN (` + sel + `) ORDER BY feed, worker_id`
	if db.backend == Postgres {
		// One probe per key (see historyStep), locking in the order of keys. The
		// ctid is where the locked row is, for updateWorkers: no one else can
		// move it while the lock is held.
		query = `SELECT w.feed, w.worker_id, w.version, w.lease_owner, w.superseded_by, w.woken, w.ctid::text FROM ` + pgKeys + `
			CROSS JOIN LATERAL (SELECT ctid, feed, worker_id, version, lease_owner, superseded_by, woken FROM workers
				WHERE feed = k.kf AND worker_id = k.kw FOR UPDATE) w`
	}
	rows, err := tx.QueryContext(ctx, db.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("lock workers: %w", err)
	}
	defer rows.Close()
	out := make(map[connector.WorkerKey]*workerState, len(keys))
	for rows.Next() {
		var k connector.WorkerKey
		s := &workerState{}
		if err := rows.Scan(&k.Feed, &k.WorkerID, &s.version, &s.leaseOwner, &s.superseded, &s.woken, &s.ctid); err != nil {
			return nil, fmt.Errorf("lock workers: %w", err)
		}
		out[k] = s
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("lock workers: %w", err)
	}
	return out, nil
}

// applyLinks applies the link changes of cs (unlink, release, link) in order, as
// consecutive Completes would: it reads every link the batch can touch or
// conflict with, plays the changes through in Go (a link to an account that
// another worker holds at that point is a conflict of that completion), then
// deletes the links that went away or changed and upserts the new ones.
func (db *DB) applyLinks(ctx context.Context, tx *sqlx.Tx, cs []connector.Completion, now time.Time, workers map[connector.WorkerKey]*workerState) error {
	var keys []connector.WorkerKey
	var accounts []string
	for _, c := range cs {
		w := c.Claim.Worker
		if c.Unlink {
			keys = append(keys, w)
		}
		for _, id := range c.ReleasePredecessors {
			if id != w.WorkerID {
				keys = append(keys, connector.WorkerKey{Feed: w.Feed, WorkerID: id})
			}
		}
		if c.AccountID != "" {
			keys = append(keys, w)
			accounts = append(accounts, c.AccountID)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	keys = uniqueKeys(keys)
	slices.Sort(accounts)
	accounts = slices.Compact(accounts)

	// Read: the links of those workers, and the holders of those accounts. The
	// links of the workers are looked up one by one (a scalar subquery per key)
	// so that PostgreSQL does not hash the whole links table for them.
	sel, args := db.keyRows(keys)
	query := `WITH k(f, w) AS (` + sel + `) SELECT f, w, (SELECT account_id FROM links l WHERE l.feed = k.f AND l.worker_id = k.w) FROM k`
	if len(accounts) > 0 {
		in, aargs := db.inList("account_id", accounts)
		if db.backend == Postgres {
			// One probe of links' account_id index per account (see historyStep).
			query += ` UNION ALL SELECT l.feed, l.worker_id, l.account_id FROM unnest(?::text[]) AS a(id)
				CROSS JOIN LATERAL (SELECT feed, worker_id, account_id FROM links WHERE account_id = a.id OFFSET 0) l`
		} else {
			query += ` UNION ALL SELECT feed, worker_id, account_id FROM links WHERE ` + in
		}
		args = append(args, aargs...)
	}
	rows, err := tx.QueryContext(ctx, db.q(query), args...)
	if err != nil {
		return fmt.Errorf("read links: %w", err)
	}
	initial := map[connector.WorkerKey]string{}
	for rows.Next() {
		var k connector.WorkerKey
		var acct *string
		if err := rows.Scan(&k.Feed, &k.WorkerID, &acct); err != nil {
			rows.Close()
			return fmt.Errorf("read links: %w", err)
		}
		if acct != nil {
			initial[k] = *acct
		}
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("read links: %w", err)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read links: %w", err)
	}

	// Play the completions through.
	links := make(map[connector.WorkerKey]linkState, len(initial))
	holder := make(map[string]connector.WorkerKey, len(initial))
	for k, acct := range initial {
		links[k] = linkState{account: acct}
		holder[acct] = k
	}
	unlink := func(k connector.WorkerKey) {
		if l, ok := links[k]; ok {
			delete(holder, l.account)
			delete(links, k)
		}
	}
	for _, c := range cs {
		w := c.Claim.Worker
		if c.Unlink {
			unlink(w)
		}
		for _, id := range c.ReleasePredecessors {
			if id != w.WorkerID {
				unlink(connector.WorkerKey{Feed: w.Feed, WorkerID: id})
			}
		}
		if c.AccountID == "" {
			continue
		}
		if h, held := holder[c.AccountID]; held && h != w {
			if s := workers[w]; s != nil && s.superseded != nil {
				// Taken over while it was being converged: its successor holds the
				// account now (and is made due again below), so this link lapses.
				continue
			}
			return &completionError{w: w, err: fmt.Errorf("account %q is linked to %s: %w", c.AccountID, h, connector.ErrConflict)}
		}
		if l, ok := links[w]; ok && l.account == c.AccountID {
			continue // already linked there; linked_at stays
		}
		unlink(w)
		links[w] = linkState{account: c.AccountID, fresh: true}
		holder[c.AccountID] = w
	}

	// Write: delete what went away or was relinked, then insert what is new.
	var gone []connector.WorkerKey
	for k := range initial {
		if l, ok := links[k]; !ok || l.fresh {
			gone = append(gone, k)
		}
	}
	if len(gone) > 0 {
		slices.SortFunc(gone, compareKeys)
		sel, args := db.keyRows(gone)
		if _, err := tx.ExecContext(ctx, db.q(`DELETE FROM links WHERE (feed, worker_id) IN (`+sel+`)`), args...); err != nil {
			return fmt.Errorf("delete links: %w", err)
		}
	}
	var fresh []connector.WorkerKey
	for k, l := range links {
		if l.fresh {
			fresh = append(fresh, k)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	slices.SortFunc(fresh, compareKeys)
	const upsert = ` ON CONFLICT (feed, worker_id) DO UPDATE SET account_id = excluded.account_id, linked_at = excluded.linked_at
		WHERE links.account_id <> excluded.account_id`
	if db.backend == Postgres {
		feeds, ids, accts := make(pq.StringArray, len(fresh)), make(pq.StringArray, len(fresh)), make(pq.StringArray, len(fresh))
		for i, k := range fresh {
			feeds[i], ids[i], accts[i] = k.Feed, k.WorkerID, links[k].account
		}
		query = `INSERT INTO links (feed, worker_id, account_id, linked_at)
			SELECT f, w, a, $4::timestamptz FROM unnest($1::text[], $2::text[], $3::text[]) AS u(f, w, a)` + upsert
		args = []any{feeds, ids, accts, pgTime(now)}
	} else {
		args = make([]any, 0, 4*len(fresh))
		for _, k := range fresh {
			args = append(args, k.Feed, k.WorkerID, links[k].account, db.ts(now))
		}
		query = db.q(`INSERT INTO links (feed, worker_id, account_id, linked_at) VALUES ` + placeholders(len(fresh), 4) + upsert)
	}
	if _, err := tx.ExecContext(ctx, query, args...); err != nil {
		return fmt.Errorf("link: %w", err)
	}
	return nil
}

// auditColumns are the columns of an audit row, in insert order.
const auditColumns = `at, feed, worker_id, account_id, action, outcome, detail, fact_ids, plan`

// auditAllColumns are auditColumns and the structured fields of an LMS call
// (migration 0013): the hold that allowed it, its cause, the account's version before.
// and (migration 0014) the account's active state after it.
const auditAllColumns = auditColumns + `, hold_id, cause, before_version, active_after`

// auditRow is one audit entry as text columns, in auditAllColumns order after at.
type auditRow struct {
	id   int64
	at   time.Time
	cols [12]string // feed .. active_after; hold_id as decimal text
}

// activeText and activeOf store AuditEntry.ActiveAfter as 'true', 'false' or ”.
func activeText(b *bool) string {
	if b == nil {
		return ""
	}
	return strconv.FormatBool(*b)
}

func activeOf(s string) *bool {
	if s == "" {
		return nil
	}
	b := s == "true"
	return &b
}

func auditRowOf(a connector.AuditEntry) (auditRow, error) {
	ids, err := jsonList(a.FactIDs)
	if err != nil {
		return auditRow{}, err
	}
	return auditRow{id: a.ID, at: a.At, cols: [12]string{a.Feed, a.WorkerID, a.AccountID, string(a.Action), string(a.Outcome), a.Detail, ids, a.Plan,
		strconv.FormatInt(a.HoldID, 10), a.Cause, a.Before, activeText(a.ActiveAfter)}}, nil
}

// insertAudit writes the audit entries of cs, in order: an entry with an ID gives
// that (pending) row its outcome, the others are added; one statement each (per
// batchRows rows on SQLite). Empty Feed/WorkerID default to the claim's worker, a
// zero At to now.
func (db *DB) insertAudit(ctx context.Context, tx *sqlx.Tx, cs []connector.Completion, now time.Time) error {
	var rows, updates []auditRow
	for _, c := range cs {
		w := c.Claim.Worker
		for _, a := range c.Audit {
			a.Feed = cmp.Or(a.Feed, w.Feed)
			a.WorkerID = cmp.Or(a.WorkerID, w.WorkerID)
			if a.At.IsZero() {
				a.At = now
			}
			r, err := auditRowOf(a)
			if err != nil {
				return &completionError{w: w, err: fmt.Errorf("audit: %w", err)}
			}
			if a.ID != 0 {
				updates = append(updates, r)
			} else {
				rows = append(rows, r)
			}
		}
	}
	if _, err := db.addAudit(ctx, tx, rows, false); err != nil {
		return err
	}
	return db.updateAudit(ctx, tx, updates)
}

// addAudit inserts rows with one statement (per batchRows rows on SQLite) and,
// if returning is set, returns their ids in the order of rows (each row's
// (feed, worker_id) must then be unique among rows).
func (db *DB) addAudit(ctx context.Context, tx sqlx.ExtContext, rows []auditRow, returning bool) ([]int64, error) {
	if len(rows) == 0 {
		return nil, nil
	}
	ret := ""
	if returning {
		ret = ` RETURNING id, feed, worker_id`
	}
	var got map[[2]string]int64
	collect := func(query string, args ...any) error {
		if !returning {
			_, err := tx.ExecContext(ctx, query, args...)
			return err
		}
		rs, err := tx.QueryContext(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rs.Close()
		if got == nil {
			got = make(map[[2]string]int64, len(rows))
		}
		for rs.Next() {
			var id int64
			var k [2]string
			if err := rs.Scan(&id, &k[0], &k[1]); err != nil {
				return err
			}
			got[k] = id
		}
		return rs.Err()
	}
	if db.backend == Postgres {
		var ats pq.StringArray
		var cols [12]pq.StringArray
		for _, r := range rows {
			ats = append(ats, pgTime(r.at))
			for j := range cols {
				cols[j] = append(cols[j], r.cols[j])
			}
		}
		args := []any{ats}
		for j := range cols {
			args = append(args, cols[j])
		}
		err := collect(`INSERT INTO audit (`+auditAllColumns+`) SELECT a, f, w, acct, act, o, d, fi, p, h::bigint, c, b, aa FROM unnest(
			$1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
			$10::text[], $11::text[], $12::text[], $13::text[]) AS u(a, f, w, acct, act, o, d, fi, p, h, c, b, aa)`+ret, args...)
		if err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
	} else {
		for start := 0; start < len(rows); start += batchRows {
			end := min(start+batchRows, len(rows))
			args := make([]any, 0, 13*(end-start))
			for _, r := range rows[start:end] {
				args = append(args, db.ts(r.at))
				for _, c := range r.cols {
					args = append(args, c)
				}
			}
			if err := collect(db.q(`INSERT INTO audit (`+auditAllColumns+`) VALUES `+placeholders(end-start, 13)+ret), args...); err != nil {
				return nil, fmt.Errorf("audit: %w", err)
			}
		}
	}
	if !returning {
		return nil, nil
	}
	ids := make([]int64, len(rows))
	for i, r := range rows {
		id, ok := got[[2]string{r.cols[0], r.cols[1]}]
		if !ok {
			return nil, fmt.Errorf("audit: no id returned for %s:%s", r.cols[0], r.cols[1])
		}
		ids[i] = id
	}
	return ids, nil
}

// updateAudit gives the audit rows of updates (by id) their outcome: time,
// account, outcome, detail, facts and plan, with one statement (per batchRows
// rows on SQLite). The hold, cause and version before, written with the intent,
// stay. A row that is gone (an erasure pruned it) is added again instead.
func (db *DB) updateAudit(ctx context.Context, tx *sqlx.Tx, updates []auditRow) error {
	if len(updates) == 0 {
		return nil
	}
	const set = ` UPDATE audit SET at = u.a, account_id = u.acct, outcome = u.o, detail = u.d, fact_ids = u.fi, plan = u.p,
		active_after = u.aa FROM u WHERE audit.id = u.id RETURNING audit.id`
	done := map[int64]bool{}
	exec := func(query string, args ...any) error {
		rs, err := tx.QueryContext(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rs.Close()
		for rs.Next() {
			var id int64
			if err := rs.Scan(&id); err != nil {
				return err
			}
			done[id] = true
		}
		return rs.Err()
	}
	if db.backend == Postgres {
		var ids pq.Int64Array
		var ats, accts, outs, details, facts, plans, actives pq.StringArray
		for _, r := range updates {
			ids, ats = append(ids, r.id), append(ats, pgTime(r.at))
			accts, outs, details, facts, plans = append(accts, r.cols[2]), append(outs, r.cols[4]), append(details, r.cols[5]), append(facts, r.cols[6]), append(plans, r.cols[7])
			actives = append(actives, r.cols[11])
		}
		err := exec(`WITH u(id, a, acct, o, d, fi, p, aa) AS (SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[]))`+set,
			ids, ats, accts, outs, details, facts, plans, actives)
		if err != nil {
			return fmt.Errorf("audit outcomes: %w", err)
		}
	} else {
		for start := 0; start < len(updates); start += batchRows {
			end := min(start+batchRows, len(updates))
			args := make([]any, 0, 8*(end-start))
			for _, r := range updates[start:end] {
				args = append(args, r.id, db.ts(r.at), r.cols[2], r.cols[4], r.cols[5], r.cols[6], r.cols[7], r.cols[11])
			}
			if err := exec(db.q(`WITH u(id, a, acct, o, d, fi, p, aa) AS (VALUES `+placeholders(end-start, 8)+`)`+set), args...); err != nil {
				return fmt.Errorf("audit outcomes: %w", err)
			}
		}
	}
	var missing []auditRow
	for _, r := range updates {
		if !done[r.id] {
			missing = append(missing, r)
		}
	}
	_, err := db.addAudit(ctx, tx, missing, false)
	return err
}

// BeginActions stores es as pending audit rows, committed in one statement
// before the LMS calls they announce, and returns their ids in order
// (connector.AuditIntents). Empty outcomes become pending, a zero At the store clock.
func (db *DB) BeginActions(ctx context.Context, es []connector.AuditEntry) ([]int64, error) {
	if len(es) == 0 {
		return nil, nil
	}
	now := db.now()
	rows := make([]auditRow, len(es))
	seen := make(map[connector.WorkerKey]bool, len(es))
	for i, e := range es {
		k := connector.WorkerKey{Feed: e.Feed, WorkerID: e.WorkerID}
		if e.Feed == "" || e.WorkerID == "" || seen[k] {
			return nil, fmt.Errorf("store: begin actions: entry %d: feed and worker_id are required, and unique in a batch (%s)", i, k)
		}
		seen[k] = true
		e.Outcome = cmp.Or(e.Outcome, connector.OutcomePending)
		if e.At.IsZero() {
			e.At = now
		}
		r, err := auditRowOf(e)
		if err != nil {
			return nil, fmt.Errorf("store: begin actions: %w", err)
		}
		rows[i] = r
	}
	ids, err := db.addAudit(ctx, db.x, rows, true)
	if err != nil {
		return nil, fmt.Errorf("store: begin actions: %w", err)
	}
	return ids, nil
}

// SettleActions gives the audit rows es (pending rows, by ID) their outcome in
// one transaction (connector.AuditIntents): a converge that resolved what an
// earlier one left pending commits that before it makes calls of its own.
func (db *DB) SettleActions(ctx context.Context, es []connector.AuditEntry) error {
	rows := make([]auditRow, 0, len(es))
	for _, e := range es {
		if e.ID == 0 || e.Feed == "" || e.WorkerID == "" {
			return fmt.Errorf("store: settle actions: row %d has no id, feed or worker", e.ID)
		}
		if e.At.IsZero() {
			e.At = db.now()
		}
		r, err := auditRowOf(e)
		if err != nil {
			return fmt.Errorf("store: settle actions: %w", err)
		}
		rows = append(rows, r)
	}
	if len(rows) == 0 {
		return nil
	}
	// A settled call changed (or may have changed) its account after the
	// account mirror's copy was taken: the copy goes with the settlement, in one
	// transaction, so that no later converge plans from it (connector/mirror.go).
	var forget []connector.MirrorUpdate
	for _, e := range es {
		if e.AccountID != "" {
			forget = append(forget, connector.MirrorUpdate{Account: connector.Account{ID: e.AccountID}, Gone: true})
		}
	}
	return db.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := db.updateAudit(ctx, tx, rows); err != nil {
			return err
		}
		return db.applyMirror(ctx, tx, forget)
	})
}

// PendingActions returns the pending audit rows of ws written before before,
// oldest first, by worker (connector.AuditIntents), in one statement per chunk.
func (db *DB) PendingActions(ctx context.Context, ws []connector.WorkerKey, before time.Time) (map[connector.WorkerKey][]connector.AuditEntry, error) {
	out := map[connector.WorkerKey][]connector.AuditEntry{}
	if len(ws) == 0 {
		return out, nil
	}
	for chunk := range slices.Chunk(uniqueKeys(ws), db.chunkSize()) {
		sel, args := db.keyRows(chunk)
		rows, err := db.x.QueryContext(ctx, db.q(`SELECT id, at, feed, worker_id, account_id, action, outcome, detail, fact_ids, plan, hold_id, cause, before_version
			FROM audit WHERE outcome = 'pending' AND at < ? AND (feed, worker_id) IN (`+sel+`) ORDER BY at, id`),
			append([]any{db.ts(before)}, args...)...)
		if err != nil {
			return nil, fmt.Errorf("store: pending actions: %w", err)
		}
		for rows.Next() {
			var a connector.AuditEntry
			var at instant
			var ids string
			if err := rows.Scan(&a.ID, &at, &a.Feed, &a.WorkerID, &a.AccountID, &a.Action, &a.Outcome, &a.Detail, &ids, &a.Plan, &a.HoldID, &a.Cause, &a.Before); err != nil {
				rows.Close()
				return nil, fmt.Errorf("store: pending actions: %w", err)
			}
			a.At = at.T
			if a.FactIDs, err = parseList(ids); err != nil {
				rows.Close()
				return nil, fmt.Errorf("store: pending action %d: fact ids: %w", a.ID, err)
			}
			k := connector.WorkerKey{Feed: a.Feed, WorkerID: a.WorkerID}
			out[k] = append(out[k], a)
		}
		if err := rows.Close(); err != nil {
			return nil, fmt.Errorf("store: pending actions: %w", err)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("store: pending actions: %w", err)
		}
	}
	return out, nil
}

// insertReviews inserts the reviews of cs, in order, with one statement. An open
// review with the same feed, worker and reason, stored or earlier in cs, is not
// added again.
func (db *DB) insertReviews(ctx context.Context, tx *sqlx.Tx, cs []connector.Completion, now time.Time) error {
	type review struct {
		at                               time.Time
		feed, worker, reason, candidates string
	}
	var rs []review
	seen := map[[3]string]bool{}
	for _, c := range cs {
		if c.Review == nil {
			continue
		}
		w, r := c.Claim.Worker, *c.Review
		r.Feed = cmp.Or(r.Feed, w.Feed)
		r.WorkerID = cmp.Or(r.WorkerID, w.WorkerID)
		if r.At.IsZero() {
			r.At = now
		}
		cands, err := jsonList(r.Candidates)
		if err != nil {
			return &completionError{w: w, err: fmt.Errorf("review: %w", err)}
		}
		// Repeats within the batch are dropped here: the first one wins, as it
		// would with one Complete after the other.
		if k := [3]string{r.Feed, r.WorkerID, r.Reason}; !seen[k] {
			seen[k] = true
			rs = append(rs, review{r.At, r.Feed, r.WorkerID, r.Reason, cands})
		}
	}
	if len(rs) == 0 {
		return nil
	}
	const onConflict = ` ON CONFLICT (feed, worker_id, reason) WHERE resolved_at IS NULL DO NOTHING`
	var query string
	var args []any
	if db.backend == Postgres {
		var ats, feeds, workers, reasons, cands pq.StringArray
		for _, r := range rs {
			ats, feeds, workers, reasons, cands = append(ats, pgTime(r.at)), append(feeds, r.feed), append(workers, r.worker), append(reasons, r.reason), append(cands, r.candidates)
		}
		query = `INSERT INTO reviews (at, feed, worker_id, reason, candidates)
			SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[])` + onConflict
		args = []any{ats, feeds, workers, reasons, cands}
	} else {
		for _, r := range rs {
			args = append(args, db.ts(r.at), r.feed, r.worker, r.reason, r.candidates)
		}
		query = db.q(`INSERT INTO reviews (at, feed, worker_id, reason, candidates) VALUES ` + placeholders(len(rs), 5) + onConflict)
	}
	if _, err := tx.ExecContext(ctx, query, args...); err != nil {
		return fmt.Errorf("review: %w", err)
	}
	return nil
}

// updateWorkers writes the touched worker states with one statement.
func (db *DB) updateWorkers(ctx context.Context, tx *sqlx.Tx, workers map[connector.WorkerKey]*workerState) error {
	keys := slices.SortedFunc(maps.Keys(workers), compareKeys)
	keys = slices.DeleteFunc(keys, func(k connector.WorkerKey) bool { return !workers[k].touched })
	if len(keys) == 0 {
		return nil
	}
	const set = ` UPDATE workers SET attempts = u.a, due_at = u.d,
			lease_until = CASE WHEN u.r THEN NULL ELSE lease_until END,
			lease_owner = CASE WHEN u.r THEN NULL ELSE lease_owner END
		FROM u WHERE workers.feed = u.f AND workers.worker_id = u.w`
	var query string
	var args []any
	if db.backend == Postgres {
		// The rows are found by the ctid lockWorkers read them at, and checked
		// against their keys. The ctids go in as a subquery's array, whose length
		// the planner does not guess: it takes a TID scan, where with the array
		// itself it scans the whole table until that is some 1,000 pages long.
		var ctids, feeds, ids, dues pq.StringArray
		var attempts pq.Int64Array
		var release pq.BoolArray
		for _, k := range keys {
			s := workers[k]
			due := ""
			if !s.due.IsZero() {
				due = pgTime(s.due)
			}
			ctids, feeds, ids, attempts, dues, release = append(ctids, s.ctid), append(feeds, k.Feed), append(ids, k.WorkerID), append(attempts, int64(s.attempts)), append(dues, due), append(release, s.release)
		}
		query = `WITH u(t, f, w, a, d, r) AS (
			SELECT t, f, w, a, NULLIF(d, '')::timestamptz, r FROM unnest($1::tid[], $2::text[], $3::text[], $4::int[], $5::text[], $6::bool[]) AS x(t, f, w, a, d, r)
		)` + set + ` AND workers.ctid = u.t AND workers.ctid = ANY(ARRAY(SELECT t FROM u))`
		args = []any{ctids, feeds, ids, attempts, dues, release}
	} else {
		for _, k := range keys {
			s := workers[k]
			args = append(args, k.Feed, k.WorkerID, s.attempts, db.tsOrNull(s.due), s.release)
		}
		query = db.q(`WITH u(f, w, a, d, r) AS (VALUES ` + placeholders(len(keys), 5) + `)` + set)
	}
	res, err := tx.ExecContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("update workers: %w", err)
	}
	if n, err := res.RowsAffected(); err == nil && n != int64(len(keys)) {
		return fmt.Errorf("update workers: %d of %d rows updated", n, len(keys))
	}
	return nil
}
