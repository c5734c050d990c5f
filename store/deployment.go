package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
)

// DeploymentID returns the id of the deployment this store belongs to, making
// it on first use: "dep-" and 16 random hex digits. Every replica on the same
// database gets the same id, and a deployment on another database another one;
// hrsync names it in the metadata of the JetStream consumers it creates, so
// that two deployments cannot share a durable consumer unawares
// (docs/nats.md, "One deployment per consumer").
func (db *DB) DeploymentID(ctx context.Context) (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("store: deployment id: %w", err)
	}
	// Two replicas starting at once both try; the first insert wins and both
	// read its id.
	if _, err := db.x.ExecContext(ctx, db.q(`INSERT INTO deployment (singleton, id) VALUES (1, ?) ON CONFLICT (singleton) DO NOTHING`),
		"dep-"+hex.EncodeToString(b[:])); err != nil {
		return "", fmt.Errorf("store: deployment id: %w", err)
	}
	var id string
	if err := db.x.GetContext(ctx, &id, `SELECT id FROM deployment WHERE singleton = 1`); err != nil {
		return "", fmt.Errorf("store: deployment id: %w", err)
	}
	return id, nil
}
