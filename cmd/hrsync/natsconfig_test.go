package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/events"
)

// Feed isolation is security, so it is tested as such: the shipped NATS
// configuration (deploy/nats/nats-server.conf) is run in-process, and each feed's
// credentials try to publish into the other feeds' subjects.
func TestNATSConfigIsolatesFeeds(t *testing.T) {
	ns, pass := startShippedNATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The connector creates the streams.
	conn := connectAs(t, ns, "hrsync", pass["HRSYNC_NATS_PASSWORD"], nil, events.ConnectorInboxPrefix)
	cjs, _ := jetstream.New(conn)
	if _, err := events.EnsureStreams(ctx, cjs, events.StreamConfig{}, shippedFeeds); err != nil {
		t.Fatalf("the connector's user cannot manage the streams: %v", err)
	}

	type attempt struct {
		user, password, feed string
		allowed              bool
	}
	attempts := []attempt{
		{"feed-partner-acme", pass["FEED_PARTNER_ACME_NATS_PASSWORD"], "partner-acme", true},
		{"feed-partner-acme", pass["FEED_PARTNER_ACME_NATS_PASSWORD"], "partner-globex", false},
		{"feed-partner-acme", pass["FEED_PARTNER_ACME_NATS_PASSWORD"], "hr", false},
		{"feed-partner-globex", pass["FEED_PARTNER_GLOBEX_NATS_PASSWORD"], "partner-acme", false},
		{"feed-hr", pass["FEED_HR_NATS_PASSWORD"], "hr", true},
		{"feed-hr", pass["FEED_HR_NATS_PASSWORD"], "partner-acme", false},
	}
	for i, a := range attempts {
		var mu sync.Mutex
		var violations []string
		nc := connectAs(t, ns, a.user, a.password, func(_ *nats.Conn, _ *nats.Subscription, err error) {
			mu.Lock()
			defer mu.Unlock()
			violations = append(violations, err.Error())
		}, events.FeedInboxPrefix(strings.TrimPrefix(a.user, "feed-")))
		js, _ := jetstream.New(nc)
		stream, err := cjs.Stream(ctx, events.StreamConfig{}.Name(a.feed))
		if err != nil {
			t.Fatal(err)
		}
		before, _ := stream.Info(ctx)
		e := events.Event{Feed: a.feed, Kind: connector.KindHired, ID: "attack-" + string(rune('a'+i)), Source: "/feeds/" + a.feed,
			Time: time.Now().UTC(), Data: events.Data{WorkerID: "w1", Email: "x@example.com", Effective: "2026-12-01"}}
		msg, err := events.Encode(e, events.Binary)
		if err != nil {
			t.Fatal(err)
		}
		pctx, pcancel := context.WithTimeout(ctx, time.Second) // a denied publish gets no ack
		_, perr := js.PublishMsg(pctx, msg)
		pcancel()
		_ = nc.FlushTimeout(2 * time.Second)
		after, _ := stream.Info(ctx)
		stored := after.State.Msgs - before.State.Msgs
		mu.Lock()
		denied := strings.Contains(strings.Join(violations, ";"), "Permissions Violation")
		mu.Unlock()
		switch {
		case a.allowed && (perr != nil || stored != 1):
			t.Errorf("%s publishing to its own feed %s: err %v, stored %d", a.user, a.feed, perr, stored)
		case !a.allowed && (perr == nil || stored != 0 || !denied):
			t.Errorf("%s published into feed %s: err %v, stored %d, server said %v", a.user, a.feed, perr, stored, violations)
		}
		nc.Close()
	}

	// A wrong password is refused outright.
	_, err := nats.Connect(ns.ClientURL(), nats.UserInfo("feed-partner-acme", "guess"), nats.MaxReconnects(0))
	if err == nil || !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Errorf("wrong password: %v, want an authorization error", err)
	}
}

