// Package erasure erases one person (GDPR Art. 17) from the LMS and the store, as
// "hrsync erase", an offboarding and the daemon (for an
// hrsync.worker.erasure_requested.v1 event) all run it: Find looks up what there
// is to erase, (Erasure).Run does it. It also holds the erasure key helpers and
// the way out of a lost key (ForgetKey). See docs/erasure.md.
//
// It is the use case only: it takes the store methods it needs (Store, KeyStore),
// the LMS (connector.LMS) and an io.Writer for what it reports; cmd/hrsync parses
// the flags and opens the app.
package erasure

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
)

// KeyEnv is the environment variable of the erasure key; "hrsync run" reads it too.
const KeyEnv = "HRSYNC_ERASURE_KEY"

// Store is what an erasure needs of the store. Implemented by *store.DB.
type Store interface {
	// ErasureSubject returns what the store holds about w's person.
	ErasureSubject(ctx context.Context, w connector.WorkerKey) (store.ErasureSubject, error)
	// Erase removes the person in one transaction and writes the tombstone.
	Erase(ctx context.Context, e store.Erasure) (store.ErasureReport, error)
}

// Retention is every feed's retention policy from the configuration file:
// feed name → feeds[].retention.keep_learning_records.
type Retention map[string]bool

// Keep reports whether an erased person's learning records of feed are kept,
// pseudonymised on the anonymised account (the default), or deleted.
func (r Retention) Keep(feed string) bool {
	k, ok := r[feed]
	return !ok || k
}

// Erasure is what there is to erase of one worker.
type Erasure struct {
	Worker connector.WorkerKey
	// Subject is what the store holds about the worker's person.
	Subject store.ErasureSubject
	// Hash is the keyed hash that names the person from now on.
	Hash string
	// Account is the LMS account to anonymise, if Found.
	Account connector.Account
	Found   bool
}

// Find looks up what the store and the LMS hold of w. It needs the erasure key,
// and the store must have been given it (UseErasureKey).
func Find(ctx context.Context, db Store, lms connector.LMS, key []byte, w connector.WorkerKey) (Erasure, error) {
	if len(key) == 0 {
		return Erasure{}, fmt.Errorf("the erasure key is required: set %s (or --erasure-key of hrsync erase); hrsync erase and hrsync run need the same key", KeyEnv)
	}
	subj, err := db.ErasureSubject(ctx, w)
	if err != nil {
		return Erasure{}, err
	}
	hash := connector.ErasureHash(key, w)
	acct, found, err := connector.FindErasureAccount(ctx, lms, w, hash, subj.Accounts)
	if err != nil {
		return Erasure{}, err
	}
	return Erasure{Worker: w, Subject: subj, Hash: hash, Account: acct, Found: found}, nil
}

// Result is what (Erasure).Run did.
type Result struct {
	// Training says what became of the learning records (connector.Training*);
	// empty if the LMS step failed.
	Training string
	Report   store.ErasureReport
	// Identifiers are the person's worker ids, emails and employee numbers, from
	// the store and the LMS account: what a residue check looks for.
	Identifiers []string
}

// Run erases the person: first the LMS account is anonymised and deactivated,
// its learning records kept (keep) or deleted, then the store removes the person
// in one transaction and writes the tombstone and the audit row (reason and by are
// kept in both). If the LMS step fails the store is unchanged; if the store step
// fails after it, running the erasure again is safe: it finds the anonymised
// account by its link or pseudonym.
func (e Erasure) Run(ctx context.Context, db Store, lms connector.LMS, keep bool, reason, by string) (Result, error) {
	d := Result{Identifiers: slices.Clone(e.Subject.Identifiers)}
	if e.Found {
		d.Identifiers = append(d.Identifiers, accountIdentifiers(e.Account)...)
		res, err := connector.EraseAccount(ctx, lms, e.Account, e.Hash, keep)
		if err != nil {
			return d, fmt.Errorf("%w (the store is unchanged; erasing again is safe)", err)
		}
		d.Training = res.Training
	} else {
		d.Training = connector.TrainingNoAccount
	}
	rep, err := db.Erase(ctx, store.Erasure{Worker: e.Worker, Reason: reason, By: by, AccountID: e.Account.ID,
		Training: d.Training, Identifiers: d.Identifiers})
	if err != nil {
		return d, err
	}
	d.Report = rep
	return d, nil
}

// accountIdentifiers returns what on LMS account a names its person (userName,
// email, employee number, externalId), leaving out what is already anonymised.
func accountIdentifiers(a connector.Account) []string {
	var out []string
	for _, v := range []string{a.UserName, a.Profile.Email, a.Profile.EmployeeNumber, a.ExternalID} {
		if v != "" && !strings.HasPrefix(v, "erased") {
			out = append(out, v)
		}
	}
	return out
}
