package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
)

// One worker's GDPR erasure, as "hrsync erase" and the daemon (for an
// hrsync.worker.erasure_requested.v1 event) both run it: findErasure looks up
// what there is to erase, (erasure).run does it. See docs/erasure.md.

// retentionPolicy is every feed's retention policy from the configuration file:
// feed name → feeds[].retention.keep_learning_records.
type retentionPolicy map[string]bool

// keep reports whether an erased person's learning records of feed are kept,
// pseudonymised on the anonymised account (the default), or deleted.
func (r retentionPolicy) keep(feed string) bool {
	k, ok := r[feed]
	return !ok || k
}

// loadRetention reads the feeds' retention policies from the configuration file.
func loadRetention(configPath string) (retentionPolicy, error) {
	fc, err := loadConfigFile(configPath)
	if err != nil {
		return nil, err
	}
	r := retentionPolicy{}
	for _, f := range fc.Feeds {
		if f.Retention.KeepLearningRecords != nil {
			r[f.Name] = *f.Retention.KeepLearningRecords
		}
	}
	return r, nil
}

// erasure is what there is to erase of one worker.
type erasure struct {
	Worker connector.WorkerKey
	// Subject is what the store holds about the worker's person.
	Subject store.ErasureSubject
	// Hash is the keyed hash that names the person from now on.
	Hash string
	// Account is the LMS account to anonymise, if Found.
	Account connector.Account
	Found   bool
}

// findErasure looks up what the store and the LMS hold of w. It needs the erasure
// key, and the store must have been given it (UseErasureKey).
func findErasure(ctx context.Context, db *store.DB, lms connector.LMS, key []byte, w connector.WorkerKey) (erasure, error) {
	if len(key) == 0 {
		return erasure{}, fmt.Errorf("the erasure key is required: set %s (or --erasure-key of hrsync erase); hrsync erase and hrsync run need the same key", erasureKeyEnv)
	}
	subj, err := db.ErasureSubject(ctx, w)
	if err != nil {
		return erasure{}, err
	}
	hash := connector.ErasureHash(key, w)
	acct, found, err := connector.FindErasureAccount(ctx, lms, w, hash, subj.Accounts)
	if err != nil {
		return erasure{}, err
	}
	return erasure{Worker: w, Subject: subj, Hash: hash, Account: acct, Found: found}, nil
}

// erased is what (erasure).run did.
type erased struct {
	// Training says what became of the learning records (connector.Training*);
	// empty if the LMS step failed.
	Training string
	Report   store.ErasureReport
	// Identifiers are the person's worker ids, emails and employee numbers, from
	// the store and the LMS account: what a residue check looks for.
	Identifiers []string
}

// run erases the person: first the LMS account is anonymised and deactivated,
// its learning records kept (keep) or deleted, then the store removes the person
// in one transaction and writes the tombstone and the audit row (reason and by are
// kept in both). If the LMS step fails the store is unchanged; if the store step
// fails after it, running the erasure again is safe: it finds the anonymised
// account by its link or pseudonym.
func (e erasure) run(ctx context.Context, db *store.DB, lms connector.LMS, keep bool, reason, by string) (erased, error) {
	d := erased{Identifiers: slices.Clone(e.Subject.Identifiers)}
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