func connectAs(t *testing.T, ns *server.Server, user, password string, onErr nats.ErrHandler, inbox string) *nats.Conn {
	t.Helper()
	opts := []nats.Option{nats.UserInfo(user, password), nats.MaxReconnects(0), nats.CustomInboxPrefix(inbox)}
	if onErr != nil {
		opts = append(opts, nats.ErrorHandler(onErr))
	}
	nc, err := nats.Connect(ns.ClientURL(), opts...)
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// shippedFeeds are the feeds deploy/nats/nats-server.conf declares users for.
var shippedFeeds = []string{"hr", "partner-acme", "partner-globex"}

// startShippedNATS runs deploy/nats/nats-server.conf in process, on a random
// loopback port, and returns the server and the users' passwords.
func startShippedNATS(t *testing.T) (*server.Server, map[string]string) {
	t.Helper()
	// t.Setenv: the configuration reads the passwords from the environment.
	pass := map[string]string{
		"HRSYNC_NATS_PASSWORD":              "s3cret-connector",
		"FEED_HR_NATS_PASSWORD":             "s3cret-hr",
		"FEED_PARTNER_ACME_NATS_PASSWORD":   "s3cret-acme",
		"FEED_PARTNER_GLOBEX_NATS_PASSWORD": "s3cret-globex",
	}
	for k, v := range pass {
		t.Setenv(k, v)
	}
	opts := &server.Options{}
	if err := opts.ProcessConfigFile("../../deploy/nats/nats-server.conf"); err != nil {
		t.Fatalf("deploy/nats/nats-server.conf: %v", err)
	}
	opts.Host, opts.Port, opts.HTTPPort, opts.StoreDir = "127.0.0.1", -1, 0, t.TempDir()
	opts.NoSigs, opts.NoLog = true, true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS not ready")
	}
	return ns, pass
}

// The shipped monitoring endpoint shows user names and subscriptions: it must not
// listen beyond loopback.
func TestNATSConfigMonitoringOnLoopback(t *testing.T) {
	opts := &server.Options{}
	t.Setenv("HRSYNC_NATS_PASSWORD", "x")
	t.Setenv("FEED_HR_NATS_PASSWORD", "x")
	t.Setenv("FEED_PARTNER_ACME_NATS_PASSWORD", "x")
	t.Setenv("FEED_PARTNER_GLOBEX_NATS_PASSWORD", "x")
	if err := opts.ProcessConfigFile("../../deploy/nats/nats-server.conf"); err != nil {
		t.Fatal(err)
	}
	if opts.HTTPPort != 0 && opts.HTTPHost != "127.0.0.1" && opts.HTTPHost != "localhost" && opts.HTTPHost != "::1" {
		t.Errorf("monitoring listens on %s:%d, want loopback", opts.HTTPHost, opts.HTTPPort)
	}
	if opts.HTTPSPort != 0 {
		t.Errorf("monitoring over TLS on port %d: check that it is protected", opts.HTTPSPort)
	}
}

// feedRecorder is a Recorder that keeps the facts in memory, for the attacks.
type feedRecorder struct {
	mu    sync.Mutex
	facts map[string]connector.Fact
	dead  []connector.DeadLetter
}

func (r *feedRecorder) RecordFacts(_ context.Context, facts []connector.Fact) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, f := range facts {
		if _, ok := r.facts[f.Source+" "+f.ID]; !ok {
			r.facts[f.Source+" "+f.ID] = f
			n++
		}
	}
	return n, nil
}

func (r *feedRecorder) DeadLetter(_ context.Context, d connector.DeadLetter) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dead = append(r.dead, d)
	return int64(len(r.dead)), nil
}

func (r *feedRecorder) has(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.facts[key]
	return ok
}

// attackBench is the shipped NATS configuration with hrsync's streams, and the
// connector consuming them as the daemon does.
type attackBench struct {
	ns   *server.Server
	pass map[string]string
	cjs  jetstream.JetStream
	rec  *feedRecorder
}

func newAttackBench(t *testing.T, sc events.StreamConfig) *attackBench {
	t.Helper()
	ns, pass := startShippedNATS(t)
	b := &attackBench{ns: ns, pass: pass, rec: &feedRecorder{facts: map[string]connector.Fact{}}}
	conn := connectAs(t, ns, "hrsync", pass["HRSYNC_NATS_PASSWORD"], nil, events.ConnectorInboxPrefix)
	b.cjs, _ = jetstream.New(conn)
	if _, err := events.EnsureStreams(t.Context(), b.cjs, sc, shippedFeeds); err != nil {
		t.Fatal(err)
	}
	return b
}

