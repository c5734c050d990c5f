package connector

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// GDPR erasure (Art. 17), per account. See docs/erasure.md.
//
// After an erasure a person is named only by a keyed hash of their worker key:
// HMAC-SHA256(erasure key, "feed:worker_id"), hex. Without the key the hash cannot be
// tied back to a worker id by trying candidate ids.

// ErasureHash returns the keyed hash (64 hex digits) that names the erased worker w.
func ErasureHash(key []byte, w WorkerKey) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(w.Feed + ":" + w.WorkerID))
	return hex.EncodeToString(m.Sum(nil))
}

// ErasureKeyCheck returns a fingerprint of key, stored with every tombstone so that a
// store used with another key notices. It reveals nothing about the key.
func ErasureKeyCheck(key []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("hrsync erasure key check"))
	return hex.EncodeToString(m.Sum(nil))[:16]
}

// ErasedID returns the pseudonym "erased:<first 16 hex digits of hash>" that replaces
// the worker id in the audit trail and the externalId of the anonymised account.
func ErasedID(hash string) string { return "erased:" + hash[:min(16, len(hash))] }

// AnonymisedAccount returns a with every personal field replaced: userName and email
// become erased-<hash16>@erased.invalid, the names "Erased", externalId the pseudonym,
// and employee number, org unit, title, manager and locale are cleared. ID and Version
// are kept, so that the update is conditional.
func AnonymisedAccount(a Account, hash string) Account {
	h := hash[:min(16, len(hash))]
	mail := "erased-" + h + "@erased.invalid"
	return Account{
		ID: a.ID, Version: a.Version, Active: a.Active, Created: a.Created,
		ExternalID: ErasedID(hash),
		UserName:   mail,
		Profile:    Profile{Email: mail, GivenName: "Erased", FamilyName: "Erased"},
	}
}

// TrainingDeleter is implemented by LMS adapters that can delete an account's
// learning records (enrollments, completions, logins) while keeping the account.
// Erasure uses it when the feed's retention policy does not keep learning records.
//
// DeleteTraining returns nil only when the account carries no learning records
// afterwards. An adapter that finds out its LMS cannot delete them (a SCIM server
// without the training extension, or one that refuses to remove it) returns an
// error matching ErrTrainingNotDeletable or ErrTrainingUnknown, having changed
// nothing; erasure then reports the records as not deleted.
type TrainingDeleter interface {
	DeleteTraining(ctx context.Context, accountID string) error
}

// ErrTrainingNotDeletable: the LMS cannot delete an account's learning records.
var ErrTrainingNotDeletable = errors.New("the LMS cannot delete learning records")

// Training outcomes of an erasure, as reported and audited.
const (
	TrainingKept        = "kept pseudonymised"
	TrainingDeleted     = "deleted"
	TrainingUnsupported = "NOT deleted: the LMS cannot delete learning records through hrsync; delete them in the LMS by hand"
	TrainingNoAccount   = "no LMS account"
)

// ErasureResult is what EraseAccount did in the LMS.
type ErasureResult struct {
	// Account is the anonymised account; zero if there was none.
	Account Account
	// Training says what became of the learning records (one of the Training* constants).
	Training string
}

// FindErasureAccount finds the LMS account of an erased worker: the first linked
// account of the worker's chain that still exists, else the single account whose
// externalId is "feed:worker_id", else the account an earlier erasure anonymised
// (externalId ErasedID(hash)), so that erase can run again. It returns ok=false when
// there is none; two or more by one externalId is an error (never guess).
func FindErasureAccount(ctx context.Context, lms LMS, w WorkerKey, hash string, linked []string) (Account, bool, error) {
	for _, id := range linked {
		a, err := lms.GetAccount(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return Account{}, false, fmt.Errorf("erase %s: get account %s: %w", w, id, err)
		}
		return a, true, nil
	}
	for _, ext := range []string{w.ExternalID(), ErasedID(hash)} {
		as, err := lms.FindAccounts(ctx, AccountFilter{Attr: ByExternalID, Value: ext})
		if err != nil {
			return Account{}, false, fmt.Errorf("erase %s: find account by externalId: %w", w, err)
		}
		switch len(as) {
		case 0:
			continue
		case 1:
			return as[0], true, nil
		}
		ids := make([]string, len(as))
		for i, a := range as {
			ids[i] = a.ID
		}
		return Account{}, false, fmt.Errorf("erase %s: %d accounts carry externalId %q (%v); resolve by hand", w, len(as), ext, ids)
	}
	return Account{}, false, nil
}

// EraseAccount anonymises the account a (AnonymisedAccount), deactivates it, and keeps
// or deletes its learning records: keepRecords keeps them on the anonymised account,
// which no longer carries personal data, so they are pseudonymised; otherwise they are
// deleted if the LMS implements TrainingDeleter, and the result says so if not, or if
// the LMS answers that it cannot (ErrTrainingNotDeletable, ErrTrainingUnknown).
// It is idempotent: running it again on an anonymised account changes nothing.
func EraseAccount(ctx context.Context, lms LMS, a Account, hash string, keepRecords bool) (ErasureResult, error) {
	anon := AnonymisedAccount(a, hash)
	if a.ExternalID != anon.ExternalID || a.UserName != anon.UserName || a.Profile != anon.Profile {
		updated, err := lms.UpdateAccount(ctx, anon)
		if err != nil {
			return ErasureResult{}, fmt.Errorf("erase: anonymise account %s: %w", a.ID, err)
		}
		a = updated
	}
	if a.Active {
		updated, err := lms.SetActive(ctx, a.ID, false)
		if err != nil {
			return ErasureResult{}, fmt.Errorf("erase: deactivate account %s: %w", a.ID, err)
		}
		a = updated
	}
	res := ErasureResult{Account: a, Training: TrainingKept}
	if !keepRecords {
		td, ok := lms.(TrainingDeleter)
		if !ok {
			res.Training = TrainingUnsupported
			return res, nil
		}
		err := td.DeleteTraining(ctx, a.ID)
		if errors.Is(err, ErrTrainingNotDeletable) || errors.Is(err, ErrTrainingUnknown) {
			res.Training = TrainingUnsupported
			return res, nil
		}
		if err != nil {
			return res, fmt.Errorf("erase: delete learning records of account %s: %w", a.ID, err)
		}
		res.Training = TrainingDeleted
	}
	return res, nil
}
