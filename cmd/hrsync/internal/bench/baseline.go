package bench

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// CreateSchema creates a fresh schema hrsync_bench_<random> with admin, so that a
// bench never touches real data, and returns its name and dbURL with every
// connection's search_path set to it.
func CreateSchema(ctx context.Context, admin *sql.DB, dbURL string) (schema, schemaURL string, err error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return "", "", err
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	schema = "hrsync_bench_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		return "", "", fmt.Errorf("create schema: %w", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return schema, u.String(), nil
}

// DropSchema drops schema and everything in it.
func DropSchema(ctx context.Context, admin *sql.DB, schema string) error {
	_, err := admin.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE")
	return err
}

// Baseline measures bare JetStream consume+ack with one multi-row INSERT per
// batch, on n events like the end-to-end run's, to show what the machine can do
// without hrsync. It publishes to stream, consumes it with a durable "baseline"
// that it deletes afterwards, writes to a table bench_baseline in schema, and
// returns the events per second.
func Baseline(ctx context.Context, js jetstream.JetStream, stream string, db *sql.DB, schema string, n, batch int) (float64, error) {
	table := schema + ".bench_baseline"
	if _, err := db.ExecContext(ctx, "CREATE TABLE "+table+" (subject TEXT NOT NULL, msg_id TEXT NOT NULL, data BYTEA NOT NULL, at TIMESTAMPTZ NOT NULL DEFAULT now())"); err != nil {
		return 0, err
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable: "baseline", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 4 * batch,
	})
	if err != nil {
		return 0, err
	}
	defer func() { _ = js.DeleteConsumer(context.WithoutCancel(ctx), stream, "baseline") }()
	start := time.Now()
	if _, err := PublishAll(ctx, js, Events(n, "base")); err != nil {
		return 0, err
	}
	got := 0
	deadline := time.Now().Add(5 * time.Minute)
	for got < n {
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("consumed %d of %d in 5 minutes", got, n)
		}
		msgs, err := cons.FetchNoWait(batch)
		if err != nil {
			return 0, err
		}
		var rows []jetstream.Msg
		for m := range msgs.Messages() {
			rows = append(rows, m)
		}
		if len(rows) == 0 {
			select {
			case <-time.After(2 * time.Millisecond):
			case <-ctx.Done():
				return 0, ctx.Err()
			}
			continue
		}
		var sb strings.Builder
		argv := make([]any, 0, 3*len(rows))
		sb.WriteString("INSERT INTO " + table + " (subject, msg_id, data) VALUES ")
		for i, m := range rows {
			if i > 0 {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, "($%d,$%d,$%d)", 3*i+1, 3*i+2, 3*i+3)
			argv = append(argv, m.Subject(), m.Headers().Get(jetstream.MsgIDHeader), m.Data())
		}
		if _, err := db.ExecContext(ctx, sb.String(), argv...); err != nil {
			return 0, err
		}
		for _, m := range rows {
			_ = m.Ack()
		}
		got += len(rows)
	}
	return float64(n) / time.Since(start).Seconds(), nil
}
