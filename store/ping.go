package store

import "context"

// Ping checks that the database answers; /readyz uses it.
func (db *DB) Ping(ctx context.Context) error { return db.x.PingContext(ctx) }
