package connector

// KeepsManualDeactivation reports whether an inactive account that w wants active
// stays inactive because someone outside hrsync (an admin, by hand) deactivated
// it, when the policy does not allow undoing that (Policy.ReactivateManual off).
// It performs no I/O. last is hrsync's latest successful state action on the
// account (create, deactivate or reactivate; nil: none), facts the worker's
// history as the store returns it (with Recorded), and w is what Want made of
// them now.
//
// The rule (docs/reconcile.md, "Accounts deactivated by hand"): the account
// stays inactive unless
//   - hrsync deactivated it itself: ManualDeactivation(last) is false;
//   - HR has spoken since: a hire, rehire or resume that is in force (one of
//     w.FactIDs) was recorded by the store strictly after last.At, whatever its
//     effective or event time. With no last (hrsync never set the account's
//     state, it adopted the account) every fact counts as recorded since;
//   - or a leave or leave of absence in force came into force after last.At (it
//     took effect or was recorded after it): hrsync then had to deactivate the
//     account itself, and only the audit row of that may be missing (a crash
//     between the LMS call and the commit).
//
// "Recorded" is the store's recorded_at (Fact.Recorded, the recording process's
// clock), never the effective time or the CloudEvents time. A leave in force
// after the hire keeps the account off anyway: then w is not active.
func KeepsManualDeactivation(last *AuditEntry, w Wanted, facts []Fact) bool {
	if !ManualDeactivation(last) {
		return false
	}
	inForce := make(map[string]bool, len(w.FactIDs))
	for _, id := range w.FactIDs {
		inForce[id] = true
	}
	for _, f := range facts {
		if !inForce[f.Source+"#"+f.ID] {
			continue
		}
		switch f.Kind {
		case KindHired, KindRehired, KindResumed:
			if last == nil || f.Recorded.After(last.At) {
				return false
			}
		case KindLeft, KindSuspended:
			if last != nil && (f.Effective.After(last.At) || f.Recorded.After(last.At)) {
				return false
			}
		}
	}
	return true
}
