package main

// The activity-based features on every LMS flavor (issue 13, "Done when"): for
// each simulator that "hrsync sandbox-lms --flavor" serves (flavor.Names(), so a
// flavor that registers later is covered without a change here), hrsync is
// configured as a user would configure it (a configuration file with lms.type
// and lms.url, the secret as the adapter documents it) and the real commands run:
// the daemon through a hire, a leave and a rehire; "cleanup dormant" with its
// hold, approval and run; "report rehire".

import (
	"cmp"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/app"
	"github.com/hrsync/hrsync/cmd/hrsync/internal/flavor"
	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/events"
	"github.com/hrsync/hrsync/store/pgtest"
)

// vendorAbility says what one flavor's adapter cannot do of what these tests
// check, and why; the zero value is "everything", which is what a flavor with no
// entry in vendorAbilities is held to. A limitation is asserted, not skipped:
// the test checks the documented behaviour instead (no account selected, and
// the reason the report gives).
type vendorAbility struct {
	// noCreationTime: the LMS reports no account creation time, so
	// "cleanup dormant --created-before" selects no account of it, each left
	// alone as "creation date unknown".
	noCreationTime string
}

// vendorAbilities are the flavors' documented limitations, by flavor name.
var vendorAbilities = map[string]vendorAbility{
	"scim": {},
	"moodle": {noCreationTime: "Moodle's user descriptions carry no creation time " +
		"(docs/lms-compat-moodle.md, Reconciliation and clean-up)"},
}

// forEachFlavor runs fn as a parallel subtest per registered flavor.
func forEachFlavor(t *testing.T, fn func(t *testing.T, name string, can vendorAbility)) {
	t.Helper()
	names := flavor.Names()
	for _, must := range []string{"scim", "moodle"} {
		if !slices.Contains(names, must) {
			t.Errorf("flavor %q is not registered (registered: %v)", must, names)
		}
	}
	for name := range vendorAbilities {
		if !slices.Contains(names, name) {
			t.Errorf("vendorAbilities has flavor %q, which is not registered (registered: %v)", name, names)
		}
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, name, vendorAbilities[name])
		})
	}
}

// vendorLMS is a sandbox served through a flavor's simulator on loopback, and
// how a user reaches it.
type vendorLMS struct {
	name string
	sb   *sandbox.LMS
	// url and secret are the simulator's API URL and credential.
	url, secret string
	// config is a configuration file with lms: (and what extra asked for).
	config string
	// flags are the secrets as command-line flags (--lms-token, ...).
	flags []string
	// env are the same secrets as the environment variables of the flags, for
	// the daemon.
	env map[string]string
}

