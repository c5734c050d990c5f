package connector

import "context"

// LMSPriority is the class of the LMS calls made with a context, for a client-side
// rate limit that shares the LMS's budget between them (connector/lms/guard): when
// calls of both classes wait, every LMSLive call gets its slot before any
// LMSBackground call. The class travels in the context, so no port method carries
// it; guard.WithPriority is the same thing under the guard's names.
type LMSPriority uint8

const (
	// LMSLive is a change to a worker being converged. It is the default.
	LMSLive LMSPriority = iota
	// LMSBackground is work that can wait: reconciliation, clean-up and
	// offboarding jobs, reports.
	LMSBackground
)

// String returns "live" or "background".
func (p LMSPriority) String() string {
	if p == LMSBackground {
		return "background"
	}
	return "live"
}

type lmsPriorityKey struct{}

// WithLMSPriority returns ctx carrying p.
func WithLMSPriority(ctx context.Context, p LMSPriority) context.Context {
	return context.WithValue(ctx, lmsPriorityKey{}, p)
}

// LMSPriorityOf returns the class ctx carries, LMSLive if none.
func LMSPriorityOf(ctx context.Context) LMSPriority {
	if p, ok := ctx.Value(lmsPriorityKey{}).(LMSPriority); ok {
		return p
	}
	return LMSLive
}
