package guard

import (
	"context"

	"github.com/hrsync/hrsync/connector"
)

// Priority is the class of an LMS call under the rate limit. When calls of both
// classes wait for the rate limit, every Live call gets its slot before any
// Background call: a Background call already waiting may be overtaken by Live
// calls that come later. Background calls go whenever no Live call waits, so they
// are never starved while live work is idle.
//
// It is connector.LMSPriority, so that the connector package (which cannot import
// the guard) marks its own background work with connector.WithLMSPriority.
type Priority = connector.LMSPriority

const (
	// Live is a change to a worker being converged: a hire, a leave, an update.
	// It is the default.
	Live = connector.LMSLive
	// Background is work that can wait: reconciliation passes, clean-up and
	// offboarding jobs, reports.
	Background = connector.LMSBackground
)

// WithPriority returns ctx carrying p: the guard's calls made with it wait for the
// rate limit in class p. No adapter or port signature carries it.
func WithPriority(ctx context.Context, p Priority) context.Context {
	return connector.WithLMSPriority(ctx, p)
}

// PriorityOf returns the class ctx carries, Live if none.
func PriorityOf(ctx context.Context) Priority { return connector.LMSPriorityOf(ctx) }