// startVendorLMS serves a new sandbox through flavor name's handler, with a
// random secret, and writes the configuration a user writes for it: lms.type,
// lms.url and the rest of the flavor's settings in the file, extra (YAML
// top-level keys) beside them; the token (or user and password) as flags and
// LMS_* variables; an OAuth2 client secret in a variable that
// lms.client_secret_env names, since that is the only way the file takes one.
func startVendorLMS(t *testing.T, name string, extra map[string]any) *vendorLMS {
	t.Helper()
	f, err := flavor.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	v := &vendorLMS{name: name, sb: sandbox.New(f.Sandbox...), env: map[string]string{}}
	secret := fmt.Sprintf("vendor-%016x", rand.Uint64())
	srv := httptest.NewServer(f.Handler(v.sb, secret))
	t.Cleanup(srv.Close)
	v.url, v.secret = srv.URL+f.Path, secret
	s := f.Settings(v.url, secret)

	lms := map[string]any{"type": s.Type, "url": s.URL}
	set := func(key, val string) {
		if val != "" {
			lms[key] = val
		}
	}
	set("client_id", s.ClientID)
	set("external_id_field", s.ExternalIDField)
	set("employee_number_field", s.EmployeeNumberField)
	set("additional_fields", s.AdditionalFields)
	set("ca_file", s.CAFile)
	set("client_filter", s.ClientFilter)
	set("rate", s.Rate)
	if s.Timeout != 0 {
		lms["timeout"] = s.Timeout.String()
	}
	secretFlag := func(flag, env, val string) {
		if val != "" {
			v.flags = append(v.flags, "--"+flag, val)
			v.env[env] = val
		}
	}
	secretFlag("lms-token", "LMS_TOKEN", s.Token)
	secretFlag("lms-user", "LMS_USER", s.User)
	secretFlag("lms-password", "LMS_PASSWORD", s.Password)
	if s.ClientSecret != "" {
		// lms.client_secret_env is read from the command's environment (run's
		// getenv, here v.env), never the process's.
		envName := "HRSYNC_VENDOR_TEST_SECRET"
		v.env[envName] = s.ClientSecret
		lms["client_secret_env"] = envName
	}
	doc := map[string]any{"lms": lms}
	for k, val := range extra {
		doc[k] = val
	}
	body, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	v.config = filepath.Join(t.TempDir(), "hrsync.yaml")
	if err := os.WriteFile(v.config, body, 0o600); err != nil {
		t.Fatal(err)
	}
	// The file and the flags must give hrsync every setting of the flavor: a
	// setting this function does not know yet fails here, not as an odd
	// failure of a command.
	fc, err := app.LoadConfigFile(v.config)
	if err != nil {
		t.Fatal(err)
	}
	got := fc.LMS.Over(app.LMSSettings{Token: s.Token, User: s.User, Password: s.Password}, func(k string) string { return v.env[k] })
	want := s
	want.Timeout, want.Rate = cmp.Or(want.Timeout, got.Timeout), cmp.Or(want.Rate, got.Rate) // the defaults Over fills in
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("flavor %s: the configuration file and flags give %+v, want the flavor's settings %+v", name, got, want)
	}
	return v
}

// conn are the args that point a command at the LMS: the configuration file
// and the secret flags.
func (v *vendorLMS) conn() []string { return append([]string{"--config", v.config}, v.flags...) }

// byExternalID returns the sandbox's accounts whose externalId is ext.
func (v *vendorLMS) byExternalID(ext string) []sandbox.AccountRecord {
	var out []sandbox.AccountRecord
	for _, r := range v.sb.Snapshot() {
		if r.Account.ExternalID == ext {
			out = append(out, r)
		}
	}
	return out
}

func hasCompletion(tr sandbox.Training, course string) bool {
	return slices.ContainsFunc(tr.Completions, func(c sandbox.Completion) bool { return c.Course == course })
}

