package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/hrsync/hrsync/connector"
)

// The account mirror (migration 0020, connector/mirror.go): the last hrsync saw
// of each LMS account. Converges commit what they saw with their outcome
// (Completion.Mirror); reconciliation pages and the rest go through
// RememberAccounts and ForgetAccounts.

var _ connector.AccountMirror = (*DB)(nil)

// mirrorRows is how many accounts one statement writes: 10 parameters each,
// under SQLite's limit of 32,766.
const mirrorRows = 500

// MirroredAccounts returns the mirror's copy of each of ids it holds.
func (db *DB) MirroredAccounts(ctx context.Context, ids []string) (map[string]connector.Account, error) {
	out := make(map[string]connector.Account, len(ids))
	for chunk := range slices.Chunk(ids, db.chunkSize()) {
		cond, args := db.inList("account_id", chunk)
		var rows []struct {
			ID      string `db:"account_id"`
			Account string `db:"account"`
		}
		if err := db.x.SelectContext(ctx, &rows, db.q(`SELECT account_id, account FROM lms_mirror WHERE `+cond), args...); err != nil {
			return nil, fmt.Errorf("store: read the account mirror: %w", err)
		}
		for _, r := range rows {
			var a connector.Account
			if err := json.Unmarshal([]byte(r.Account), &a); err != nil {
				// A copy that does not decode is no copy: the account is read.
				db.log.WarnContext(ctx, "store: an account mirror row does not decode; ignored", "account_id", r.ID, "err", err)
				continue
			}
			a.ID = r.ID
			out[r.ID] = a
		}
	}
	return out, nil
}

// RememberAccounts records accs as seen at seen; a copy seen later than seen is
// kept.
func (db *DB) RememberAccounts(ctx context.Context, seen time.Time, accs []connector.Account) error {
	ups := make([]connector.MirrorUpdate, 0, len(accs))
	for _, a := range accs {
		ups = append(ups, connector.MirrorUpdate{Account: a, At: seen})
	}
	return db.inTx(ctx, func(tx *sqlx.Tx) error { return db.applyMirror(ctx, tx, ups) })
}

// ForgetAccounts drops the mirror's copies of ids.
func (db *DB) ForgetAccounts(ctx context.Context, ids []string) error {
	ups := make([]connector.MirrorUpdate, 0, len(ids))
	for _, id := range ids {
		ups = append(ups, connector.MirrorUpdate{Account: connector.Account{ID: id}, Gone: true})
	}
	return db.inTx(ctx, func(tx *sqlx.Tx) error { return db.applyMirror(ctx, tx, ups) })
}

// ForgetAccountsSeenBefore drops the mirror's copies last seen before t.
func (db *DB) ForgetAccountsSeenBefore(ctx context.Context, t time.Time) (int64, error) {
	res, err := db.x.ExecContext(ctx, db.q(`DELETE FROM lms_mirror WHERE seen_at < ?`), db.ts(t))
	if err != nil {
		return 0, fmt.Errorf("store: forget mirrored accounts seen before %s: %w", t.UTC().Format(time.RFC3339), err)
	}
	return res.RowsAffected()
}

// mirrorOf returns the mirror updates of cs, in order.
func mirrorOf(cs []connector.Completion) []connector.MirrorUpdate {
	var ups []connector.MirrorUpdate
	for _, c := range cs {
		ups = append(ups, c.Mirror...)
	}
	return ups
}

// applyMirror applies ups in tx: for each account the last update wins, and a
// copy is written only over one seen no later.
func (db *DB) applyMirror(ctx context.Context, tx sqlx.ExtContext, ups []connector.MirrorUpdate) error {
	last := map[string]connector.MirrorUpdate{}
	var order []string
	for _, u := range ups {
		if u.Account.ID == "" {
			continue
		}
		if _, ok := last[u.Account.ID]; !ok {
			order = append(order, u.Account.ID)
		}
		last[u.Account.ID] = u
	}
	slices.Sort(order) // one lock order for concurrent batches
	var gone []string
	var seen []connector.MirrorUpdate
	for _, id := range order {
		if u := last[id]; u.Gone {
			gone = append(gone, id)
		} else {
			seen = append(seen, u)
		}
	}
	for chunk := range slices.Chunk(gone, db.chunkSize()) {
		cond, args := db.inList("account_id", chunk)
		if _, err := tx.ExecContext(ctx, db.q(`DELETE FROM lms_mirror WHERE `+cond), args...); err != nil {
			return fmt.Errorf("store: forget mirrored accounts: %w", err)
		}
	}
	for chunk := range slices.Chunk(seen, mirrorRows) {
		args := make([]any, 0, 10*len(chunk))
		for _, u := range chunk {
			a := u.Account
			body, err := json.Marshal(a)
			if err != nil {
				return fmt.Errorf("store: mirror account %s: %w", a.ID, err)
			}
			args = append(args, a.ID, a.ExternalID, a.UserName, a.Profile.Email, a.Profile.EmployeeNumber,
				a.Active, a.Version, a.Organization, string(body), db.ts(u.At))
		}
		query := `INSERT INTO lms_mirror (account_id, external_id, user_name, email, employee_number, active, version, organization, account, seen_at)
			VALUES ` + placeholders(len(chunk), 10) + `
			ON CONFLICT (account_id) DO UPDATE SET external_id = excluded.external_id, user_name = excluded.user_name,
				email = excluded.email, employee_number = excluded.employee_number, active = excluded.active,
				version = excluded.version, organization = excluded.organization, account = excluded.account,
				seen_at = excluded.seen_at
			WHERE lms_mirror.seen_at <= excluded.seen_at`
		if _, err := tx.ExecContext(ctx, db.q(query), args...); err != nil {
			return fmt.Errorf("store: mirror accounts: %w", err)
		}
	}
	return nil
}
