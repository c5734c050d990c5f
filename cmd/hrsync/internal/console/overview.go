package console

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
)

// The overview: per feed, the last event, the consumer's lag, the due backlog,
// the open holds, dead letters and review items, and the LMS's quarantine; and
// 30 days of hires, leavers, rehires and LMS actions, drawn as SVG on the server
// (no script, and the Content-Security-Policy allows none).

// chartDays is how many days the charts show.
const chartDays = 30

// feedStat is one feed's row of the overview.
type feedStat struct {
	Feed                string
	LastRecorded        *time.Time
	Due                 int
	Lag                 string
	OpenHolds           int
	DeadLetters         int
	Reviews             int
	Hires, Leavers      int
	Rehires, LMSActions int
}

type overviewPage struct {
	// Reconciled says when the latest scheduled reconciliation ended and what
	// it found; empty: none ran in this process.
	Reconciled  string
	Feeds       []feedStat
	Quarantined bool
	LMSState    string
	People      chart
	Actions     chart
}

// LMSState says whether the LMS is quarantined, and why.
type LMSState struct {
	Quarantined bool
	Reason      string
	Since       time.Time
}

func (s *Server) overview(w http.ResponseWriter, r *http.Request, u User, ss *session) {
	ctx := r.Context()
	now := s.now().UTC()
	until := now.Truncate(24*time.Hour).AddDate(0, 0, 1)
	since := until.AddDate(0, 0, -chartDays)
	feeds := s.visibleFeeds(u)
	seen := map[string]bool{}
	for _, f := range feeds {
		seen[f] = true
	}
	p := overviewPage{LMSState: "reachable"}
	if s.d.LMSState != nil {
		st := s.d.LMSState()
		p.Quarantined = st.Quarantined
		if st.Quarantined {
			p.LMSState = fmt.Sprintf("quarantined since %s: %s", st.Since.UTC().Format("2006-01-02 15:04Z"), st.Reason)
		}
	}
	if d := s.driftPage(u); d.Have {
		drifted := 0
		for _, row := range d.Rows {
			if row.Class != connector.ClassInSync {
				drifted += row.Total
			}
		}
		p.Reconciled = fmt.Sprintf("%s: %d accounts out of step", d.Finished.UTC().Format("2006-01-02 15:04Z"), drifted)
		if d.Err != "" {
			p.Reconciled = d.Finished.UTC().Format("2006-01-02 15:04Z") + ": failed"
		}
	}
	act, err := s.d.Store.FeedActivity(ctx)
	if err != nil {
		s.internal(w, r, ss, err)
		return
	}
	holds, err := s.d.Store.ListHolds(ctx, store.HoldFilter{Status: connector.HoldOpen})
	if err != nil {
		s.internal(w, r, ss, err)
		return
	}
	facts, err := s.d.Store.DailyFacts(ctx, since, until)
	if err != nil {
		s.internal(w, r, ss, err)
		return
	}
	actions, err := s.d.Store.DailyActions(ctx, since, until)
	if err != nil {
		s.internal(w, r, ss, err)
		return
	}
	byFeed := map[string]*feedStat{}
	for _, f := range feeds {
		a := act[f]
		st := &feedStat{Feed: f, LastRecorded: a.LastRecorded, Due: a.Due, Lag: "-"}
		if s.d.Lag != nil {
			if pending, acks, err := s.d.Lag(ctx, f); err == nil {
				st.Lag = fmt.Sprintf("%d pending, %d unacked", pending, acks)
			} else {
				st.Lag = "unknown"
			}
		}
		if ds, err := s.d.Store.ListDeadLetters(ctx, store.DeadLetterFilter{Feed: f}); err == nil {
			st.DeadLetters = len(ds)
		}
		if rs, err := s.d.Store.ListReviews(ctx, store.ReviewFilter{Feed: f}); err == nil {
			st.Reviews = len(rs)
		}
		byFeed[f] = st
	}
	for _, h := range holds {
		if st := byFeed[h.Feed]; st != nil {
			st.OpenHolds++
		}
	}
	people := newSeries(since, "hired", "left", "rehired")
	lms := newSeries(since, "create", "update", "deactivate", "reactivate", "delete", "anonymise")
	for _, c := range facts {
		if st := byFeed[c.Feed]; st != nil {
			people.add(c)
			switch connector.Kind(c.Kind) {
			case connector.KindHired:
				st.Hires += c.N
			case connector.KindLeft:
				st.Leavers += c.N
			case connector.KindRehired:
				st.Rehires += c.N
			}
		}
	}
	for _, c := range actions {
		if st := byFeed[c.Feed]; st != nil {
			lms.add(c)
			st.LMSActions += c.N
		}
	}
	for _, f := range feeds {
		p.Feeds = append(p.Feeds, *byFeed[f])
	}
	p.People = people.chart("Hires, leavers and rehires, by the day they take effect")
	p.Actions = lms.chart("LMS actions that succeeded, by day")
	s.render(w, http.StatusOK, "overview", s.viewFor(ss, "Overview", p))
}

// series are daily counts of several kinds, from since, chartDays long.
type series struct {
	since time.Time
	kinds []string
	n     map[string][]int
}

func newSeries(since time.Time, kinds ...string) *series {
	s := &series{since: since, kinds: kinds, n: map[string][]int{}}
	for _, k := range kinds {
		s.n[k] = make([]int, chartDays)
	}
	return s
}

func (s *series) add(c store.DayCount) {
	i := int(c.Day.Sub(s.since) / (24 * time.Hour))
	if v, ok := s.n[c.Kind]; ok && i >= 0 && i < chartDays {
		v[i] += c.N
	}
}

// chart is an SVG line chart, every coordinate computed here.
type chart struct {
	Title         string
	Width, Height int
	Lines         []chartLine
	Max           int
	// Grid are the horizontal lines' y; From and To label the x axis.
	Grid     []int
	From, To string
	Empty    bool
}

type chartLine struct {
	Kind   string
	Color  string
	Points string
	Total  int
	// LegendX is where its legend starts.
	LegendX int
}

// palette colours the lines; colour is never the only cue (the legend names
// each line with its total).
var palette = []string{"#2452a4", "#b3261e", "#1f7a3f", "#a35a00", "#6b3fa0", "#00727a"}

const (
	chartW, chartH = 640, 180
	padL, padR     = 36, 8
	padT, padB     = 10, 22
)

func (s *series) chart(title string) chart {
	c := chart{Title: title, Width: chartW, Height: chartH + 24, From: s.since.Format("Jan 2"),
		To: s.since.AddDate(0, 0, chartDays-1).Format("Jan 2")}
	for _, k := range s.kinds {
		for _, v := range s.n[k] {
			c.Max = max(c.Max, v)
		}
	}
	c.Empty = c.Max == 0
	top := max(c.Max, 1)
	x := func(i int) int { return padL + i*(chartW-padL-padR)/(chartDays-1) }
	y := func(v int) int { return padT + (chartH-padT-padB)*(top-v)/top }
	for _, g := range []int{0, top / 2, top} {
		c.Grid = append(c.Grid, y(g))
	}
	legend := padL
	for i, k := range s.kinds {
		var pts []string
		total := 0
		for d, v := range s.n[k] {
			pts = append(pts, strconv.Itoa(x(d))+","+strconv.Itoa(y(v)))
			total += v
		}
		c.Lines = append(c.Lines, chartLine{Kind: k, Color: palette[i%len(palette)], Points: strings.Join(pts, " "), Total: total, LegendX: legend})
		legend += 14 + 6*(len(k)+1+len(strconv.Itoa(total))) + 18 // 11px text is about 6px a character
	}
	return c
}