// TestVendorLeaverRehire runs the daemon (in process, PostgreSQL, JetStream)
// against each flavor, configured by lms.type in the file: two people are
// hired and complete a course, leave, and come back, one under the same worker
// id with a new email, one under a new worker id (previous_worker_id); a third
// stays. Each leaver's account is deactivated, not deleted; each rehire gets
// the same account back, active, with its completion; the LMS saw one create,
// one deactivate and one activate per person who came back, and nothing else
// but profile updates. "report rehire" then reads the completion through the
// vendor's API.
func TestVendorLeaverRehire(t *testing.T) {
	t.Parallel()
	forEachFlavor(t, func(t *testing.T, name string, _ vendorAbility) {
		natsURL := startNATS(t)
		dbURL := pgtest.URL(t)
		l := startVendorLMS(t, name, map[string]any{"safeguard": map[string]any{"settle": "0s"}})
		js := connectJS(t, natsURL)
		env := map[string]string{"DATABASE_URL": dbURL, "NATS_URL": natsURL, "HRSYNC_CONFIG": l.config,
			"HRSYNC_ADMIN_ADDR": "127.0.0.1:0", "HRSYNC_LOG_FORMAT": "json", "HRSYNC_LOG_LEVEL": "info"}
		for k, val := range l.env {
			env[k] = val
		}
		stop, _ := runInProcess(t, env)

		seq := 0
		send := func(k connector.Kind, at time.Time, d events.Data) {
			t.Helper()
			seq++
			e := events.Event{Feed: "hr", Kind: k, ID: fmt.Sprintf("vendor-%d", seq), Source: "/feeds/hr", Time: at.Add(time.Duration(seq) * time.Second), Data: d}
			if _, err := events.Publish(t.Context(), js, e, events.Mode(seq%2)); err != nil {
				t.Fatal(err)
			}
		}
		person := func(id, email, given, number string) events.Data {
			return events.Data{WorkerID: id, Email: email, GivenName: given, FamilyName: "Berger", EmployeeNumber: number,
				OrgUnit: "Kitchen", JobTitle: "Cook", Effective: "2025-01-06"}
		}
		// await waits until exactly one account has externalId ext and ok holds for it.
		await := func(what, ext string, ok func(r sandbox.AccountRecord) bool) sandbox.AccountRecord {
			t.Helper()
			var got sandbox.AccountRecord
			waitFor(t, 30*time.Second, what, func() (bool, string) {
				rs := l.byExternalID(ext)
				if len(rs) != 1 {
					return false, fmt.Sprintf("%d accounts with externalId %s (of %d)", len(rs), ext, l.sb.Count())
				}
				got = rs[0]
				return ok(got), fmt.Sprintf("%+v", got.Account)
			})
			return got
		}
		active := func(r sandbox.AccountRecord) bool { return r.Account.Active }

		ana, ben, cleo := person("w1", "ana@corp.example", "Ana", "E1"), person("w2", "ben@corp.example", "Ben", "E2"), person("w3", "cleo@corp.example", "Cleo", "E3")
		for _, p := range []events.Data{ana, ben, cleo} {
			send(connector.KindHired, hireTime, p)
		}
		hired := map[string]sandbox.AccountRecord{}
		for _, w := range []string{"w1", "w2", "w3"} {
			hired[w] = await("the account of "+w+" after the hire", "hr:"+w, active)
		}
		for _, w := range []string{"w1", "w2"} {
			if err := l.sb.CompleteCourse(hired[w].Account.ID, seededCourse, completedAt); err != nil {
				t.Fatal(err)
			}
		}

		for _, w := range []string{"w1", "w2"} {
			send(connector.KindLeft, leaveTime, events.Data{WorkerID: w, Effective: "2025-06-30", Reason: "end of season"})
		}
		for _, w := range []string{"w1", "w2"} {
			left := await("the account of "+w+" deactivated after the leave", "hr:"+w, func(r sandbox.AccountRecord) bool { return !r.Account.Active })
			if left.Account.ID != hired[w].Account.ID {
				t.Errorf("%s left: account %s, want %s", w, left.Account.ID, hired[w].Account.ID)
			}
		}

		anaBack := ana
		anaBack.Email, anaBack.Effective = "ana.new@corp.example", "2025-10-01"
		send(connector.KindRehired, rehireTime, anaBack)
		benBack := ben
		benBack.WorkerID, benBack.PreviousWorkerID, benBack.EmployeeNumber, benBack.Effective = "w2-r", "w2", "", "2025-10-01"
		send(connector.KindRehired, rehireTime, benBack)
		back := map[string]sandbox.AccountRecord{
			"w1": await("w1's account active again with the new email", "hr:w1", func(r sandbox.AccountRecord) bool {
				return r.Account.Active && strings.EqualFold(r.Account.Profile.Email, anaBack.Email)
			}),
			"w2": await("w2's account active again under hr:w2-r", "hr:w2-r", active),
		}
		for _, w := range []string{"w1", "w2"} {
			got, want := back[w], hired[w]
			if got.Account.ID != want.Account.ID {
				t.Errorf("%s rehired: account %s, want the original %s", w, got.Account.ID, want.Account.ID)
			}
			if !hasCompletion(got.Training, seededCourse) {
				t.Errorf("%s rehired: completions %+v, want %s kept", w, got.Training.Completions, seededCourse)
			}
		}
		waitFor(t, 30*time.Second, "the consumer drained", func() (bool, string) { return consumerDrained(t.Context(), js) })
		stop()

		if n := l.sb.Count(); n != 3 {
			t.Errorf("%d accounts in the LMS, want 3: %+v", n, l.sb.Snapshot())
		}
		if rs := l.byExternalID("hr:w3"); len(rs) != 1 || !rs[0].Account.Active || rs[0].Account.ID != hired["w3"].Account.ID {
			t.Errorf("w3, who stayed: %+v", rs)
		}
		ops := map[string][]sandbox.OpKind{}
		for _, op := range l.sb.Ops() {
			if op.Kind != sandbox.OpUpdate {
				ops[op.AccountID] = append(ops[op.AccountID], op.Kind)
			}
		}
		for w, want := range map[string][]sandbox.OpKind{
			"w1": {sandbox.OpCreate, sandbox.OpDeactivate, sandbox.OpActivate},
			"w2": {sandbox.OpCreate, sandbox.OpDeactivate, sandbox.OpActivate},
			"w3": {sandbox.OpCreate},
		} {
			if got := ops[hired[w].Account.ID]; !slices.Equal(got, want) {
				t.Errorf("%s: LMS ops (updates aside) %v, want %v: each action once", w, got, want)
			}
		}

		// The completion as the vendor's API reports it, for both rehires.
		for _, worker := range []string{"hr:w1", "hr:w2-r"} {
			out, stderr, err := runCLI(t, l.env, append([]string{"report", "rehire", "--worker", worker, "--format", "csv", "--now", "2025-10-01"}, l.conn()...)...)
			if err != nil {
				t.Errorf("report rehire --worker %s: %v\n%s", worker, err, stderr)
				continue
			}
			rows := readCSV(t, out)
			if len(rows) != 1 || rows[0]["course"] != seededCourse || rows[0]["completed_at"] != completedAt.Format(time.DateOnly) {
				t.Errorf("report rehire --worker %s: %q, want one row: %s completed %s", worker, rows, seededCourse, completedAt.Format(time.DateOnly))
			}
		}
	})
}

