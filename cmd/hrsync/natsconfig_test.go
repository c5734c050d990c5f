package main

import (
	"context"
	"errors"
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
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The connector creates the stream.
	conn := connectAs(t, ns, "hrsync", pass["HRSYNC_NATS_PASSWORD"], nil)
	cjs, _ := jetstream.New(conn)
	stream, err := events.EnsureStream(ctx, cjs, events.StreamConfig{})
	if err != nil {
		t.Fatalf("the connector's user cannot manage the stream: %v", err)
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
		})
		js, _ := jetstream.New(nc)
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
	_, err = nats.Connect(ns.ClientURL(), nats.UserInfo("feed-partner-acme", "guess"), nats.MaxReconnects(0))
	if err == nil || !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Errorf("wrong password: %v, want an authorization error", err)
	}
}

func connectAs(t *testing.T, ns *server.Server, user, password string, onErr nats.ErrHandler) *nats.Conn {
	t.Helper()
	opts := []nats.Option{nats.UserInfo(user, password), nats.MaxReconnects(0)}
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
