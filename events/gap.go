package events

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Gap detection.
//
// A feed's stream never evicts a message to make room (it refuses new ones when it
// is full, see StreamConfig), but a message can still leave it before hrsync
// recorded it: it outlived the stream's max age while hrsync was stopped or behind,
// or an operator purged or deleted it. Such a message is a fact hrsync will never
// see, so it must not pass in silence.
//
// JetStream skips a removed message without a word: the consumer simply delivers
// the next one. So the consumer watches the stream sequences it is delivered:
//   - at start, everything between the consumer's delivered sequence and the
//     stream's first sequence was removed without being delivered;
//   - while running, a first delivery of sequence s after the highest seen so far,
//     last, with s > last+1, is checked: the sequences in between that are no longer
//     in the stream (below its first sequence, or deleted inside it) are the gap.
//
// With one replica this is exact. With several replicas sharing the consumer, the
// sequences in between were mostly delivered to another replica and are still in
// the stream, so they do not count; a message delivered to another replica that
// ages out before this replica looks may be counted although it was recorded.
// docs/design.md says what to do about a gap.

// gapCheckTimeout bounds the stream lookups of one check.
const gapCheckTimeout = 5 * time.Second

type window struct{ lo, hi uint64 } // exclusive bounds

// startGapCheck sets the consumer's starting point and reports what was removed
// from the stream while nothing consumed it.
func (c *consumer) startGapCheck(ctx context.Context, cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil {
		return
	}
	c.last = info.Delivered.Stream
	if first := c.reportGaps(ctx, []window{{lo: c.last, hi: 0}}); first > 0 {
		// What lies below the stream's first sequence has been reported once.
		c.last = max(c.last, first-1)
	}
}

// checkGaps looks at the first deliveries of a batch and reports the sequences
// skipped over that are no longer in the stream.
func (c *consumer) checkGaps(ctx context.Context, batch []jetstream.Msg) {
	var ws []window
	for _, m := range batch {
		md, err := m.Metadata()
		if err != nil || md.NumDelivered != 1 {
			continue
		}
		s := md.Sequence.Stream
		if s > c.last+1 {
			ws = append(ws, window{lo: c.last, hi: s})
		}
		c.last = max(c.last, s)
	}
	if len(ws) > 0 {
		c.reportGaps(ctx, ws)
	}
}

// reportGaps counts, in each window, the sequences that have left the stream, and
// returns the stream's first sequence (0 if it could not be read). A window with
// hi 0 is open: it ends at the stream's first sequence.
func (c *consumer) reportGaps(ctx context.Context, ws []window) uint64 {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), gapCheckTimeout)
	defer cancel()
	st, err := c.js.Stream(ctx, c.stream)
	if err != nil {
		c.log.Warn("gap check: reading the stream", "err", err)
		return 0
	}
	info, err := st.Info(ctx, jetstream.WithDeletedDetails(true))
	if err != nil {
		c.log.Warn("gap check: reading the stream", "err", err)
		return 0
	}
	first := info.State.FirstSeq
	for _, w := range ws {
		hi := w.hi
		if hi == 0 {
			hi = first
		}
		if hi <= w.lo+1 {
			continue
		}
		lo, end := w.lo+1, hi-1 // the sequences in the window, inclusive
		n := 0
		// Below the stream's first sequence, every one is gone.
		if lo < first {
			n += int(min(end, first-1) - lo + 1)
		}
		for _, d := range info.State.Deleted {
			if d >= lo && d <= end && d >= first {
				n++
			}
		}
		if n == 0 {
			continue
		}
		c.log.Error("events were removed from the stream before hrsync recorded them: they are lost to hrsync; "+
			"ask the feed to send them again (a full roster, or the HR system's resend), then run hrsync reconcile",
			"first_seq", lo, "last_seq", end, "lost", n, "max_age", info.Config.MaxAge)
		if h := c.cfg.Hooks.Gap; h != nil {
			h(c.feed, lo, end, n)
		}
	}
	return first
}
