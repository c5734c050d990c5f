package door

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/roster"
	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/events"
)

const (
	hrToken    = "hr-token-0123456789"
	acmeToken  = "acme-token-0123456789"
	adminToken = "admin-token-0123456789"
)

// bundle is a door on an in-process JetStream server with feeds hr and
// partner-acme, served over HTTP on loopback.
type bundle struct {
	js   jetstream.JetStream
	dec  *events.Decoder
	door *Door
	url  string
}

func setup(t *testing.T, lim Limits) *bundle {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true,
		StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	feeds, err := connector.NewFeeds(connector.DefaultFeed("hr", connector.FeedHR), connector.DefaultFeed("partner-acme", connector.FeedPartner))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := events.EnsureStreams(t.Context(), js, events.StreamConfig{}, feeds.Names()); err != nil {
		t.Fatal(err)
	}
	hash := func(tok string) string { h := sha256.Sum256([]byte(tok)); return hex.EncodeToString(h[:]) }
	dec := &events.Decoder{Feeds: feeds}
	d := &Door{JS: js, Decoder: dec, Limits: lim, Log: slog.New(slog.NewTextHandler(t.Output(), nil)),
		Tokens: roster.Tokens{Admin: adminToken, Feeds: feeds, Rosters: map[string]roster.Config{
			"hr": {UploadTokenSHA256: hash(hrToken)}, "partner-acme": {UploadTokenSHA256: hash(acmeToken)}}}}
	mux := http.NewServeMux()
	mux.Handle("POST /v1/events", d)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &bundle{js: js, dec: dec, door: d, url: srv.URL + "/v1/events"}
}

// hire is a valid hire of worker in feed, with id.
func hire(feed, worker, id string) event.Event {
	e := event.New(event.CloudEventsVersionV1)
	e.SetID(id)
	e.SetSource("/feeds/" + feed)
	e.SetType(events.Type(connector.KindHired))
	e.SetSubject(worker)
	e.SetTime(time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC))
	if err := e.SetData(events.ContentTypeJSON, map[string]string{"worker_id": worker, "email": worker + "@example.com",
		"effective": "2026-12-01"}); err != nil {
		panic(err)
	}
	return e
}

// request builds a POST of e in mode (structured or binary) with the SDK's HTTP binding.
func (b *bundle) request(t *testing.T, token string, e event.Event, structured bool) *http.Request {
	t.Helper()
	ctx := binding.WithForceBinary(t.Context())
	if structured {
		ctx = binding.WithForceStructured(t.Context())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cehttp.WriteRequest(ctx, (*binding.EventMessage)(&e), req); err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	return req
}

func (b *bundle) batch(t *testing.T, token string, es ...event.Event) *http.Request {
	t.Helper()
	body, err := json.Marshal(es)
	if err != nil {
		t.Fatal(err)
	}
	return b.raw(t, token, event.ApplicationCloudEventsBatchJSON, body)
}

func (b *bundle) raw(t *testing.T, token, contentType string, body []byte) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, b.url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Authorization", "Bearer "+token)
	return req
}

// do sends req and decodes the answer.
func do(t *testing.T, req *http.Request) (int, Answer) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a Answer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatalf("%d answer: %v", resp.StatusCode, err)
	}
	return resp.StatusCode, a
}

// stored returns the facts the feed's stream holds, decoded as the consumer decodes them.
func (b *bundle) stored(t *testing.T, feed string) []connector.Fact {
	t.Helper()
	st, err := b.js.Stream(t.Context(), events.StreamConfig{}.Name(feed))
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var facts []connector.Fact
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(t.Context(), seq)
		if err != nil {
			t.Fatal(err)
		}
		f, err := b.dec.Decode(m.Subject, m.Header, m.Data)
		if err != nil {
			t.Fatalf("stored message %d does not decode: %v", seq, err)
		}
		facts = append(facts, f)
	}
	return facts
}

func ids(facts []connector.Fact) string {
	var s []string
	for _, f := range facts {
		s = append(s, f.ID)
	}
	return strings.Join(s, ",")
}

func TestDoorModes(t *testing.T) {
	t.Parallel()
	b := setup(t, Limits{})
	if c, a := do(t, b.request(t, hrToken, hire("hr", "w-1", "evt-1"), true)); c != http.StatusAccepted || len(a.Events) != 1 || a.Events[0].Seq != 1 {
		t.Fatalf("structured: %d %+v", c, a)
	}
	if c, a := do(t, b.request(t, hrToken, hire("hr", "w-2", "evt-2"), false)); c != http.StatusAccepted || a.Events[0].Seq != 2 {
		t.Fatalf("binary: %d %+v", c, a)
	}
	c, a := do(t, b.batch(t, hrToken, hire("hr", "w-3", "evt-3"), hire("hr", "w-4", "evt-4")))
	if c != http.StatusAccepted || len(a.Events) != 2 || a.Events[1].Seq != 4 || a.Events[1].ID != "evt-4" {
		t.Fatalf("batch: %d %+v", c, a)
	}
	facts := b.stored(t, "hr")
	if got := ids(facts); got != "evt-1,evt-2,evt-3,evt-4" {
		t.Fatalf("stream holds %s", got)
	}
	if f := facts[1]; f.WorkerID != "w-2" || f.Kind != connector.KindHired || f.Profile.Email != "w-2@example.com" {
		t.Errorf("binary-mode event stored as %+v", f)
	}
	// The admin token publishes any feed's events.
	if c, a := do(t, b.request(t, adminToken, hire("partner-acme", "p-1", "evt-p1"), true)); c != http.StatusAccepted || a.Events[0].Feed != "partner-acme" {
		t.Fatalf("admin token, partner event: %d %+v", c, a)
	}
}

func TestDoorDuplicateStoredOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, Limits{})
	e := hire("hr", "w-1", "evt-1")
	if c, a := do(t, b.request(t, hrToken, e, true)); c != http.StatusAccepted || a.Events[0].Duplicate {
		t.Fatalf("first: %d %+v", c, a)
	}
	// The same event again, in the other mode and in a batch: stored once.
	c, a := do(t, b.request(t, hrToken, e, false))
	if c != http.StatusAccepted || !a.Events[0].Duplicate || a.Events[0].Seq != 1 {
		t.Fatalf("again: %d %+v; want 202, a duplicate of sequence 1", c, a)
	}
	c, a = do(t, b.batch(t, hrToken, e, hire("hr", "w-2", "evt-2")))
	if c != http.StatusAccepted || !a.Events[0].Duplicate || a.Events[1].Duplicate {
		t.Fatalf("in a batch: %d %+v", c, a)
	}
	if got := ids(b.stored(t, "hr")); got != "evt-1,evt-2" {
		t.Fatalf("stream holds %s; want each event once", got)
	}
}

func TestDoorRefusals(t *testing.T) {
	t.Parallel()
	b := setup(t, Limits{MaxBody: 8 << 10, MaxBatch: 3})
	bad := hire("hr", "w-1", "evt-bad")
	_ = bad.SetData(events.ContentTypeJSON, map[string]string{"worker_id": "w-1", "email": "w-1@example.com", "effective": "2026-13-01"})
	noID := hire("hr", "w-1", "")
	for _, tc := range []struct {
		name      string
		req       *http.Request
		status    int
		field     string
		wantError string
	}{
		{"BadEvent", b.request(t, hrToken, bad, true), 400, "data.effective", "not an RFC 3339 date"},
		{"BadEventBinary", b.request(t, hrToken, bad, false), 400, "data.effective", "not an RFC 3339 date"},
		{"NoID", b.raw(t, hrToken, event.ApplicationCloudEventsJSON, mustJSON(t, noID)), 400, "id", ""},
		{"UnknownSource", b.request(t, hrToken, hire("payroll", "w-1", "evt-x"), true), 400, "source", "no configured feed"},
		{"BadInBatch", b.batch(t, hrToken, hire("hr", "w-2", "evt-ok"), bad), 400, "data.effective", "1 of the batch's 2 events are invalid (the first, at index 1"},
		{"WrongToken", b.request(t, "guess", hire("hr", "w-1", "evt-1"), true), 401, "", "bearer token"},
		{"NoToken", b.request(t, "", hire("hr", "w-1", "evt-1"), true), 401, "", "bearer token"},
		{"AnotherFeedsToken", b.request(t, acmeToken, hire("hr", "w-1", "evt-1"), true), 403, "source",
			"the token of feed partner-acme may publish only feed partner-acme's events"},
		{"AnotherFeedInBatch", b.batch(t, acmeToken, hire("partner-acme", "p-1", "evt-p"), hire("hr", "w-1", "evt-1")), 403, "source",
			"1 of the batch's 2 events are another feed's (the first, at index 1"},
		{"TooLarge", b.raw(t, hrToken, event.ApplicationCloudEventsJSON, bytes.Repeat([]byte(" "), 9<<10)), 413, "", "limit of 8.0 KiB"},
		{"BatchTooLong", b.batch(t, hrToken, hire("hr", "a", "1"), hire("hr", "b", "2"), hire("hr", "c", "3"), hire("hr", "d", "4")), 413, "", "limit of 3"},
		{"NotACloudEvent", b.raw(t, hrToken, "text/csv", []byte("a,b\n")), 415, "content-type", "not a CloudEvents mode"},
		{"EmptyBatch", b.raw(t, hrToken, event.ApplicationCloudEventsBatchJSON, []byte("[]")), 400, "body", "no event"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, a := do(t, tc.req)
			if c != tc.status || a.Field != tc.field || !strings.Contains(a.Error, tc.wantError) {
				t.Errorf("%d %+v; want %d, field %q, an error saying %q", c, a, tc.status, tc.field, tc.wantError)
			}
		})
	}
	for _, feed := range []string{"hr", "partner-acme"} {
		if got := b.stored(t, feed); len(got) != 0 {
			t.Errorf("feed %s's stream holds %s after refusals only; want nothing", feed, ids(got))
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
