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
)

// The safeguard's state: holds and their workers, the removals of the sliding
// window, and each window's active-account base. See connector/safeguard.go.

var _ connector.HoldStore = (*DB)(nil)

// activeQuery counts the accounts linked to workers (of one feed, or of all when
// the argument is empty) whose latest successful state action in the audit trail is
// a create or a reactivate, or that have none: the accounts hrsync last saw active.
//
// A worker with a removal decided within the window (other than the one being
// decided) is left out: its account may still look active until its deactivation
// is audited, and the window's removals are added to the count separately.
const activeQuery = `SELECT COUNT(*) FROM links l
	WHERE (? = '' OR l.feed = ?)
		AND NOT EXISTS (SELECT 1 FROM removals r WHERE r.feed = l.feed AND r.worker_id = l.worker_id AND r.at > ?
			AND NOT (r.feed = ? AND r.worker_id = ?))
		AND COALESCE((SELECT a.action FROM audit a
		WHERE a.feed = l.feed AND a.worker_id = l.worker_id AND a.outcome = 'ok'
			AND a.action IN ('create', 'reactivate', 'deactivate', 'delete', 'anonymise')
		ORDER BY a.at DESC, a.id DESC LIMIT 1), 'create') IN ('create', 'reactivate')`

// lockSafeguard serialises the safeguard's transactions on PostgreSQL (SQLite
// transactions are serial already: BEGIN IMMEDIATE).
func (db *DB) lockSafeguard(ctx context.Context, tx *sqlx.Tx) error {
	if db.backend != Postgres {
		return nil
	}
	_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext('hrsync.safeguard.' || current_schema()))`)
	return err
}

// ReserveRemoval decides whether the worker's account may be removed now, in one
// transaction serialised with every other safeguard transaction:
//  1. a removal already allowed for the worker at this version is allowed again
//     (a retry) and not counted twice;
//  2. the worker's latest decided hold, if it covers this version: approved
//     allows (binding an upload's version-less entry to this version), rejected
//     refuses with Status rejected, passed (a burst judged under the thresholds)
//     allows and counts in the window;
//     a worker a person let run in a sample batch of an open hold (AllowSample)
//     is allowed at the version the hold has (or, an upload's, binds to this
//     one) and does not count (2b);
//     a worker in an open live hold stays in it (Status open);
//  3. the feed's settling burst takes the worker in; before the burst's judge_at
//     the answer is Wait, from then on the burst is judged whole (judgeBurst);
//  4. with a settle period, the worker starts a burst (Wait);
//  5. without, the worker is a burst of one, judged at once.
func (db *DB) ReserveRemoval(ctx context.Context, r connector.RemovalRequest) (connector.RemovalVerdict, error) {
	if r.Decide == nil || r.Window <= 0 || r.Now.IsZero() {
		return connector.RemovalVerdict{}, errors.New("store: reserve removal: Decide, Window and Now are required")
	}
	var v connector.RemovalVerdict
	err := db.inTx(ctx, func(tx *sqlx.Tx) error {
		var err error
		v, err = db.reserveRemoval(ctx, tx, r)
		return err
	})
	if err != nil {
		return v, fmt.Errorf("store: reserve removal of %s: %w", r.Worker, err)
	}
	return v, nil
}

func (db *DB) reserveRemoval(ctx context.Context, tx *sqlx.Tx, r connector.RemovalRequest) (connector.RemovalVerdict, error) {
	if err := db.lockSafeguard(ctx, tx); err != nil {
		return connector.RemovalVerdict{}, err
	}
	w := r.Worker
	// 1. The same removal again.
	var prevVersion int64
	var prevHold *int64
	err := tx.QueryRowContext(ctx, db.q(`SELECT version, hold_id FROM removals WHERE feed = ? AND worker_id = ?`), w.Feed, w.WorkerID).Scan(&prevVersion, &prevHold)
	switch {
	case err == nil && prevVersion == r.Version:
		v := connector.RemovalVerdict{Allow: true}
		if prevHold != nil {
			v.HoldID, v.Status = *prevHold, connector.HoldApproved
		}
		return v, nil
	case err != nil && !errors.Is(err, sql.ErrNoRows):
		return connector.RemovalVerdict{}, err
	}

	// 2. A decision about this worker.
	var hid, hver int64
	var status, decision string
	var sampled bool
	err = tx.QueryRowContext(ctx, db.q(`SELECT h.id, h.status, h.decision, hw.version, hw.sampled_at IS NOT NULL FROM hold_workers hw
		JOIN holds h ON h.id = hw.hold_id
		WHERE hw.feed = ? AND hw.worker_id = ? AND h.status NOT IN ('open', 'settling')
		ORDER BY h.decided_at DESC, h.id DESC LIMIT 1`), w.Feed, w.WorkerID).Scan(&hid, &status, &decision, &hver, &sampled)
	switch {
	case err == nil:
		covers := hver == 0 || r.Version <= hver
		switch {
		case connector.HoldStatus(status) == connector.HoldApproved && covers:
			if hver == 0 {
				if err := db.bindHoldVersion(ctx, tx, hid, r); err != nil {
					return connector.RemovalVerdict{}, err
				}
			}
			if err := db.recordRemoval(ctx, tx, r, &hid); err != nil {
				return connector.RemovalVerdict{}, err
			}
			return connector.RemovalVerdict{Allow: true, HoldID: hid, Status: connector.HoldApproved, Reason: decision}, nil
		case connector.HoldStatus(status) == connector.HoldPassed && covers:
			// A burst, or an upload, judged under the thresholds: it runs, and
			// counts; an upload's version-less entry binds to this version.
			if hver == 0 {
				if err := db.bindHoldVersion(ctx, tx, hid, r); err != nil {
					return connector.RemovalVerdict{}, err
				}
			}
			if err := db.recordRemoval(ctx, tx, r, nil); err != nil {
				return connector.RemovalVerdict{}, err
			}
			return connector.RemovalVerdict{Allow: true}, nil
		case connector.HoldStatus(status) == connector.HoldRejected && hver > 0 && r.Version <= hver:
			return connector.RemovalVerdict{HoldID: hid, Status: connector.HoldRejected, Reason: decision}, nil
		case connector.HoldStatus(status) == connector.HoldRejected && hver == 0 && sampled:
			// An upload's sample, published, then the upload rejected before its
			// removal ran: the rejection binds to this version, as a live hold's does.
			if err := db.bindHoldVersion(ctx, tx, hid, r); err != nil {
				return connector.RemovalVerdict{}, err
			}
			return connector.RemovalVerdict{HoldID: hid, Status: connector.HoldRejected, Reason: decision}, nil
		}
	case !errors.Is(err, sql.ErrNoRows):
		return connector.RemovalVerdict{}, err
	}

	// 2b. A removal a person let run in a sample batch of an open hold (AllowSample):
	// allowed, bound to this version if the hold had none (an upload's), and kept
	// out of the window like any removal a person approved. A newer fact than the
	// one sampled cleared the mark (insertHoldWorkers): the sample did not cover it.
	var sver int64
	err = tx.QueryRowContext(ctx, db.q(`SELECT h.id, hw.version FROM hold_workers hw JOIN holds h ON h.id = hw.hold_id
		WHERE hw.feed = ? AND hw.worker_id = ? AND h.status = 'open' AND hw.sampled_at IS NOT NULL
		ORDER BY h.id DESC LIMIT 1`), w.Feed, w.WorkerID).Scan(&hid, &sver)
	switch {
	case err == nil && (sver == 0 || r.Version <= sver):
		if sver == 0 {
			if err := db.bindHoldVersion(ctx, tx, hid, r); err != nil {
				return connector.RemovalVerdict{}, err
			}
		}
		if err := db.recordRemoval(ctx, tx, r, &hid); err != nil {
			return connector.RemovalVerdict{}, err
		}
		return connector.RemovalVerdict{Allow: true, HoldID: hid, Status: connector.HoldApproved,
			Reason: fmt.Sprintf("in a sample batch of hold %d", hid)}, nil
	case err != nil && !errors.Is(err, sql.ErrNoRows):
		return connector.RemovalVerdict{}, err
	}

	// A worker held in an open hold stays there, brought up to this version, until
	// a person decides.
	var held int64
	var heldReason string
	err = tx.QueryRowContext(ctx, db.q(`SELECT h.id, h.reason FROM hold_workers hw JOIN holds h ON h.id = hw.hold_id
		WHERE hw.feed = ? AND hw.worker_id = ? AND h.status = 'open' AND h.kind = 'live'`), w.Feed, w.WorkerID).Scan(&held, &heldReason)
	switch {
	case err == nil:
		if err := db.holdWorker(ctx, tx, held, r); err != nil {
			return connector.RemovalVerdict{}, err
		}
		return connector.RemovalVerdict{HoldID: held, Status: connector.HoldOpen, Reason: heldReason}, nil
	case !errors.Is(err, sql.ErrNoRows):
		return connector.RemovalVerdict{}, err
	}

	// 3. The feed's settling burst: join it, and judge it once it has settled.
	var bid int64
	var judgeAt instant
	err = tx.QueryRowContext(ctx, db.q(`SELECT id, judge_at FROM holds WHERE feed = ? AND status = 'settling'`), w.Feed).Scan(&bid, &judgeAt)
	switch {
	case err == nil:
		if err := db.holdWorker(ctx, tx, bid, r); err != nil {
			return connector.RemovalVerdict{}, err
		}
		if r.Now.Before(judgeAt.T) {
			return connector.RemovalVerdict{HoldID: bid, Status: connector.HoldSettling, Wait: judgeAt.T}, nil
		}
		return db.judgeBurst(ctx, tx, bid, r)
	case !errors.Is(err, sql.ErrNoRows):
		return connector.RemovalVerdict{}, err
	}

	// 4. Start a burst.
	if r.Settle > 0 {
		until := r.Now.Add(r.Settle)
		if err := tx.QueryRowContext(ctx, db.q(`INSERT INTO holds (feed, kind, status, reason, active, created_at, judge_at)
			VALUES (?, 'live', 'settling', '', 0, ?, ?) RETURNING id`), w.Feed, db.ts(r.Now), db.ts(until)).Scan(&bid); err != nil {
			return connector.RemovalVerdict{}, fmt.Errorf("start burst: %w", err)
		}
		if err := db.holdWorker(ctx, tx, bid, r); err != nil {
			return connector.RemovalVerdict{}, err
		}
		return connector.RemovalVerdict{HoldID: bid, Status: connector.HoldSettling, Wait: until}, nil
	}

	// 5. A burst of one: count the window.
	since := r.Now.Add(-r.Window)
	c := connector.WindowCounts{Feed: w.Feed}
	count := func(fresh bool) error {
		if c.FeedRemovals, c.FeedActive, err = db.window(ctx, tx, w.Feed, w, r.Now, since, fresh); err != nil {
			return err
		}
		c.AllRemovals, c.AllActive, err = db.window(ctx, tx, "", w, r.Now, since, fresh)
		return err
	}
	if err := count(false); err != nil {
		return connector.RemovalVerdict{}, err
	}
	hold, why := r.Decide(c)
	if hold {
		// The base was measured when the window started; during a bulk import the
		// feed has grown since. Before holding, measure it again: only a threshold
		// crossed against the accounts active now holds.
		if err := count(true); err != nil {
			return connector.RemovalVerdict{}, err
		}
		hold, why = r.Decide(c)
	}
	if hold {
		id, reason, err := db.openLiveHold(ctx, tx, w.Feed, why, c.FeedActive, r.Now)
		if err != nil {
			return connector.RemovalVerdict{}, err
		}
		if err := db.holdWorker(ctx, tx, id, r); err != nil {
			return connector.RemovalVerdict{}, err
		}
		return connector.RemovalVerdict{HoldID: id, Status: connector.HoldOpen, Reason: reason}, nil
	}
	return connector.RemovalVerdict{Allow: true}, db.recordRemoval(ctx, tx, r, nil)
}

// openLiveHold returns the feed's open live hold, or opens one with why: a burst
// held while another waits for a person joins it, so that one decision covers
// the feed. It returns the hold's id and reason.
func (db *DB) openLiveHold(ctx context.Context, tx *sqlx.Tx, feed, why string, active int, now time.Time) (int64, string, error) {
	var id int64
	var reason string
	err := tx.QueryRowContext(ctx, db.q(`SELECT id, reason FROM holds WHERE feed = ? AND kind = 'live' AND status = 'open'`), feed).Scan(&id, &reason)
	if err == nil {
		return id, reason, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, "", err
	}
	if err := tx.QueryRowContext(ctx, db.q(`INSERT INTO holds (feed, kind, status, reason, active, created_at)
		VALUES (?, 'live', 'open', ?, ?, ?) RETURNING id`), feed, why, active, db.ts(now)).Scan(&id); err != nil {
		return 0, "", fmt.Errorf("open hold: %w", err)
	}
	return id, why, nil
}

// judgeBurst judges the settled burst bid whole, for r (one of its workers): the
// burst's workers plus the removals that ran within the window, each person once,
// against the active accounts measured now. Over the thresholds, the burst is
// held (it becomes the feed's open hold, or joins it); under them it passes, and
// r's removal is recorded and allowed; the burst's other workers are allowed when
// they ask (rule 2).
func (db *DB) judgeBurst(ctx context.Context, tx *sqlx.Tx, bid int64, r connector.RemovalRequest) (connector.RemovalVerdict, error) {
	since := r.Now.Add(-r.Window)
	c := connector.WindowCounts{Feed: r.Worker.Feed}
	for _, scope := range []string{r.Worker.Feed, ""} {
		removals, active, err := db.burstCounts(ctx, tx, scope, bid, since)
		if err != nil {
			return connector.RemovalVerdict{}, err
		}
		if scope == "" {
			c.AllRemovals, c.AllActive = removals, active
		} else {
			c.FeedRemovals, c.FeedActive = removals, active
		}
	}
	hold, why := r.Decide(c)
	if !hold {
		decision := fmt.Sprintf("under the thresholds: %d removals of %d active accounts within %s, this burst included", c.FeedRemovals, c.FeedActive, r.Window)
		if _, err := tx.ExecContext(ctx, db.q(`UPDATE holds SET status = 'passed', active = ?, decided_at = ?, decided_by = 'safeguard', decision = ?
			WHERE id = ?`), c.FeedActive, db.ts(r.Now), decision, bid); err != nil {
			return connector.RemovalVerdict{}, fmt.Errorf("pass burst: %w", err)
		}
		return connector.RemovalVerdict{Allow: true}, db.recordRemoval(ctx, tx, r, nil)
	}
	var open int64
	err := tx.QueryRowContext(ctx, db.q(`SELECT id FROM holds WHERE feed = ? AND kind = 'live' AND status = 'open'`), r.Worker.Feed).Scan(&open)
	switch {
	case err == nil:
		// Join the hold that already waits for a person, whole.
		if _, err := tx.ExecContext(ctx, db.q(`INSERT INTO hold_workers (hold_id, feed, worker_id, account_id, action, version, name, email, added_at)
			SELECT ?, feed, worker_id, account_id, action, version, name, email, added_at FROM hold_workers WHERE hold_id = ?
			ON CONFLICT (hold_id, feed, worker_id) DO UPDATE SET account_id = excluded.account_id, action = excluded.action,
				version = excluded.version, name = excluded.name, email = excluded.email,
				sampled_at = `+keepSample+``), open, bid); err != nil {
			return connector.RemovalVerdict{}, fmt.Errorf("join hold %d: %w", open, err)
		}
		if _, err := tx.ExecContext(ctx, db.q(`DELETE FROM hold_workers WHERE hold_id = ?`), bid); err != nil {
			return connector.RemovalVerdict{}, err
		}
		if _, err := tx.ExecContext(ctx, db.q(`DELETE FROM holds WHERE id = ?`), bid); err != nil {
			return connector.RemovalVerdict{}, err
		}
		var reason string
		if err := tx.GetContext(ctx, &reason, db.q(`SELECT reason FROM holds WHERE id = ?`), open); err != nil {
			return connector.RemovalVerdict{}, err
		}
		return connector.RemovalVerdict{HoldID: open, Status: connector.HoldOpen, Reason: reason}, nil
	case !errors.Is(err, sql.ErrNoRows):
		return connector.RemovalVerdict{}, err
	}
	if _, err := tx.ExecContext(ctx, db.q(`UPDATE holds SET status = 'open', reason = ?, active = ? WHERE id = ?`), why, c.FeedActive, bid); err != nil {
		return connector.RemovalVerdict{}, fmt.Errorf("hold burst: %w", err)
	}
	return connector.RemovalVerdict{HoldID: bid, Status: connector.HoldOpen, Reason: why}, nil
}

// burstCounts returns, for scope (a feed, or empty for all), the removals a burst
// would make the window hold (those that ran since since, not approved by a hold,
// and the burst's workers, each person once) and the active accounts they are
// measured against: the accounts active now plus those removed in the window.
func (db *DB) burstCounts(ctx context.Context, tx *sqlx.Tx, scope string, bid int64, since time.Time) (removals, active int, err error) {
	var ran, removedInWindow, burst int
	err = tx.GetContext(ctx, &ran, db.q(`SELECT COUNT(*) FROM removals r
		WHERE (? = '' OR r.feed = ?) AND r.at > ? AND r.hold_id IS NULL
			AND NOT EXISTS (SELECT 1 FROM hold_workers hw WHERE hw.hold_id = ? AND hw.feed = r.feed AND hw.worker_id = r.worker_id)`),
		scope, scope, db.ts(since), bid)
	if err != nil {
		return 0, 0, fmt.Errorf("count removals: %w", err)
	}
	if err = tx.GetContext(ctx, &removedInWindow, db.q(`SELECT COUNT(*) FROM removals WHERE (? = '' OR feed = ?) AND at > ?`),
		scope, scope, db.ts(since)); err != nil {
		return 0, 0, fmt.Errorf("count removals: %w", err)
	}
	if err = tx.GetContext(ctx, &burst, db.q(`SELECT COUNT(*) FROM hold_workers WHERE hold_id = ?`), bid); err != nil {
		return 0, 0, fmt.Errorf("count burst: %w", err)
	}
	// activeQuery leaves out the workers removed in the window (and the one named,
	// here nobody); they were active when the window started.
	if err = tx.GetContext(ctx, &active, db.q(activeQuery), scope, scope, db.ts(since), "", ""); err != nil {
		return 0, 0, fmt.Errorf("count active accounts: %w", err)
	}
	return ran + burst, active + removedInWindow, nil
}

// window returns the removals of the window for scope (a feed, or empty for all),
// counting w's as one whether or not it was counted before, and the active
// accounts at the window's start. The active count is measured again once the
// scope's last measurement is older than the window, or when fresh is set: the
// accounts active now plus those removed within the window.
func (db *DB) window(ctx context.Context, tx *sqlx.Tx, scope string, w connector.WorkerKey, now, since time.Time, fresh bool) (removals, active int, err error) {
	err = tx.GetContext(ctx, &removals, db.q(`SELECT COUNT(*) FROM removals
		WHERE (? = '' OR feed = ?) AND at > ? AND hold_id IS NULL AND NOT (feed = ? AND worker_id = ?)`),
		scope, scope, db.ts(since), w.Feed, w.WorkerID)
	if err != nil {
		return 0, 0, fmt.Errorf("count removals: %w", err)
	}
	removals++
	var started instant
	err = tx.QueryRowContext(ctx, db.q(`SELECT active, started_at FROM safeguard_windows WHERE scope = ?`), scope).Scan(&active, &started)
	if err == nil && started.T.After(since) && !fresh {
		return removals, active, nil
	}
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, 0, fmt.Errorf("read window: %w", err)
	}
	if err := tx.GetContext(ctx, &active, db.q(activeQuery), scope, scope, db.ts(since), w.Feed, w.WorkerID); err != nil {
		return 0, 0, fmt.Errorf("count active accounts: %w", err)
	}
	active += removals - 1 // removed in the window: active when it started
	if _, err := tx.ExecContext(ctx, db.q(`INSERT INTO safeguard_windows (scope, active, started_at) VALUES (?, ?, ?)
		ON CONFLICT (scope) DO UPDATE SET active = excluded.active, started_at = excluded.started_at`), scope, active, db.ts(now)); err != nil {
		return 0, 0, fmt.Errorf("write window: %w", err)
	}
	// Old removals are never counted again.
	if _, err := tx.ExecContext(ctx, db.q(`DELETE FROM removals WHERE (? = '' OR feed = ?) AND at < ?`), scope, scope, db.ts(since.Add(-24*time.Hour))); err != nil {
		return 0, 0, fmt.Errorf("prune removals: %w", err)
	}
	return removals, active, nil
}

// bindHoldVersion binds r's worker's entry in hold hid to r.Version: an
// upload's entries have none until their facts are recorded and judged.
func (db *DB) bindHoldVersion(ctx context.Context, tx *sqlx.Tx, hid int64, r connector.RemovalRequest) error {
	_, err := tx.ExecContext(ctx, db.q(`UPDATE hold_workers SET version = ? WHERE hold_id = ? AND feed = ? AND worker_id = ?`),
		r.Version, hid, r.Worker.Feed, r.Worker.WorkerID)
	return err
}

// recordRemoval records an allowed removal of r.Worker at r.Now, replacing the
// worker's previous one.
func (db *DB) recordRemoval(ctx context.Context, tx *sqlx.Tx, r connector.RemovalRequest, hold *int64) error {
	_, err := tx.ExecContext(ctx, db.q(`INSERT INTO removals (feed, worker_id, version, at, hold_id) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (feed, worker_id) DO UPDATE SET version = excluded.version, at = excluded.at, hold_id = excluded.hold_id`),
		r.Worker.Feed, r.Worker.WorkerID, r.Version, db.ts(r.Now), hold)
	if err != nil {
		return fmt.Errorf("record removal: %w", err)
	}
	return nil
}

// holdWorker puts r's worker into hold id, or brings its entry up to r.
func (db *DB) holdWorker(ctx context.Context, tx *sqlx.Tx, id int64, r connector.RemovalRequest) error {
	return db.insertHoldWorkers(ctx, tx, id, []connector.HeldWorker{{Worker: r.Worker, AccountID: r.AccountID, Action: r.Action,
		Version: r.Version, Name: r.Name, Email: r.Email, At: r.Now}})
}

// keepSample keeps a held worker's sample mark while the hold is about the
// same fact version, and clears it for a newer one: a person let the removal
// they saw run, not the next one.
const keepSample = `CASE WHEN excluded.version > hold_workers.version THEN NULL ELSE hold_workers.sampled_at END`

func (db *DB) insertHoldWorkers(ctx context.Context, tx *sqlx.Tx, id int64, ws []connector.HeldWorker) error {
	now := db.now()
	for start := 0; start < len(ws); start += batchRows {
		end := min(start+batchRows, len(ws))
		args := make([]any, 0, 9*(end-start))
		for _, hw := range ws[start:end] {
			at := hw.At
			if at.IsZero() {
				at = now
			}
			args = append(args, id, hw.Worker.Feed, hw.Worker.WorkerID, hw.AccountID, string(cmp.Or(hw.Action, connector.ActionDeactivate)),
				hw.Version, hw.Name, hw.Email, db.ts(at))
		}
		_, err := tx.ExecContext(ctx, db.q(`INSERT INTO hold_workers (hold_id, feed, worker_id, account_id, action, version, name, email, added_at)
			VALUES `+placeholders(end-start, 9)+`
			ON CONFLICT (hold_id, feed, worker_id) DO UPDATE SET account_id = excluded.account_id, action = excluded.action,
				version = excluded.version, name = excluded.name, email = excluded.email,
				sampled_at = `+keepSample+``), args...)
		if err != nil {
			return fmt.Errorf("hold workers: %w", err)
		}
	}
	return nil
}

// CreateHold stores an open hold with its workers and returns its id. Uploads use
// it to hold a roster before anything is published: Kind upload, the workers the
// roster would remove (Version 0), and the Payload to publish once approved. A
// second open live hold for a feed is refused (connector.ErrConflict): live holds
// are opened by ReserveRemoval.
func (db *DB) CreateHold(ctx context.Context, h connector.Hold) (int64, error) {
	if !connector.ValidFeedName(h.Feed) {
		return 0, fmt.Errorf("store: create hold: feed %q is not a feed name", h.Feed)
	}
	if h.Kind != connector.HoldLive && h.Kind != connector.HoldUpload {
		return 0, fmt.Errorf("store: create hold: kind %q: want live or upload", h.Kind)
	}
	status := cmp.Or(h.Status, connector.HoldOpen)
	if status != connector.HoldOpen && (status != connector.HoldPassed || h.Kind != connector.HoldUpload) {
		return 0, fmt.Errorf("store: create hold: status %q: want open, or passed for an upload judged under the thresholds", status)
	}
	created := h.CreatedAt
	if created.IsZero() {
		created = db.now()
	}
	var id int64
	err := db.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := db.lockSafeguard(ctx, tx); err != nil {
			return err
		}
		if h.Kind == connector.HoldLive {
			var n int
			if err := tx.GetContext(ctx, &n, db.q(`SELECT COUNT(*) FROM holds WHERE feed = ? AND kind = 'live' AND status = 'open'`), h.Feed); err != nil {
				return err
			}
			if n > 0 {
				return fmt.Errorf("feed %s already has an open live hold: %w", h.Feed, connector.ErrConflict)
			}
		}
		var decidedAt any
		decidedBy, decision := "", ""
		if status == connector.HoldPassed {
			decidedAt, decidedBy, decision = db.ts(created), "safeguard", "under the thresholds: "+h.Reason
		}
		if err := tx.QueryRowContext(ctx, db.q(`INSERT INTO holds (feed, kind, status, reason, active, created_at, payload, decided_at, decided_by, decision,
			caused_by, approvals_needed)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`), h.Feed, string(h.Kind), string(status), h.Reason, h.Counts.Active, db.ts(created), h.Payload,
			decidedAt, decidedBy, decision, h.CausedBy, h.Needed()).Scan(&id); err != nil {
			return err
		}
		for i := range h.Workers {
			h.Workers[i].Worker.Feed = cmp.Or(h.Workers[i].Worker.Feed, h.Feed)
			if h.Workers[i].At.IsZero() {
				h.Workers[i].At = created
			}
		}
		return db.insertHoldWorkers(ctx, tx, id, h.Workers)
	})
	if err != nil {
		return 0, fmt.Errorf("store: create hold: %w", err)
	}
	return id, nil
}

// holdSelect counts a hold's removals from its workers, or for a job (clean-up,
// offboarding) from its items.
const holdSelect = `SELECT h.id, h.feed, h.kind, h.status, h.reason, h.active, h.created_at, h.decided_at, h.decided_by, h.decision, h.sample_limit,
	h.caused_by, h.approvals_needed,
	(SELECT COUNT(*) FROM hold_workers w WHERE w.hold_id = h.id) + (SELECT COUNT(*) FROM job_items j WHERE j.hold_id = h.id),
	(SELECT COUNT(*) FROM hold_workers w WHERE w.hold_id = h.id AND w.action = 'deactivate'),
	(SELECT COUNT(*) FROM hold_workers w WHERE w.hold_id = h.id AND w.action = 'delete') + (SELECT COUNT(*) FROM job_items j WHERE j.hold_id = h.id AND j.action = 'delete')
	FROM holds h`

func scanHold(s scanner) (connector.Hold, error) {
	var h connector.Hold
	var created, decided instant
	var kind, status string
	err := s.Scan(&h.ID, &h.Feed, &kind, &status, &h.Reason, &h.Counts.Active, &created, &decided, &h.DecidedBy, &h.Decision, &h.Sample,
		&h.CausedBy, &h.ApprovalsNeeded, &h.Counts.Removals, &h.Counts.Deactivations, &h.Counts.Deletions)
	h.Kind, h.Status, h.CreatedAt, h.DecidedAt = connector.HoldKind(kind), connector.HoldStatus(status), created.T, decided.ptr()
	return h, err
}

// HoldFilter selects holds. Empty fields do not filter.
type HoldFilter struct {
	Feed   string
	Status connector.HoldStatus
	// Bursts includes, without a Status, the bursts that settle or passed: the
	// safeguard's own decisions, which wait for nobody.
	Bursts bool
	Limit  int // at most this many; 0 for no limit
}

// ListHolds returns the holds that match f, newest first, with their counts and
// without workers or payload.
func (db *DB) ListHolds(ctx context.Context, f HoldFilter) ([]connector.Hold, error) {
	var where []string
	var args []any
	if f.Feed != "" {
		where, args = append(where, "h.feed = ?"), append(args, f.Feed)
	}
	if f.Status != "" {
		where, args = append(where, "h.status = ?"), append(args, string(f.Status))
	} else if !f.Bursts {
		where = append(where, "h.status NOT IN ('settling', 'passed')")
	}
	rows, err := db.x.QueryContext(ctx, db.q(holdSelect+whereClause(where)+` ORDER BY h.id DESC`+limitClause(f.Limit)), args...)
	if err != nil {
		return nil, fmt.Errorf("store: list holds: %w", err)
	}
	defer rows.Close()
	var out []connector.Hold
	for rows.Next() {
		h, err := scanHold(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list holds: %w", err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list holds: %w", err)
	}
	return out, nil
}

// GetHold returns hold id with its counts and payload, without its workers (see
// HoldWorkers). Returns an error matching connector.ErrNotFound if there is none.
func (db *DB) GetHold(ctx context.Context, id int64) (connector.Hold, error) {
	return db.getHold(ctx, db.x, id)
}

func (db *DB) getHold(ctx context.Context, q sqlx.QueryerContext, id int64) (connector.Hold, error) {
	h, err := scanHold(q.QueryRowxContext(ctx, db.q(holdSelect+` WHERE h.id = ?`), id))
	if err != nil {
		return h, noRows(err, "hold %d", id)
	}
	if err := sqlx.GetContext(ctx, q, &h.Payload, db.q(`SELECT payload FROM holds WHERE id = ?`), id); err != nil {
		return h, fmt.Errorf("store: hold %d: payload: %w", id, err)
	}
	if err := sqlx.SelectContext(ctx, q, &h.Approvals, db.q(`SELECT approver FROM hold_approvals WHERE hold_id = ? ORDER BY at, approver`), id); err != nil {
		return h, fmt.Errorf("store: hold %d: approvals: %w", id, err)
	}
	return h, nil
}

// HoldWorkers returns the workers of hold id in key order, up to limit (0: all),
// after the key after (the zero key: from the start).
func (db *DB) HoldWorkers(ctx context.Context, id int64, after connector.WorkerKey, limit int) ([]connector.HeldWorker, error) {
	rows, err := db.x.QueryContext(ctx, db.q(`SELECT feed, worker_id, account_id, action, version, name, email, added_at, sampled_at IS NOT NULL
		FROM hold_workers WHERE hold_id = ? AND (feed, worker_id) > (?, ?) ORDER BY feed, worker_id`+limitClause(limit)),
		id, after.Feed, after.WorkerID)
	if err != nil {
		return nil, fmt.Errorf("store: hold %d workers: %w", id, err)
	}
	defer rows.Close()
	var out []connector.HeldWorker
	for rows.Next() {
		var hw connector.HeldWorker
		var at instant
		if err := rows.Scan(&hw.Worker.Feed, &hw.Worker.WorkerID, &hw.AccountID, &hw.Action, &hw.Version, &hw.Name, &hw.Email, &at, &hw.Sampled); err != nil {
			return nil, fmt.Errorf("store: hold %d workers: %w", id, err)
		}
		hw.At = at.T
		out = append(out, hw)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: hold %d workers: %w", id, err)
	}
	return out, nil
}

// ErrHoldNotApproved is returned by ApprovedHold for a hold that is open or rejected.
var ErrHoldNotApproved = errors.New("store: hold is not approved")

// ApprovedHold returns hold id with its payload if a person approved it; uploads
// publish the payload then. Returns an error matching connector.ErrNotFound if
// there is no such hold, ErrHoldNotApproved if it is open or rejected.
func (db *DB) ApprovedHold(ctx context.Context, id int64) (connector.Hold, error) {
	h, err := db.GetHold(ctx, id)
	if err != nil {
		return h, err
	}
	if h.Status != connector.HoldApproved {
		return h, fmt.Errorf("hold %d is %s: %w", id, h.Status, ErrHoldNotApproved)
	}
	return h, nil
}

// wakeHoldWorkers makes the workers of hold id (only its sampled ones, if
// sampled) due now. woken: a converger may hold one of these workers' claim,
// taken before this decision, and be about to commit its held outcome; that
// completion must leave the worker due (see completeChunk).
func (db *DB) wakeHoldWorkers(ctx context.Context, tx *sqlx.Tx, id int64, sampled bool, now time.Time) error {
	only := ""
	if sampled {
		only = " AND sampled_at IS NOT NULL"
	}
	if _, err := tx.ExecContext(ctx, db.q(`UPDATE workers
		SET due_at = CASE WHEN due_at IS NOT NULL AND due_at <= ? THEN due_at ELSE ? END, woken = TRUE
		WHERE (feed, worker_id) IN (SELECT feed, worker_id FROM hold_workers WHERE hold_id = ?`+only+`)`), db.ts(now), db.ts(now), id); err != nil {
		return fmt.Errorf("mark due: %w", err)
	}
	return nil
}

// DecideHold records a person's decision on the open hold id, in one transaction:
// the hold's status, who decided, when and why; one audit row per held worker
// (outcome approved or rejected, naming the hold, the person and the reason);
// and, approving a live hold, the held workers become due now, so that the
// converger runs their removals (ReserveRemoval lets them pass). Rejected workers
// are left as they are: their accounts are not removed for the facts they were
// held for. Returns the decided hold; an error matching connector.ErrNotFound if
// there is no hold id, connector.ErrConflict if it was decided already.
func (db *DB) DecideHold(ctx context.Context, id int64, d connector.HoldDecision) (connector.Hold, error) {
	if strings.TrimSpace(d.By) == "" || strings.TrimSpace(d.Reason) == "" {
		return connector.Hold{}, fmt.Errorf("store: decide hold %d: who decides and why are required", id)
	}
	var h connector.Hold
	err := db.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := db.lockSafeguard(ctx, tx); err != nil {
			return err
		}
		var err error
		if h, err = db.getHold(ctx, tx, id); err != nil {
			return err
		}
		if h.Status != connector.HoldOpen {
			return fmt.Errorf("hold %d was %s by %s: %w", id, h.Status, h.DecidedBy, connector.ErrConflict)
		}
		now := db.now()
		if d.Approve {
			if err := h.CheckApprover(d.By); err != nil {
				return err
			}
			if len(h.Approvals)+1 < h.Needed() {
				// One approval of several: kept, audited once, and the hold stays open.
				if _, err := tx.ExecContext(ctx, db.q(`INSERT INTO hold_approvals (hold_id, approver, at, reason) VALUES (?, ?, ?, ?)`),
					id, d.By, db.ts(now), d.Reason); err != nil {
					return fmt.Errorf("approval: %w", err)
				}
				h.Approvals = append(h.Approvals, d.By)
				detail := fmt.Sprintf("hold %d: approval %d of %d by %s: %s", id, len(h.Approvals), h.Needed(), d.By, d.Reason)
				return db.insertAudit(ctx, tx, []connector.Completion{{Audit: []connector.AuditEntry{{At: now, Feed: h.Feed,
					Action: connector.ActionNone, Outcome: connector.OutcomeApproved, Detail: detail, Plan: "approval", HoldID: id}}}}, now)
			}
		}
		status, outcome := connector.HoldRejected, connector.OutcomeRejected
		if d.Approve {
			status, outcome = connector.HoldApproved, connector.OutcomeApproved
		}
		if _, err := tx.ExecContext(ctx, db.q(`UPDATE holds SET status = ?, decided_at = ?, decided_by = ?, decision = ? WHERE id = ?`),
			string(status), db.ts(now), d.By, d.Reason, id); err != nil {
			return err
		}
		by := d.By
		if d.Approve && len(h.Approvals) > 0 {
			by = strings.Join(append(slices.Clone(h.Approvals), d.By), " and ")
		}
		detail := fmt.Sprintf("hold %d %s by %s: %s", id, status, by, d.Reason)
		at := "?"
		if db.backend == Postgres {
			at = "CAST(? AS TIMESTAMPTZ)"
		}
		if _, err := tx.ExecContext(ctx, db.q(`INSERT INTO audit (`+auditColumns+`)
			SELECT `+at+`, feed, worker_id, account_id, action, ?, ?, '[]', ? FROM hold_workers WHERE hold_id = ? ORDER BY feed, worker_id`),
			db.ts(now), string(outcome), detail, "hold "+string(status), id); err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		if h.Kind.IsJob() {
			if _, err := tx.ExecContext(ctx, db.q(`INSERT INTO audit (`+auditColumns+`)
				SELECT `+at+`, feed, worker_id, account_id, action, ?, ?, '[]', ? FROM job_items WHERE hold_id = ? ORDER BY seq`),
				db.ts(now), string(outcome), detail, "hold "+string(status), id); err != nil {
				return fmt.Errorf("audit: %w", err)
			}
		}
		if d.Approve && h.Kind == connector.HoldLive {
			if err := db.wakeHoldWorkers(ctx, tx, id, false, now); err != nil {
				return err
			}
		}
		h.Status, h.DecidedAt, h.DecidedBy, h.Decision = status, &now, d.By, d.Reason
		return nil
	})
	if err != nil {
		return h, fmt.Errorf("store: decide hold %d: %w", id, err)
	}
	return h, nil
}