// consume runs the connector's consumer until the test ends.
func (b *attackBench) consume(t *testing.T) {
	t.Helper()
	var feeds []connector.Feed
	for _, f := range shippedFeeds {
		kind := connector.FeedPartner
		if f == "hr" {
			kind = connector.FeedHR
		}
		feeds = append(feeds, connector.DefaultFeed(f, kind))
	}
	fs, err := connector.NewFeeds(feeds...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- events.Consume(ctx, b.cjs, &events.Decoder{Feeds: fs}, b.rec, events.ConsumerConfig{MaxWait: 5 * time.Millisecond})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Consume: %v", err)
		}
	})
}

// feed connects as feed's NATS user, collecting the server's permission errors.
func (b *attackBench) feed(t *testing.T, feed string) (jetstream.JetStream, *nats.Conn, func() []string) {
	t.Helper()
	var mu sync.Mutex
	var errs []string
	nc := connectAs(t, b.ns, "feed-"+feed, b.pass["FEED_"+strings.ToUpper(strings.ReplaceAll(feed, "-", "_"))+"_NATS_PASSWORD"],
		func(_ *nats.Conn, _ *nats.Subscription, err error) {
			mu.Lock()
			defer mu.Unlock()
			errs = append(errs, err.Error())
		}, events.FeedInboxPrefix(feed))
	js, _ := jetstream.New(nc)
	return js, nc, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), errs...) }
}

func hrEvent(kind connector.Kind, id, worker string) events.Event {
	d := events.Data{WorkerID: worker, Effective: "2026-12-01"}
	if kind == connector.KindHired {
		d.Email, d.GivenName, d.FamilyName = worker+"@example.com", "Jane", "Private"
	} else {
		d.Reason = "personal reasons, confidential"
	}
	return events.Event{Feed: "hr", Kind: kind, ID: id, Source: "/feeds/hr", Time: time.Now().UTC(), Data: d}
}

