package main

// The cluster fault test (issue #15): a three-node JetStream cluster of
// in-process nats-servers on loopback, the feed's stream with three replicas,
// three "hrsync run" replicas as OS processes on one PostgreSQL database of
// their own, and a load of hire, leave and rehire events published while
// faults are injected. The end state must be exact.

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hrsync/hrsync/events"
	"github.com/hrsync/hrsync/store/pgtest"
)

// natsCluster is three in-process JetStream servers routed to each other, on
// fixed loopback ports so that a node can be stopped and started again.
type natsCluster struct {
	t     *testing.T
	mu    sync.Mutex
	opts  []*server.Options
	nodes []*server.Server // nil: stopped
}

func startCluster(t *testing.T) *natsCluster {
	t.Helper()
	c := &natsCluster{t: t}
	var routes []string
	var client, cluster []int
	for range 3 {
		client, cluster = append(client, freeLoopbackPort(t)), append(cluster, freeLoopbackPort(t))
		routes = append(routes, "nats://127.0.0.1:"+strconv.Itoa(cluster[len(cluster)-1]))
	}
	for i := range 3 {
		c.opts = append(c.opts, &server.Options{ServerName: "n" + strconv.Itoa(i+1), Host: "127.0.0.1", Port: client[i],
			JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
			Cluster: server.ClusterOpts{Name: "hrsync-test", Host: "127.0.0.1", Port: cluster[i]},
			Routes:  server.RoutesFromStr(strings.Join(routes, ","))})
		c.nodes = append(c.nodes, nil)
	}
	for i := range 3 {
		c.start(i)
	}
	t.Cleanup(func() {
		for i := range 3 {
			c.stop(i)
		}
	})
	return c
}

