package guard

import "context"

// Priority is the class of an LMS call under the rate limit. When calls of both
// classes wait for the rate limit, every Live call gets its slot before any
// Background call: a Background call already waiting may be overtaken by Live
// calls that come later. Background calls go whenever no Live call waits, so they
// are never starved while live work is idle.
type Priority uint8

const (
	// Live is a change to a worker being converged: a hire, a leave, an update.
	// It is the default.
	Live Priority = iota
	// Background is work that can wait: reconciliation passes, clean-up jobs,
	// reports.
	Background
)

// String returns "live" or "background".
func (p Priority) String() string {
	if p == Background {
		return "background"
	}
	return "live"
}

type priorityKey struct{}

// WithPriority returns ctx carrying p: the guard's calls made with it wait for the
// rate limit in class p. No adapter or port signature carries it.
func WithPriority(ctx context.Context, p Priority) context.Context {
	return context.WithValue(ctx, priorityKey{}, p)
}

// PriorityOf returns the class ctx carries, Live if none.
func PriorityOf(ctx context.Context) Priority {
	if p, ok := ctx.Value(priorityKey{}).(Priority); ok {
		return p
	}
	return Live
}