// readCSV parses s, a header and rows, into one map a row by column name,
// failing t if it is not CSV.
func readCSV(t *testing.T, s string) []map[string]string {
	t.Helper()
	rows, err := csv.NewReader(strings.NewReader(s)).ReadAll()
	if err != nil || len(rows) == 0 {
		t.Fatalf("not CSV with a header (%v):\n%s", err, s)
	}
	var out []map[string]string
	for _, row := range rows[1:] {
		m := map[string]string{}
		for i, col := range rows[0] {
			m[col] = row[i]
		}
		out = append(out, m)
	}
	return out
}

// TestVendorCleanupDormant runs the dormant-account clean-up as docs/cleanup.md
// describes it against each flavor: "cleanup dormant --no-login
// --no-enrollments" reports and holds (nothing deleted), "holds approve" and
// "holds run" delete. Accounts that never logged in and never enrolled go; one
// with a completion, one that logged in and one that enrolled stay, and so does
// one that logs in between the report and the run. --created-before selects by
// the account's creation time where the LMS reports it, and nothing, with the
// reason, where it does not (vendorAbilities).
func TestVendorCleanupDormant(t *testing.T) {
	t.Parallel()
	forEachFlavor(t, func(t *testing.T, name string, can vendorAbility) {
		ctx := t.Context()
		dir := t.TempDir()
		dbURL := "sqlite://" + filepath.Join(dir, "h.db")
		l := startVendorLMS(t, name, nil)
		migrateDB(t, dbURL)
		// Leftovers of an old import, and three accounts that were used.
		ids := map[string]string{}
		for _, u := range []string{"imp0", "imp1", "imp2", "imp3", "late", "done", "login", "enrolled"} {
			a, err := l.sb.CreateAccount(ctx, connector.Account{ExternalID: "import:" + u, UserName: u + "@old.example", Active: true,
				Profile: connector.Profile{Email: u + "@old.example", GivenName: "Imported", FamilyName: u}})
			if err != nil {
				t.Fatal(err)
			}
			ids[u] = a.ID
		}
		past := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
		if err := l.sb.CompleteCourse(ids["done"], "safety-101", past); err != nil {
			t.Fatal(err)
		}
		if err := l.sb.RecordLogin(ids["login"], past); err != nil {
			t.Fatal(err)
		}
		if err := l.sb.Enroll(ids["enrolled"], "forklift", past); err != nil {
			t.Fatal(err)
		}
		dormant := []string{"imp0", "imp1", "imp2", "imp3", "late"}
		conn := append([]string{"--db", dbURL, "--log-level", "warn"}, l.conn()...)
		type summary struct {
			Hold      int64 `json:"hold"`
			Selection struct {
				Scanned  int            `json:"scanned"`
				Excluded map[string]int `json:"excluded"`
			} `json:"selection"`
			ReportDir string `json:"report_dir"`
		}
		// scan runs cmd (cleanup dormant or report dormant) with args and returns
		// its summary and the userNames of the accounts its report selected.
		scan := func(cmd string, args ...string) (summary, []string, error) {
			t.Helper()
			out, stderr, err := runCLI(t, l.env, append(append([]string{cmd, "dormant", "--format", "json"}, args...), conn...)...)
			var s summary
			if jerr := json.Unmarshal([]byte(out), &s); jerr != nil {
				t.Fatalf("%s dormant %v: %v; output not JSON (%v):\n%s\n%s", cmd, args, err, jerr, out, stderr)
			}
			body, rerr := os.ReadFile(filepath.Join(s.ReportDir, "report.json"))
			var rep struct {
				Accounts []connector.JobItem `json:"accounts"`
			}
			if rerr != nil || json.Unmarshal(body, &rep) != nil {
				t.Fatalf("%s dormant %v: report.json (%v):\n%s", cmd, args, rerr, body)
			}
			var names []string
			for _, it := range rep.Accounts {
				names = append(names, strings.TrimSuffix(it.UserName, "@old.example"))
			}
			slices.Sort(names)
			return s, names, err
		}

		// The dry run: a report and a hold, nothing deleted.
		s, selected, err := scan("cleanup", "--no-login", "--no-enrollments", "--out", filepath.Join(dir, "cleanup"))
		if !needsPerson(err) || s.Hold == 0 {
			t.Fatalf("cleanup dormant: %v, hold %d; want exit 3 and a hold", err, s.Hold)
		}
		if !slices.Equal(selected, dormant) || s.Selection.Scanned != 8 {
			t.Errorf("cleanup dormant selected %v of %d scanned, want %v of 8", selected, s.Selection.Scanned, dormant)
		}
		for reason, n := range map[string]int{connector.ExcludedRecords: 1, connector.ExcludedLogin: 1, connector.ExcludedEnrolled: 1} {
			if s.Selection.Excluded[reason] != n {
				t.Errorf("cleanup dormant left %d alone as %q, want %d (all: %v)", s.Selection.Excluded[reason], reason, n, s.Selection.Excluded)
			}
		}
		if n := l.sb.Count(); n != 8 {
			t.Fatalf("the report deleted accounts: %d left", n)
		}
		hold := fmt.Sprint(s.Hold)

		// --created-before: by the creation time the LMS reports, if it does.
		tomorrow := time.Now().UTC().AddDate(0, 0, 1).Format(time.DateOnly)
		s, selected, err = scan("report", "--no-login", "--no-enrollments", "--created-before", tomorrow, "--out", filepath.Join(dir, "created"))
		if err != nil {
			t.Fatalf("report dormant --created-before: %v", err)
		}
		if can.noCreationTime != "" {
			t.Logf("%s: --created-before selects nothing: %s", name, can.noCreationTime)
			if len(selected) != 0 || s.Selection.Excluded[connector.ExcludedNoCreated] != len(dormant) {
				t.Errorf("--created-before %s selected %v and left %v; want none, %d as %q", tomorrow, selected, s.Selection.Excluded, len(dormant), connector.ExcludedNoCreated)
			}
		} else {
			if !slices.Equal(selected, dormant) {
				t.Errorf("--created-before %s selected %v, want %v (left alone: %v)", tomorrow, selected, dormant, s.Selection.Excluded)
			}
			s, selected, err = scan("report", "--no-login", "--no-enrollments", "--created-before", "2000-01-01", "--out", filepath.Join(dir, "created-2000"))
			if err != nil || len(selected) != 0 || s.Selection.Excluded[connector.ExcludedCreated] != len(dormant) {
				t.Errorf("--created-before 2000-01-01: %v; selected %v and left %v; want none, %d as %q", err, selected, s.Selection.Excluded, len(dormant), connector.ExcludedCreated)
			}
		}

		// The review: every held account, pending (exit 3: the hold awaits a person).
		out, _, err := runCLI(t, nil, "holds", "show", hold, "--db", dbURL, "--format", "csv")
		var shown []string
		for _, row := range readCSV(t, out) {
			if row["status"] == string(connector.JobPending) {
				shown = append(shown, strings.TrimSuffix(row["user_name"], "@old.example"))
			}
		}
		if slices.Sort(shown); !needsPerson(err) || !slices.Equal(shown, dormant) {
			t.Errorf("holds show %s --format csv: %v; pending %v, want %v\n%s", hold, err, shown, dormant, out)
		}

		// Apply: approve, one account logs in meanwhile, run.
		if out, stderr, err := runCLI(t, nil, "holds", "approve", hold, "--db", dbURL, "--by", "ana", "--reason", "import leftovers"); err != nil {
			t.Fatalf("holds approve: %v\n%s\n%s", err, out, stderr)
		}
		if err := l.sb.RecordLogin(ids["late"], time.Now()); err != nil {
			t.Fatal(err)
		}
		out, stderr, err := runCLI(t, l.env, append([]string{"holds", "run", hold}, conn...)...)
		if err != nil || !strings.Contains(out, "all runs: 4 done, 1 skipped, 0 failed, 0 pending") {
			t.Fatalf("holds run: %v\n%s\n%s", err, out, stderr)
		}
		var left []string
		for _, r := range l.sb.Snapshot() {
			left = append(left, strings.TrimSuffix(r.Account.UserName, "@old.example"))
		}
		slices.Sort(left)
		if want := []string{"done", "enrolled", "late", "login"}; !slices.Equal(left, want) {
			t.Errorf("accounts left %v, want %v", left, want)
		}
		if tr, err := l.sb.Training(ids["done"]); err != nil || !hasCompletion(tr, "safety-101") {
			t.Errorf("the completion of the account that was spared: %+v, %v", tr, err)
		}
		for _, op := range l.sb.Ops() {
			if op.Kind == sandbox.OpDelete && !slices.Contains([]string{ids["imp0"], ids["imp1"], ids["imp2"], ids["imp3"]}, op.AccountID) {
				t.Errorf("account %s was deleted", op.AccountID)
			}
		}
	})
}