// start starts node i (again).
func (c *natsCluster) start(i int) {
	c.t.Helper()
	o := *c.opts[i]
	ns, err := server.NewServer(&o)
	if err != nil {
		c.t.Fatalf("node %d: %v", i+1, err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(20 * time.Second) {
		c.t.Fatalf("node %s not ready", o.ServerName)
	}
	c.mu.Lock()
	c.nodes[i] = ns
	c.mu.Unlock()
}

// stop shuts node i down, as a crash would (no lame-duck mode).
func (c *natsCluster) stop(i int) {
	c.mu.Lock()
	ns := c.nodes[i]
	c.nodes[i] = nil
	c.mu.Unlock()
	if ns != nil {
		ns.Shutdown()
		ns.WaitForShutdown()
	}
}

// urls are the client URLs of every node.
func (c *natsCluster) urls() string {
	var u []string
	for _, o := range c.opts {
		u = append(u, "nats://127.0.0.1:"+strconv.Itoa(o.Port))
	}
	return strings.Join(u, ",")
}

// index returns the node named name.
func (c *natsCluster) index(name string) int {
	for i, o := range c.opts {
		if o.ServerName == name {
			return i
		}
	}
	return -1
}

// withHrsyncClient returns a running node other than skip with an hrsync
// daemon connected to it, or -1.
func (c *natsCluster) withHrsyncClient(skip int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, ns := range c.nodes {
		if ns == nil || i == skip {
			continue
		}
		cz, err := ns.Connz(&server.ConnzOptions{})
		if err != nil {
			continue
		}
		for _, ci := range cz.Conns {
			if ci.Name == "hrsync" {
				return i
			}
		}
	}
	return -1
}

// ownDatabase creates a PostgreSQL database for the test (a schema is not
// enough: the test refuses connections to the whole database), drops it when
// the test ends, and returns its URL and an admin connection to another database.
func ownDatabase(t *testing.T) (string, *sql.DB) {
	t.Helper()
	_ = pgtest.URL(t) // skips, or fails under HRSYNC_REQUIRE_POSTGRES=1, when the server is away
	base := pgtest.ServerURL()
	admin, err := sql.Open("postgres", base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "hrsync_c_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(t.Context(), "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		_, _ = admin.ExecContext(ctx, "ALTER DATABASE "+name+" ALLOW_CONNECTIONS true")
		if _, err := admin.ExecContext(ctx, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			// Not the test's failure: say what is left behind.
			t.Logf("WARNING: database %s was not dropped (%v); drop it by hand", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String(), admin
}

// replica is one daemon with its admin port.
type replica struct {
	*daemon
	admin string
}

func (r *replica) readyz() (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.admin+"/readyz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 512)
	n, _ := resp.Body.Read(buf)
	b.Write(buf[:n])
	return resp.StatusCode, strings.TrimSpace(b.String())
}

func (r *replica) healthz() int {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.admin+"/healthz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// publisher publishes messages in the background, retrying each (bounded)
// while the cluster elects leaders: a resend is harmless (Nats-Msg-Id, and the
// store dedupes).
type publisher struct {
	js   jetstream.JetStream
	done chan error
}

func startPublisher(js jetstream.JetStream, msgs []*nats.Msg) *publisher {
	p := &publisher{js: js, done: make(chan error, 1)}
	go func() {
		for _, m := range msgs {
			var err error
			for attempt := 0; attempt < 120; attempt++ {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, err = js.PublishMsg(ctx, m)
				cancel()
				if err == nil {
					break
				}
				time.Sleep(250 * time.Millisecond)
			}
			if err != nil {
				p.done <- fmt.Errorf("publish to %s: %w", m.Subject, err)
				return
			}
		}
		p.done <- nil
	}()
	return p
}

func (p *publisher) wait(t *testing.T) {
	t.Helper()
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(3 * time.Minute):
		t.Fatal("publishing did not finish within 3 minutes")
	}
}

func TestClusterFaults(t *testing.T) {
	t.Parallel()
	z := sizes{persons: 1200, leavers: 400, rehires: 150, newIDs: 30, newEmails: 40, dups: 100, malformed: 20, seeds: 30}
	dbDown := 20 * time.Second
	if testing.Short() {
		z = sizes{persons: 250, leavers: 80, rehires: 30, newIDs: 6, newEmails: 8, dups: 20, malformed: 7, seeds: 8}
		dbDown = 5 * time.Second
	}
	seed := testSeed(t)
	sc := newScenario(seed, z)
	t.Logf("scenario %s (replay with HRSYNC_E2E_SEED=%d)", sc.summary(), seed)

	cl := startCluster(t)
	dbURL, admin := ownDatabase(t)
	dbName := strings.TrimPrefix(must(url.Parse(dbURL)).Path, "/")
	lms := startLMS(t, nil)
	nc, err := nats.Connect(cl.urls(), nats.Name("hrsync-cluster-test"), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the stream with three replicas", func() (bool, string) {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		_, err := events.EnsureStreams(ctx, js, events.StreamConfig{Replicas: 3}, []string{"hr"})
		return err == nil, fmt.Sprint(err)
	})
	db := openStore(t, dbURL)
	cfg := writeConfig(t, "safeguard: {percent: 100, count: 0, min_removals: 1000000, settle: 0s}\nstream: {replicas: 3}\n")

	// The lease outlasts the PostgreSQL outage, as the default (2m) does; a
	// shorter one (HRSYNC_CLUSTER_LEASE=5s) lets the outage expire leases
	// mid-action, which once repeated an LMS action (docs/cluster.md, "Found").
	lease := 30 * time.Second
	if v := os.Getenv("HRSYNC_CLUSTER_LEASE"); v != "" {
		if lease, err = time.ParseDuration(v); err != nil {
			t.Fatalf("HRSYNC_CLUSTER_LEASE=%q: %v", v, err)
		}
	}
	startReplica := func(name string) *replica {
		addr := freeLoopbackAddr(t)
		args := daemonArgs(t, lms, cl.urls(), dbURL, lease)
		args = append(args, "--config", cfg, "--admin-addr", addr, "--ack-wait", "10s")
		return &replica{daemon: startDaemon(t, name, args), admin: addr}
	}
	reps := []*replica{startReplica("r1"), startReplica("r2"), startReplica("r3")}
	daemons := func() []*daemon {
		var ds []*daemon
		for _, r := range reps {
			ds = append(ds, r.daemon)
		}
		return ds
	}
	allReady := func() (bool, string) {
		for _, r := range reps {
			if code, body := r.readyz(); code != http.StatusOK {
				return false, r.name + ": " + body
			}
		}
		return true, ""
	}
	waitFor(t, 60*time.Second, "three replicas ready", allReady, daemons()...)
	seeded := map[int]string{}

	// recovered waits until every replica is ready and facts are being
	// recorded again, and returns how long that took from since.
	facts := func() int {
		c, err := db.Counts(t.Context())
		if err != nil {
			return -1
		}
		return c.Facts
	}
	var recoveries []string
	recovered := func(fault string, since time.Time, progress bool) {
		t.Helper()
		before := facts()
		waitFor(t, 90*time.Second, "recovery after "+fault, func() (bool, string) {
			if ok, why := allReady(); !ok {
				return false, why
			}
			if progress {
				if ok, _ := consumerDrained(t.Context(), js); !ok && facts() <= before {
					return false, "no fact recorded since"
				}
			}
			return true, ""
		}, daemons()...)
		d := time.Since(since).Round(100 * time.Millisecond)
		recoveries = append(recoveries, fmt.Sprintf("%s: %v", fault, d))
		t.Logf("recovered from %s in %v", fault, d)
	}
	streamLeader := func() int {
		var leader string
		waitFor(t, 30*time.Second, "a stream leader", func() (bool, string) {
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
			defer cancel()
			s, err := js.Stream(ctx, events.StreamConfig{}.Name("hr"))
			if err != nil {
				return false, err.Error()
			}
			info, err := s.Info(ctx)
			if err != nil || info.Cluster == nil || info.Cluster.Leader == "" {
				return false, fmt.Sprint("no leader: ", err)
			}
			leader = info.Cluster.Leader
			return true, ""
		})
		return cl.index(leader)
	}

	// Wave 1, the hires, while the stream leader's node dies and comes back.
	pub := startPublisher(js, sc.waves[0])
	waitFor(t, 60*time.Second, "the first hires recorded", func() (bool, string) {
		return facts() >= len(sc.waves[0])/5, fmt.Sprint(facts(), " facts")
	}, daemons()...)
	leader := streamLeader()
	at := time.Now()
	cl.stop(leader)
	t.Logf("stopped the stream leader's node %s", cl.opts[leader].ServerName)
	recovered("the stream leader's node stopping", at, true)
	at = time.Now()
	cl.start(leader)
	recovered("the stream leader's node coming back", at, false)
	pub.wait(t)

	// The node a replica is connected to dies and comes back.
	node := cl.withHrsyncClient(-1)
	if node < 0 {
		t.Fatal("no node has an hrsync client")
	}
	at = time.Now()
	cl.stop(node)
	t.Logf("stopped node %s, which replicas were connected to", cl.opts[node].ServerName)
	recovered("a replica's node stopping", at, false)
	at = time.Now()
	cl.start(node)
	recovered("a replica's node coming back", at, false)
	waitFor(t, settleTimeout, "the hires converged", func() (bool, string) {
		sc.seedCompletions(t, lms.sb, seeded)
		ok, why := consumerDrained(t.Context(), js)
		return ok && lms.sb.Count() >= len(sc.people), fmt.Sprintf("%s; %d accounts", why, lms.sb.Count())
	}, daemons()...)
	sc.seedCompletions(t, lms.sb, seeded)

	// Wave 2, the leaves, while a replica is SIGKILLed and restarted, and the
	// replicas' PostgreSQL connections are terminated again and again.
	pub = startPublisher(js, sc.waves[1])
	waitFor(t, 60*time.Second, "the first leaves recorded", func() (bool, string) {
		n := facts()
		return n > len(sc.people), fmt.Sprint(n, " facts")
	}, daemons()...)
	reps[0].kill()
	if !reps[0].waitExit(10 * time.Second) {
		t.Fatal("r1 did not exit after SIGKILL")
	}
	at = time.Now()
	reps[0] = startReplica("r1-again")
	recovered("SIGKILL of a replica (restarted at once)", at, false)
	terminate := func() int {
		var n int
		_ = admin.QueryRowContext(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE datname = $1 AND pid <> pg_backend_pid()`, dbName).Scan(&n)
		return n
	}
	at = time.Now()
	killed := 0
	for range 5 {
		killed += terminate()
		time.Sleep(300 * time.Millisecond)
	}
	t.Logf("terminated %d PostgreSQL connections in 5 rounds", killed)
	recovered("PostgreSQL connections terminated 5 times", at, false)
	pub.wait(t)

	// PostgreSQL refuses connections for a while: /readyz says why, /healthz
	// stays 200 (the process is alive and will recover by itself).
	if _, err := admin.ExecContext(t.Context(), "ALTER DATABASE "+dbName+" ALLOW_CONNECTIONS false"); err != nil {
		t.Fatal(err)
	}
	at = time.Now()
	terminate()
	waitFor(t, 30*time.Second, "/readyz naming the store", func() (bool, string) {
		terminate()
		code, body := reps[1].readyz()
		return code == http.StatusServiceUnavailable && strings.Contains(body, "store"), fmt.Sprint(code, " ", body)
	}, daemons()...)
	for _, r := range reps {
		if code := r.healthz(); code != http.StatusOK {
			t.Errorf("%s: /healthz %d while the store is away; want 200 (the process is alive)", r.name, code)
		}
	}
	pub = startPublisher(js, sc.waves[2]) // the rehires wait in the stream meanwhile
	time.Sleep(time.Until(at.Add(dbDown)))
	if _, err := admin.ExecContext(t.Context(), "ALTER DATABASE "+dbName+" ALLOW_CONNECTIONS true"); err != nil {
		t.Fatal(err)
	}
	at = time.Now()
	recovered(fmt.Sprintf("PostgreSQL refusing connections for %v (from re-allowing)", dbDown), at, true)
	pub.wait(t)

	began := time.Now()
	// Settled also means no worker left due: a converge whose commit failed
	// (its connection terminated after the LMS call) is retried once its lease
	// expires, and only then is its audit intent resolved.
	waitFor(t, settleTimeout, "final state after the faults", func() (bool, string) {
		sc.seedCompletions(t, lms.sb, seeded)
		if ok, why := sc.settled(t.Context(), js, lms.sb, db, seeded); !ok {
			return false, why
		}
		g, err := db.Gauges(t.Context(), time.Now())
		if err != nil || g.Due > 0 {
			return false, fmt.Sprintf("store: %d workers still due (%v)", g.Due, err)
		}
		return true, ""
	}, daemons()...)
	t.Logf("settled %v after the last fault", time.Since(began).Round(100*time.Millisecond))
	for _, r := range reps {
		r.terminate(t, 30*time.Second)
	}
	sc.checkFinal(t, lms.sb, db, seeded)
	checkAudited(t, lms.sb, db)
	t.Logf("LMS: %d accounts, %s; recoveries: %s", lms.sb.Count(), opsSummary(lms.sb), strings.Join(recoveries, "; "))
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// writeConfig writes a configuration file and returns its path.
func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hrsync.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
