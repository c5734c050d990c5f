package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsserver "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hrsync/hrsync/events"
	"github.com/hrsync/hrsync/store/pgtest"
)

// TestClusterFaults runs three "hrsync run" replicas on one PostgreSQL database
// against a three-node JetStream cluster whose stream has three replicas, and,
// while a scenario of hires, leaves and rehires is published, breaks what they
// depend on, one fault after the other: the stream leader's node is killed and
// brought back, then the node a replica is connected to; a replica is SIGKILLed
// and restarted; the replicas' database connections are terminated again and
// again; the database refuses new connections for 20 s. The end must be exact:
// every fact once, every account as the facts imply, no duplicate account, no
// action done twice, nothing valid in the dead-letter store. It logs the time
// each fault took to recover from (every replica ready again), the figures the
// README reports.
func TestClusterFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("the cluster fault test takes minutes; it runs without -short")
	}
	t.Parallel()
	z := sizes{persons: 1500, leavers: 500, rehires: 200, newIDs: 40, newEmails: 50, dups: 100, malformed: 20, seeds: 30}
	seed := testSeed(t)
	sc := newScenario(seed, z)
	t.Logf("scenario %s (replay with HRSYNC_E2E_SEED=%d)", sc.summary(), seed)

	cl := startCluster(t, 3)
	dbURL, admin := clusterDatabase(t)
	migrateDB(t, dbURL)
	db := openStore(t, dbURL)
	lms := startLMS(t, nil)
	js := connectCluster(t, cl.urls())

	cfg := filepath.Join(t.TempDir(), "hrsync.yaml")
	const cfgText = "safeguard: {percent: 100, count: 0, min_removals: 1000000, settle: 0s}\nstream: {replicas: 3}\n"
	if err := os.WriteFile(cfg, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	replicas := make([]*replica, 3)
	for i := range replicas {
		r := &replica{name: fmt.Sprintf("replica-%d", i), admin: freeAddr(t)}
		r.args = []string{"hrsync", "run", "--config", cfg,
			"--lms-url", lms.url, "--lms-token", lms.token, "--nats-url", strings.Join(cl.urls(), ","), "--db", dbURL,
			"--admin-addr", r.admin, "--lease", finalLease.String(), "--poll-interval", "250ms",
			"--log-format", "json", "--log-level", "info"}
		r.d = startDaemon(t, r.name, r.args)
		replicas[i] = r
	}
	allReady := func() (bool, string) {
		for _, r := range replicas {
			if code, body := probe(r.admin, "/readyz"); code != http.StatusOK {
				return false, fmt.Sprintf("%s /readyz %d %s", r.name, code, strings.TrimSpace(body))
			}
		}
		return true, ""
	}
	waitFor(t, 60*time.Second, "every replica ready", allReady)

	// The scenario is published while the faults happen, paced so that it lasts
	// through them; a publish that fails (no stream leader yet, the node gone) is
	// sent again: the event id is the Nats-Msg-Id, so JetStream stores it once.
	var msgs []*nats.Msg
	for _, w := range sc.waves {
		msgs = append(msgs, w...)
	}
	var published atomic.Int64
	pubErr := make(chan error, 1)
	go func() { pubErr <- publishThrough(t.Context(), js, msgs, 40*time.Second, &published) }()

	seeded := map[int]string{}
	var seedMu sync.Mutex
	seedNow := func() {
		seedMu.Lock()
		defer seedMu.Unlock()
		sc.seedCompletions(t, lms.sb, seeded)
	}
	var recoveries []string
	// recovered waits until every replica is ready again after a fault that
	// began at began and was repaired at ended, and records how long that took
	// from the repair, and how long until the LMS saw the next action.
	recovered := func(fault string, began, ended time.Time, opsBefore int) {
		ops := len(lms.sb.Ops())
		during := ops - opsBefore
		waitFor(t, 90*time.Second, "every replica ready after: "+fault, func() (bool, string) {
			seedNow()
			return allReady()
		})
		ready := time.Since(ended)
		progress := "no work left"
		if published.Load() < int64(len(msgs)) || !lmsSettled(sc, lms, seeded, &seedMu) {
			waitFor(t, 90*time.Second, "the LMS acted on after: "+fault, func() (bool, string) {
				seedNow()
				return len(lms.sb.Ops()) > ops || time.Since(ended) > 60*time.Second, "no new LMS action"
			})
			progress = "next LMS action " + time.Since(ended).Round(100*time.Millisecond).String() + " after"
		}
		r := fmt.Sprintf("%s (lasted %v, %d LMS actions meanwhile): ready %v after the repair, %s", fault,
			ended.Sub(began).Round(100*time.Millisecond), during, ready.Round(100*time.Millisecond), progress)
		recoveries = append(recoveries, r)
		t.Logf("fault: %s (published %d of %d, LMS %d accounts, %d ops)", r, published.Load(), len(msgs), lms.sb.Count(), len(lms.sb.Ops()))
	}
	healthy := func() {
		for _, r := range replicas {
			if code, _ := probe(r.admin, "/healthz"); code != http.StatusOK {
				t.Errorf("%s /healthz answered %d during a fault: the process is alive and must say so", r.name, code)
			}
		}
	}
	pause := func(d time.Duration) {
		end := time.Now().Add(d)
		for time.Now().Before(end) {
			seedNow()
			time.Sleep(250 * time.Millisecond)
		}
	}
	pause(3 * time.Second)

	// 1. The stream leader's node goes away, and comes back 5 s later.
	leader := cl.streamLeader(t, js)
	began, opsBefore := time.Now(), len(lms.sb.Ops())
	cl.stop(leader)
	pause(5 * time.Second)
	healthy()
	cl.restart(t, leader)
	recovered("stream leader's node killed and brought back", began, time.Now(), opsBefore)

	// 2. The node a replica is connected to goes away, and comes back.
	node := cl.nodeWithClient(t, "hrsync")
	began, opsBefore = time.Now(), len(lms.sb.Ops())
	cl.stop(node)
	pause(5 * time.Second)
	healthy()
	cl.restart(t, node)
	recovered("a replica's NATS node killed and brought back", began, time.Now(), opsBefore)

	// 3. A replica is SIGKILLed and restarted a second later.
	victim := replicas[1]
	began, opsBefore = time.Now(), len(lms.sb.Ops())
	victim.d.kill()
	if !victim.d.waitExit(10 * time.Second) {
		t.Fatalf("%s did not exit within 10s of SIGKILL", victim.name)
	}
	pause(time.Second)
	victim.d = startDaemon(t, victim.name+"-restarted", victim.args)
	recovered("a replica SIGKILLed and restarted", began, time.Now(), opsBefore)

	// 4. The replicas' database connections are terminated, five times.
	dbName := strings.TrimPrefix(mustParse(t, dbURL).Path, "/")
	began, opsBefore = time.Now(), len(lms.sb.Ops())
	for range 5 {
		terminateConnections(t, admin, dbName)
		pause(time.Second)
	}
	healthy()
	recovered("database connections terminated 5 times, 1 s apart", began, time.Now(), opsBefore)

	// 5. The database refuses new connections for 20 s.
	began, opsBefore = time.Now(), len(lms.sb.Ops())
	execAdmin(t, admin, `ALTER DATABASE `+dbName+` ALLOW_CONNECTIONS false`)
	refused := true
	t.Cleanup(func() {
		if refused {
			execAdmin(t, admin, `ALTER DATABASE `+dbName+` ALLOW_CONNECTIONS true`)
		}
	})
	terminateConnections(t, admin, dbName)
	sawWhy := ""
	for time.Since(began) < 20*time.Second {
		for _, r := range replicas {
			if code, body := probe(r.admin, "/readyz"); code == http.StatusServiceUnavailable && strings.Contains(body, "store") {
				sawWhy = strings.TrimSpace(body)
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	healthy()
	execAdmin(t, admin, `ALTER DATABASE `+dbName+` ALLOW_CONNECTIONS true`)
	refused = false
	allowed := time.Now()
	if sawWhy == "" {
		t.Errorf("no replica's /readyz named the store while the database refused connections")
	} else {
		t.Logf("while the database refused connections, /readyz said: %s", sawWhy)
	}
	recovered("database refusing new connections", began, allowed, opsBefore)

	select {
	case err := <-pubErr:
		if err != nil {
			t.Fatalf("publishing the scenario: %v", err)
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("publishing the scenario did not end: %d of %d published", published.Load(), len(msgs))
	}
	began = time.Now()
	waitFor(t, settleTimeout, "final state after the faults", func() (bool, string) {
		seedNow()
		return sc.settled(t.Context(), js, lms.sb, db, seeded)
	})
	t.Logf("settled %v after the last fault", time.Since(began).Round(100*time.Millisecond))
	for _, r := range replicas {
		r.d.terminate(t, 30*time.Second)
	}
	sc.checkFinal(t, lms.sb, db, seeded)
	t.Logf("cluster faults and recovery:\n\t%s", strings.Join(recoveries, "\n\t"))
	t.Logf("LMS: %d accounts, %s; %d messages published (%d valid events)", lms.sb.Count(), opsSummary(lms.sb), len(msgs), sc.valid)
}

// lmsSettled reports whether the LMS already shows the scenario's end.
func lmsSettled(sc *scenario, lms *testLMS, seeded map[int]string, mu *sync.Mutex) bool {
	mu.Lock()
	defer mu.Unlock()
	return len(sc.lmsMismatch(lms.sb, seeded)) == 0
}

// replica is one "hrsync run" of the cluster test, restartable with its args.
type replica struct {
	name  string
	admin string
	args  []string
	d     *daemon
}

// natsCluster is a JetStream cluster of in-process nats-server nodes on
// loopback, each restartable on its ports and its store.
type natsCluster struct {
	mu    sync.Mutex
	opts  []*server.Options
	nodes []*server.Server // nil while stopped
}

// startCluster starts n clustered JetStream nodes and waits for a meta leader.
func startCluster(t *testing.T, n int) *natsCluster {
	t.Helper()
	c := &natsCluster{nodes: make([]*server.Server, n)}
	ports := make([]int, n)
	for i := range ports {
		ports[i] = freePort(t)
	}
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	for i := range n {
		o := natsserver.DefaultTestOptions
		o.ServerName = fmt.Sprintf("n%d", i+1)
		o.Host = "127.0.0.1"
		o.Port = freePort(t)
		o.JetStream = true
		o.StoreDir = t.TempDir()
		o.Cluster.Name = "hrsync-test"
		o.Cluster.Host = "127.0.0.1"
		o.Cluster.Port = ports[i]
		o.Routes = server.RoutesFromStr(strings.Join(routes, ","))
		c.opts = append(c.opts, &o)
	}
	for i := range n {
		c.restartIndex(t, i)
	}
	t.Cleanup(func() {
		for i := range n {
			c.stopIndex(i)
		}
	})
	waitFor(t, 30*time.Second, "a JetStream meta leader", func() (bool, string) {
		for _, s := range c.running() {
			if s.JetStreamIsLeader() {
				return true, ""
			}
		}
		return false, "no meta leader yet"
	})
	return c
}

func (c *natsCluster) urls() []string {
	var us []string
	for _, o := range c.opts {
		us = append(us, fmt.Sprintf("nats://127.0.0.1:%d", o.Port))
	}
	return us
}

func (c *natsCluster) running() []*server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*server.Server
	for _, s := range c.nodes {
		if s != nil {
			out = append(out, s)
		}
	}
	return out
}

func (c *natsCluster) index(name string) int {
	for i, o := range c.opts {
		if o.ServerName == name {
			return i
		}
	}
	return -1
}

func (c *natsCluster) stop(name string) { c.stopIndex(c.index(name)) }

func (c *natsCluster) stopIndex(i int) {
	c.mu.Lock()
	s := c.nodes[i]
	c.nodes[i] = nil
	c.mu.Unlock()
	if s != nil {
		s.Shutdown()
		s.WaitForShutdown()
	}
}

func (c *natsCluster) restart(t *testing.T, name string) { c.restartIndex(t, c.index(name)) }

func (c *natsCluster) restartIndex(t *testing.T, i int) {
	t.Helper()
	o := *c.opts[i]
	s, err := server.NewServer(&o)
	if err != nil {
		t.Fatalf("nats node %s: %v", o.ServerName, err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatalf("nats node %s not ready for connections within 10s", o.ServerName)
	}
	c.mu.Lock()
	c.nodes[i] = s
	c.mu.Unlock()
}

// streamLeader is the name of the node that leads the hr feed's stream.
func (c *natsCluster) streamLeader(t *testing.T, js jetstream.JetStream) string {
	t.Helper()
	var leader string
	waitFor(t, 30*time.Second, "the stream's leader", func() (bool, string) {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		st, err := js.Stream(ctx, events.StreamConfig{}.Name("hr"))
		if err != nil {
			return false, err.Error()
		}
		info, err := st.Info(ctx)
		if err != nil || info.Cluster == nil || info.Cluster.Leader == "" {
			return false, fmt.Sprintf("no leader yet (%v)", err)
		}
		leader = info.Cluster.Leader
		return true, ""
	})
	return leader
}

// nodeWithClient is the name of a running node that a client called name is
// connected to.
func (c *natsCluster) nodeWithClient(t *testing.T, name string) string {
	t.Helper()
	var node string
	waitFor(t, 30*time.Second, "a node with a client named "+name, func() (bool, string) {
		for _, s := range c.running() {
			cz, err := s.Connz(&server.ConnzOptions{Limit: 1024})
			if err != nil {
				continue
			}
			for _, ci := range cz.Conns {
				if ci.Name == name {
					node = s.Name()
					return true, ""
				}
			}
		}
		return false, "no such client"
	})
	return node
}

// connectCluster connects the test to the cluster and makes sure the hr
// stream exists with three replicas, as the daemons' configuration says.
func connectCluster(t *testing.T, urls []string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(strings.Join(urls, ","), nats.Name("hrsync-cluster-test"), nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond))
	if err != nil {
		t.Fatalf("connect to the NATS cluster: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the hr stream with three replicas", func() (bool, string) {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		_, err := events.EnsureStreams(ctx, js, events.StreamConfig{Replicas: 3}, []string{"hr"})
		return err == nil, fmt.Sprint(err)
	})
	return js
}

// publishThrough publishes msgs in order, spread over about d, each sent again
// until JetStream acknowledges it (at most 60 s for one message).
func publishThrough(ctx context.Context, js jetstream.JetStream, msgs []*nats.Msg, d time.Duration, n *atomic.Int64) error {
	gap := d / time.Duration(len(msgs)+1)
	for _, m := range msgs {
		deadline := time.Now().Add(60 * time.Second)
		for {
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := js.PublishMsg(pctx, m)
			cancel()
			if err == nil {
				break
			}
			if ctx.Err() != nil || time.Now().After(deadline) {
				return fmt.Errorf("publish to %s: %w", m.Subject, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		n.Add(1)
		time.Sleep(gap)
	}
	return nil
}

// clusterDatabase creates a database of its own for the test (a fault refuses
// connections to the whole database, so a schema is not enough), drops it when
// the test ends, and returns its URL and the URL of the server's admin database.
func clusterDatabase(t *testing.T) (string, string) {
	t.Helper()
	_ = pgtest.URL(t) // skips, or fails under HRSYNC_REQUIRE_POSTGRES=1, when PostgreSQL is unreachable
	admin := pgtest.ServerURL()
	name := fmt.Sprintf("hrsync_cluster_%08x", rand.Uint32())
	execAdmin(t, admin, `CREATE DATABASE `+name)
	t.Cleanup(func() { execAdmin(t, admin, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`) })
	u := mustParse(t, admin)
	u.Path = "/" + name
	return u.String(), admin
}

func execAdmin(t *testing.T, admin, stmt string) {
	t.Helper()
	db, err := sql.Open("postgres", admin)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, stmt); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

// terminateConnections ends every connection to database name but the caller's.
func terminateConnections(t *testing.T, admin, name string) {
	t.Helper()
	execAdmin(t, admin, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '`+name+`' AND pid <> pg_backend_pid()`)
}

func mustParse(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// probe GETs path on the admin address addr and returns the status and body
// (0 when it cannot connect).
func probe(addr, path string) (int, string) {
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(b)
}

// freePort is a loopback TCP port free at the time of the call.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func freeAddr(t *testing.T) string { return "127.0.0.1:" + strconv.Itoa(freePort(t)) }