// TestVendorReportRehire runs "report rehire" against each flavor: a rehire's
// account, created and reactivated through the flavor's adapter, has four
// completed courses and one it is enrolled in but did not complete; the report
// lists the four, read through the vendor's API, each expired or valid under
// the configured validity, and not the enrolment. An account that existed in
// the LMS before hrsync (never read through the API before) is found by --account.
func TestVendorReportRehire(t *testing.T) {
	t.Parallel()
	forEachFlavor(t, func(t *testing.T, name string, _ vendorAbility) {
		ctx := t.Context()
		year := map[string]any{"validity": "8760h"}
		l := startVendorLMS(t, name, map[string]any{"courses": map[string]any{"safety-101": year, "forklift": year, "gdpr": year}})
		at := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }
		out, _, err := runCLI(t, l.env, append([]string{"report", "rehire", "--worker", "hr:w7"}, l.conn()...)...)
		if err == nil || !strings.Contains(err.Error(), "no LMS account") {
			t.Fatalf("report rehire before the account exists: %v\n%s", err, out)
		}

		// The account as hrsync makes it: created, deactivated, reactivated,
		// through the flavor's adapter.
		f, err := flavor.Get(name)
		if err != nil {
			t.Fatal(err)
		}
		c, err := f.Open(l.url, l.secret)
		if err != nil {
			t.Fatal(err)
		}
		a, err := c.CreateAccount(ctx, connector.Account{ExternalID: "hr:w7", UserName: "kai@corp.example", Active: true,
			Profile: connector.Profile{Email: "kai@corp.example", GivenName: "Kai", FamilyName: "Novak"}})
		if err != nil {
			t.Fatal(err)
		}
		rs := l.byExternalID("hr:w7")
		if len(rs) != 1 {
			t.Fatalf("%d sandbox accounts with externalId hr:w7, want 1", len(rs))
		}
		sbID := rs[0].Account.ID
		for course, when := range map[string]time.Time{"safety-101": at(2024, 5, 1), "forklift": at(2025, 1, 10), "onboarding": at(2023, 1, 1), "gdpr": at(2026, 9, 1)} {
			if err := l.sb.CompleteCourse(sbID, course, when); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.sb.Enroll(sbID, "excel", at(2026, 10, 1)); err != nil {
			t.Fatal(err)
		}
		for _, active := range []bool{false, true} {
			if _, err := c.SetActive(ctx, a.ID, active); err != nil {
				t.Fatalf("SetActive(%v): %v", active, err)
			}
		}
		args := append([]string{"report", "rehire", "--worker", "hr:w7", "--validity", "forklift=17520h", "--now", "2026-11-01", "--format", "json"}, l.conn()...)
		out, stderr, err := runCLI(t, l.env, args...)
		if err != nil {
			t.Fatalf("report rehire: %v\n%s", err, stderr)
		}
		var got struct {
			AccountID string `json:"account_id"`
			Courses   []struct {
				Course, Status, Validity string
				CompletedAt              time.Time `json:"completed_at"`
			} `json:"courses"`
			Expired int `json:"expired"`
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		var summary []string
		for _, c := range got.Courses {
			summary = append(summary, c.Course+"="+c.Status+"/"+c.Validity+"@"+c.CompletedAt.UTC().Format(time.DateOnly))
		}
		want := "forklift=valid/17520h0m0s@2025-01-10 gdpr=valid/8760h0m0s@2026-09-01 onboarding=no-expiry/@2023-01-01 safety-101=expired/8760h0m0s@2024-05-01"
		if strings.Join(summary, " ") != want || got.Expired != 1 || got.AccountID != a.ID {
			t.Errorf("report = %s, expired %d, account %s; want %s, 1, %s", strings.Join(summary, " "), got.Expired, got.AccountID, want, a.ID)
		}

		// An account from before hrsync, which the LMS never answered about yet.
		old, err := l.sb.CreateAccount(ctx, connector.Account{ExternalID: "legacy:k9", UserName: "k9@old.example", Active: true,
			Profile: connector.Profile{Email: "k9@old.example", GivenName: "Kim", FamilyName: "Lang"}})
		if err != nil {
			t.Fatal(err)
		}
		if err := l.sb.CompleteCourse(old.ID, "safety-101", at(2022, 2, 2)); err != nil {
			t.Fatal(err)
		}
		// Where the flavor's account ids are the sandbox's (Moodle's, scim's), the
		// id is given as the sandbox has it, so that nothing read the account
		// through the API before; else the adapter looks it up first.
		oldID := old.ID
		if sbID != a.ID {
			found, err := c.FindAccounts(ctx, connector.AccountFilter{Attr: connector.ByExternalID, Value: "legacy:k9"})
			if err != nil || len(found) != 1 {
				t.Fatalf("the account from before hrsync through the adapter: %+v, %v", found, err)
			}
			oldID = found[0].ID
		}
		out, stderr, err = runCLI(t, l.env, append([]string{"report", "rehire", "--account", oldID, "--now", "2026-11-01", "--format", "csv"}, l.conn()...)...)
		if err != nil {
			t.Fatalf("report rehire --account %s: %v\n%s", oldID, err, stderr)
		}
		if rows := readCSV(t, out); len(rows) != 1 || rows[0]["course"] != "safety-101" || rows[0]["completed_at"] != "2022-02-02" || rows[0]["status"] != "expired" {
			t.Errorf("report rehire --account %s: %q, want safety-101 completed 2022-02-02, expired", oldID, rows)
		}
	})
}