// A partner tries to read what it must not: hrsync's inbox (where the pull consumer
// receives every event), the shared inbox namespace, the JetStream API, and the
// other feeds' subjects. Every subscription is refused, and while HR events flow
// through hrsync the partner receives nothing.
func TestNATSPartnerCannotReadOtherFeeds(t *testing.T) {
	b := newAttackBench(t, events.StreamConfig{})
	_, acme, acmeErrs := b.feed(t, "partner-acme")
	targets := []string{"_INBOX.>", events.ConnectorInboxPrefix + ".>", "$JS.>", "$JS.API.>", "$JS.ACK.>",
		"hrsync.events.>", "hrsync.events.hr.>", "hrsync.events.partner-globex.>", "_INBOX.hr.>", "_INBOX.partner-globex.>", ">"}
	var mu sync.Mutex
	stolen := map[string]int{}
	for _, subj := range targets {
		if _, err := acme.Subscribe(subj, func(m *nats.Msg) {
			mu.Lock()
			stolen[subj]++
			mu.Unlock()
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := acme.FlushTimeout(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	b.consume(t)

	hr, _, _ := b.feed(t, "hr")
	for i := range 20 {
		if _, err := events.Publish(t.Context(), hr, hrEvent(connector.KindHired, fmt.Sprintf("hire-%d", i), fmt.Sprintf("w-%d", i)), events.Binary); err != nil {
			t.Fatalf("HR publishes its own event: %v", err)
		}
	}
	waitUntil(t, 10*time.Second, "hrsync records HR's events", func() bool { return b.rec.has("/feeds/hr hire-19") })
	_ = acme.FlushTimeout(2 * time.Second)

	mu.Lock()
	defer mu.Unlock()
	for subj, n := range stolen {
		if n > 0 {
			t.Errorf("partner-acme subscribed to %s and received %d messages", subj, n)
		}
	}
	denied := strings.Join(acmeErrs(), "\n")
	for _, subj := range targets {
		if !strings.Contains(denied, `Subscription to "`+subj+`"`) {
			t.Errorf("the server did not refuse partner-acme's subscription to %s (errors: %s)", subj, denied)
		}
	}
}

// A partner publishes junk on its own subject with the Nats-Msg-Id that HR's next
// leave will carry. The leave must not be dropped as a duplicate.
func TestNATSPartnerCannotSuppressHREvents(t *testing.T) {
	b := newAttackBench(t, events.StreamConfig{})
	acme, _, _ := b.feed(t, "partner-acme")
	leave := hrEvent(connector.KindLeft, "hr-leave-42", "w-42")
	predicted := leave.Source + " " + leave.ID // what the publisher sets as Nats-Msg-Id
	for _, subj := range []string{"hrsync.events.partner-acme.left", "hrsync.events.partner-acme.hired"} {
		msg := &nats.Msg{Subject: subj, Header: nats.Header{}, Data: []byte(`{"junk":true}`)}
		msg.Header.Set(jetstream.MsgIDHeader, predicted)
		if _, err := acme.PublishMsg(t.Context(), msg); err != nil {
			t.Fatalf("partner publishes on its own subject: %v", err)
		}
	}
	hr, _, _ := b.feed(t, "hr")
	ack, err := events.Publish(t.Context(), hr, leave, events.Binary)
	if err != nil {
		t.Fatal(err)
	}
	if ack.Duplicate {
		t.Fatalf("HR's leave was dropped as a duplicate of the partner's junk (stream %s)", ack.Stream)
	}
	b.consume(t)
	waitUntil(t, 10*time.Second, "hrsync records HR's leave", func() bool { return b.rec.has(predicted) })
	// The partner's own duplicates are still dropped within its feed.
	msg := &nats.Msg{Subject: "hrsync.events.partner-acme.left", Header: nats.Header{}, Data: []byte(`{"junk":true}`)}
	msg.Header.Set(jetstream.MsgIDHeader, predicted)
	if ack, err := acme.PublishMsg(t.Context(), msg); err != nil || !ack.Duplicate {
		t.Errorf("a re-publish within the partner's own feed: %+v, %v; want a duplicate", ack, err)
	}
}

// A partner floods its own subjects past its stream's limit while hrsync lags. The
// flood is refused at the partner's door; HR's unconsumed events all stay and all
// arrive, and nothing the partner had sent before is evicted either.
func TestNATSPartnerFloodCannotEvictOtherFeeds(t *testing.T) {
	const limit = 256 << 10
	b := newAttackBench(t, events.StreamConfig{PerFeed: map[string]events.StreamLimits{"partner-acme": {MaxBytes: limit}}})
	hr, _, _ := b.feed(t, "hr")
	for i := range 5 {
		if _, err := events.Publish(t.Context(), hr, hrEvent(connector.KindHired, fmt.Sprintf("hire-%d", i), fmt.Sprintf("w-%d", i)), events.Binary); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := events.Publish(t.Context(), hr, hrEvent(connector.KindLeft, "leave-0", "w-0"), events.Binary); err != nil {
		t.Fatal(err)
	}
	acme, _, _ := b.feed(t, "partner-acme")
	junk := make([]byte, 32<<10)
	accepted, refused := 0, 0
	for i := range 40 { // 1.25 MB against a 256 KiB limit
		msg := &nats.Msg{Subject: "hrsync.events.partner-acme.hired", Header: nats.Header{}, Data: junk}
		msg.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("junk-%d", i))
		if _, err := acme.PublishMsg(t.Context(), msg); err != nil {
			refused++
		} else {
			accepted++
		}
	}
	if refused == 0 {
		t.Fatalf("the partner published %d junk messages past its %d-byte limit and none was refused", accepted, limit)
	}
	hrStream, err := b.cjs.Stream(t.Context(), events.StreamConfig{}.Name("hr"))
	if err != nil {
		t.Fatal(err)
	}
	if st := hrStream.CachedInfo().State; st.Msgs != 6 {
		t.Errorf("HR's stream holds %d messages after the flood, want 6", st.Msgs)
	}
	acmeStream, err := b.cjs.Stream(t.Context(), events.StreamConfig{}.Name("partner-acme"))
	if err != nil {
		t.Fatal(err)
	}
	if st := acmeStream.CachedInfo().State; st.FirstSeq != 1 || int(st.Msgs) != accepted {
		t.Errorf("the partner's stream: first seq %d, %d messages; want 1 and %d (nothing evicted)", st.FirstSeq, st.Msgs, accepted)
	}
	b.consume(t)
	waitUntil(t, 10*time.Second, "hrsync records all of HR's events", func() bool {
		for i := range 5 {
			if !b.rec.has(fmt.Sprintf("/feeds/hr hire-%d", i)) {
				return false
			}
		}
		return b.rec.has("/feeds/hr leave-0")
	})
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting until %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
