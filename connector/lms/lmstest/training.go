package lmstest

import (
	"errors"
	"testing"

	"github.com/hrsync/hrsync/connector"
)

// trainingTests check the optional capability connector.TrainingDeleter; they
// skip for adapters without it, and for an LMS that answers it cannot delete
// learning records.
var trainingTests = []subTest{
	{"DeleteTraining", testDeleteTraining},
}

func testDeleteTraining(t *testing.T, s *suite) {
	td, ok := s.lms.(connector.TrainingDeleter)
	if !ok {
		t.Skip("no connector.TrainingDeleter: the LMS does not delete learning records")
	}
	ctx := t.Context()
	a := s.create(s.account("erin"))
	if s.f.Train != nil {
		s.f.Train(t, s.lms, a.ID)
	}
	err := td.DeleteTraining(ctx, a.ID)
	if errors.Is(err, connector.ErrTrainingNotDeletable) || errors.Is(err, connector.ErrTrainingUnknown) {
		// It says so, and must not have touched the account.
		sameAccount(t, s.get(a.ID), a)
		t.Skipf("connector.TrainingDeleter: the LMS cannot delete learning records: %v", err)
	}
	if err != nil {
		t.Fatalf("DeleteTraining: %v", err)
	}
	// The account is kept as it was, without records.
	sameAccount(t, s.get(a.ID), a)
	if ar, ok := s.lms.(connector.ActivityReader); ok {
		act, err := ar.Activity(ctx, a.ID)
		switch {
		case errors.Is(err, connector.ErrTrainingUnknown):
		case err != nil:
			t.Errorf("Activity after DeleteTraining: %v", err)
		case act.Any():
			t.Errorf("Activity after DeleteTraining = %+v, want none", act)
		}
	}
	if err := td.DeleteTraining(ctx, a.ID); err != nil {
		t.Errorf("DeleteTraining again: %v, want nil (nothing left to delete)", err)
	}
	wantErr(t, "DeleteTraining of a missing account", td.DeleteTraining(ctx, s.missingID()), connector.ErrNotFound)
}
