package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/bench"
	"github.com/hrsync/hrsync/store/pgtest"
)

// TestBenchFlags checks what "hrsync bench" refuses before it touches anything;
// package bench tests the measuring.
func TestBenchFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"TooFewEvents", []string{"bench", "--events", "50"}, "want 100 to 2000000"},
		{"TooManyEvents", []string{"bench", "--events", "3000000"}, "want 100 to 2000000"},
		{"NotPostgres", []string{"bench", "--events", "100", "--db", "sqlite:///tmp/x.db"}, "bench needs a postgres:// URL"},
		{"UnknownMix", []string{"bench", "--events", "100", "--mix", "leavers"}, `--mix "leavers": want hires or lifecycle`},
		{"NegativeRate", []string{"bench", "--events", "100", "--rate", "-5"}, "--rate -5: want 0"},
		{"BadLMSRate", []string{"bench", "--events", "100", "--lms-rate", "1000"}, "--lms-rate: rate \"1000\": want N/s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runCLI(t, nil, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v: %v, want an error with %q", tc.args, err, tc.want)
			}
		})
	}
}

// TestBenchLifecycle runs "hrsync bench --mix lifecycle" as the README does, small,
// and checks its JSON line: every change reached the LMS, the calls are counted
// by kind (the in-process sandbox's operations: a hire's three lookups and its
// create, ...; TestLMSCallsPerChange counts HTTP requests over SCIM), and the LMS
// time at the budget is the calls over the rate.
func TestBenchLifecycle(t *testing.T) {
	t.Parallel()
	_ = pgtest.URL(t) // skips, or fails, when PostgreSQL is unreachable
	// At 1000/h the 32 workers in flight queue for longer than the converger's
	// default minute a worker: the bench lets them (a worker refused a slot would
	// be converged again a minute later, lookups and all).
	out, stderr, err := runCLI(t, nil, "bench", "--db", pgtest.ServerURL(), "--events", "100", "--mix", "lifecycle",
		"--rate", "2000", "--lms-rate", "1000/h", "--lms-bulk=false", "--json")
	if err != nil {
		t.Fatalf("bench: %v\n%s\n%s", err, out, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var res bench.Result
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("last line: %v\n%s", err, out)
	}
	t.Logf("%s", out)
	// The writes are exact: 50 creates; 20 leaves and 5 same-id rehires set the
	// active state (25); 20 updates (20); the 5 new-id rehires re-key and
	// reactivate in one call each (UpdateAccountActive, 5). The reads are shared
	// by each claimed batch (one FindAccountsIn per rule; the rehire notes' one
	// CompletionsOf), and the account mirror saves those of the linked accounts,
	// so their number depends on how the changes fell into batches: at most one
	// call per rule and batch, and far fewer than one per change.
	by := res.LMSCallsByOp
	if res.Mix != "lifecycle" || res.Changes != 100 || by["CreateAccount"] != 50 || by["SetActive"] != 25 || by["UpdateAccount"] != 20 ||
		by["UpdateAccountActive"] != 5 {
		t.Errorf("result: %+v, want 100 changes, 50 creates, 25 state changes, 20 updates, 5 updates with the state", res)
	}
	// How many batches the changes fell into depends on timing (a loaded machine
	// claims smaller batches), so the bounds say "shared", not an exact count: one
	// read per change would be 50*3+50 = 200 reads, and a hire 4 calls.
	reads := res.LMSCalls - 100
	if reads < 1 || reads > 50 || by["FindAccounts"]+by["GetAccount"] > 5 {
		t.Errorf("result: %+v: %d reads for 100 changes, want them shared by batches", res, reads)
	}
	if res.LMSCallsPerChangeByKind[bench.ChangeHire] >= 2 || res.LMSCallsPerChangeByKind[bench.ChangeLeave] >= 1.5 ||
		res.LMSCallsPerChangeByKind[bench.ChangeUpdate] >= 1.5 {
		t.Errorf("calls per change by kind %v: a hire, a leave and an update are one write each, with shared reads", res.LMSCallsPerChangeByKind)
	}
	if res.LMSCallsPerChange != float64(res.LMSCalls)/100 ||
		res.LMSMinutesAtRate != float64(res.LMSCalls)/(1000.0/60) || res.LMSRate != "1000/h" || res.PublishRate != 2000 {
		t.Errorf("result: %+v", res)
	}
	if !strings.Contains(lines[0], "LMS: in-process sandbox, no bulk") {
		t.Errorf("first line %q does not say the bulk capabilities are off", lines[0])
	}
}
