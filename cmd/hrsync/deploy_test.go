package main

import (
	"testing"
	"time"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/app"
)

// The example configuration keeps raw events in NATS for less time than the
// erasure deadline it documents (docs/erasure.md: one month).
func TestExampleConfigRetentionFitsErasure(t *testing.T) {
	fc, err := app.LoadConfigFile("../../deploy/hrsync.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if a := fc.Stream.MaxAge; a <= 0 || a > 30*24*time.Hour {
		t.Errorf("example stream max_age %s: events hold personal data; keep them less than the month an erasure may take", a)
	}
	c := connFlags{config: "../../deploy/hrsync.example.yaml"}
	feeds, sc, err := c.feedsAndStream()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range feeds.Names() {
		if l := sc.LimitsFor(f); l.MaxBytes <= 0 {
			t.Errorf("feed %s: stream without a size limit", f)
		}
	}
}
