package scim

import (
	"sync"
	"time"

	"github.com/hrsync/hrsync/connector"
)

// The training a batch read carried, for the rehire report.
//
// A rehire's reactivation is followed by the rehire training report
// (connector/training.go), which asks Completions for the account: one GET
// /Users/{id} per rehire, although the batch's GetAccounts, moments before, read
// the same user with its training extension. GetAccounts keeps what each
// inactive user carried (only an inactive account is reactivated, so a leaver's
// or an update's read keeps nothing), and Completions takes it instead of
// reading the user again:
//
//   - once: the entry is removed when taken, so a second Completions reads;
//   - within trainingMemoTTL of the read: the report follows the batch's reads
//     by the time of its plan and writes; a later question reads;
//   - never after hrsync changed the training or the account: DeleteTraining,
//     DeleteAccount and DeleteAccounts drop the entry first.
//
// The report is an audit note, not a decision, and the account it is made for
// was inactive until the reactivation: its learning records do not move between
// the read and the report. No outcome depends on the memo.

const (
	// trainingMemoTTL is how long a batch read's training answers Completions.
	trainingMemoTTL = 30 * time.Second
	// maxTrainingMemo bounds the entries kept; past it, new ones are not kept
	// (Completions then reads, as without the memo).
	maxTrainingMemo = 10_000
)

type trainingMemo struct {
	mu   sync.Mutex
	byID map[string]trainingEntry
}

type trainingEntry struct {
	at    time.Time
	known bool // the user carried the training extension
	comps []connector.CompletionRecord
}

// rememberTraining keeps the training u carries (or that it carries none),
// when u is inactive: only a reactivation is followed by a report.
func (c *Client) rememberTraining(u User) {
	if u.ID == "" || ToAccount(u).Active {
		return
	}
	e := trainingEntry{at: c.now(), known: u.Training != nil}
	if e.known {
		e.comps = completionsOf(u.Training)
	}
	m := &c.training
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.byID == nil {
		m.byID = map[string]trainingEntry{}
	}
	if len(m.byID) >= maxTrainingMemo {
		for id, old := range m.byID {
			if e.at.Sub(old.at) >= trainingMemoTTL {
				delete(m.byID, id)
			}
		}
		if len(m.byID) >= maxTrainingMemo {
			return
		}
	}
	m.byID[u.ID] = e
}

// takeTraining returns and removes the training kept for id, if it is recent.
func (c *Client) takeTraining(id string) (trainingEntry, bool) {
	m := &c.training
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.byID[id]
	if !ok {
		return trainingEntry{}, false
	}
	delete(m.byID, id)
	return e, c.now().Sub(e.at) < trainingMemoTTL
}

// forgetTraining drops what is kept for ids: hrsync is changing them.
func (c *Client) forgetTraining(ids ...string) {
	m := &c.training
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range ids {
		delete(m.byID, id)
	}
}

// completionsOf lists the completions of t.
func completionsOf(t *Training) []connector.CompletionRecord {
	out := make([]connector.CompletionRecord, 0, len(t.Completions))
	for _, tc := range t.Completions {
		out = append(out, connector.CompletionRecord{Course: tc.Course, CompletedAt: tc.CompletedAt})
	}
	return out
}
