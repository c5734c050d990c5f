package jobs

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Progress prints a one-line progress bar with a rate and an ETA to a terminal, or
// a line every few seconds to a log.
type Progress struct {
	w     io.Writer
	what  string
	now   func() time.Time
	start time.Time
	last  time.Time
	tty   bool
	shown bool
}

// NewProgress returns a progress bar of what (e.g. "scanned") on w.
func NewProgress(w io.Writer, what string) *Progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &Progress{w: w, what: what, now: time.Now, start: time.Now(), tty: tty}
}

// Update shows n of total (0: unknown) done, with extra after it.
func (p *Progress) Update(n, total int, extra string) {
	now := p.now()
	if !p.tty && now.Sub(p.last) < 5*time.Second && n < total {
		return
	}
	p.last = now
	el := now.Sub(p.start)
	line := fmt.Sprintf("%s %d", p.what, n)
	if total > 0 {
		const width = 30
		filled := min(width, n*width/max(total, 1))
		line = fmt.Sprintf("[%s%s] %s %d/%d (%d%%)", strings.Repeat("#", filled), strings.Repeat(".", width-filled), p.what, n, total, n*100/max(total, 1))
		if n > 0 && n < total {
			eta := time.Duration(float64(el) / float64(n) * float64(total-n))
			line += " ETA " + eta.Round(time.Second).String()
		}
	}
	if extra != "" {
		line += " " + extra
	}
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		p.shown = true
	} else {
		fmt.Fprintln(p.w, line)
	}
}

// Done ends the bar's line on a terminal.
func (p *Progress) Done() {
	if p.tty && p.shown {
		fmt.Fprintln(p.w)
	}
}
