package bench

import (
	"fmt"
	"strings"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/events"
)

// The mixes of changes that --mix names.
const (
	// MixHires is N hires of new workers.
	MixHires = "hires"
	// MixLifecycle is, of N changes: 50% hires; once their accounts exist, 20%
	// leavers and 20% profile updates (of other workers); once the leavers are
	// inactive, 5% rehires under the same worker id and 5% under a new id
	// (previous_worker_id), all of leavers.
	MixLifecycle = "lifecycle"
)

// The kinds of change, as the result names them.
const (
	ChangeHire        = "hire"
	ChangeLeave       = "leave"
	ChangeUpdate      = "update"
	ChangeRehireSame  = "rehire_same_id"
	ChangeRehireNewID = "rehire_new_id"
)

// Phase is one wave of changes of one kind, published together once the phase
// before it has reached the LMS.
type Phase struct {
	Kind   string
	Events []events.Event
	// Done reports that a write op (CreateAccount, UpdateAccount, SetActive) whose
	// answer is a carries this phase's change of the account a.ExternalID to the LMS.
	Done func(op string, a connector.Account) bool
}

// Phases returns the phases of mix with n changes in all, of workers
// <prefix>-0000000 onwards, effective in the past of now (hires 3 hours before,
// leaves and updates 2, rehires 1), so that each takes effect at once and in order.
func Phases(mix string, n int, prefix string, now time.Time) ([]Phase, error) {
	hire := Phase{Kind: ChangeHire, Done: func(op string, a connector.Account) bool { return op == "CreateAccount" && a.Active }}
	switch mix {
	case MixHires:
		hire.Events = Events(n, prefix)
		return []Phase{hire}, nil
	case MixLifecycle:
	default:
		return nil, fmt.Errorf("mix %q: want %s or %s", mix, MixHires, MixLifecycle)
	}
	if n < 20 {
		return nil, fmt.Errorf("mix %s: %d changes is too few, want at least 20", mix, n)
	}
	rehires := max(1, n/20)
	leavers, updates := n/5, n/5
	hires := n - leavers - updates - 2*rehires
	worker := func(i int) string { return fmt.Sprintf("%s-%07d", prefix, i) }
	ev := func(k connector.Kind, w string, at time.Time, d events.Data) events.Event {
		d.WorkerID, d.Effective = w, at.Format(time.RFC3339)
		return events.Event{Feed: Feed, Kind: k, ID: fmt.Sprintf("%s-%s-%s", w, k, d.PreviousWorkerID), Source: "/feeds/" + Feed,
			Time: at, Data: d}
	}
	var leave, update, same, newID Phase
	hire.Events = make([]events.Event, hires)
	for i := range hires {
		w := worker(i)
		hire.Events[i] = ev(connector.KindHired, w, now.Add(-3*time.Hour), events.Data{Email: w + "@bench.example",
			GivenName: "Bench", FamilyName: w, EmployeeNumber: "E" + strings.TrimPrefix(w, prefix+"-"), JobTitle: "Associate"})
	}
	leave = Phase{Kind: ChangeLeave, Done: func(op string, a connector.Account) bool { return op == "SetActive" && !a.Active }}
	for i := range leavers {
		leave.Events = append(leave.Events, ev(connector.KindLeft, worker(i), now.Add(-2*time.Hour), events.Data{Reason: "resigned"}))
	}
	update = Phase{Kind: ChangeUpdate, Done: func(op string, a connector.Account) bool {
		return op == "UpdateAccount" && strings.HasPrefix(a.Profile.FamilyName, "Updated ")
	}}
	for i := leavers; i < leavers+updates; i++ {
		w := worker(i)
		update.Events = append(update.Events, ev(connector.KindUpdated, w, now.Add(-2*time.Hour),
			events.Data{FamilyName: "Updated " + w, JobTitle: "Senior Associate"}))
	}
	rehired := func(op string, a connector.Account) bool {
		return (op == "SetActive" || op == "UpdateAccount") && a.Active
	}
	same = Phase{Kind: ChangeRehireSame, Done: rehired}
	newIDs := make(map[string]bool, rehires) // read only once built
	newID = Phase{Kind: ChangeRehireNewID, Done: func(op string, a connector.Account) bool {
		return rehired(op, a) && newIDs[a.ExternalID]
	}}
	for i := range rehires {
		w := worker(i)
		same.Events = append(same.Events, ev(connector.KindRehired, w, now.Add(-time.Hour), events.Data{Email: w + "@bench.example",
			GivenName: "Bench", FamilyName: w}))
		old := worker(rehires + i)
		nw := worker(hires + i) // an id no hire used
		newIDs[Feed+":"+nw] = true
		newID.Events = append(newID.Events, ev(connector.KindRehired, nw, now.Add(-time.Hour), events.Data{Email: old + "@bench.example",
			GivenName: "Bench", FamilyName: old, PreviousWorkerID: old}))
	}
	return []Phase{hire, leave, update, same, newID}, nil
}
