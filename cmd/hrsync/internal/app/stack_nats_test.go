package app

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/events"
)

// logBuffer collects a stack's JSON log lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// find returns the first log line whose message starts with prefix, decoded.
func (l *logBuffer) find(prefix string) map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	for line := range strings.SplitSeq(l.b.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && strings.HasPrefix(m["msg"].(string), prefix) {
			return m
		}
	}
	return nil
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// openTestStack opens a stack on a new SQLite store with fc's configuration
// (feed hr), logging JSON to the returned buffer.
func openTestStack(t *testing.T, fc FileConfig, cfg StackConfig) (*Stack, *logBuffer, error) {
	t.Helper()
	return openTestStackOn(t, "sqlite://"+filepath.Join(t.TempDir(), "hrsync.db"), fc, cfg)
}

// openTestStackOn is openTestStack on the store at db.
func openTestStackOn(t *testing.T, db string, fc FileConfig, cfg StackConfig) (*Stack, *logBuffer, error) {
	t.Helper()
	feeds, err := connector.NewFeeds(connector.DefaultFeed("hr", connector.FeedHR))
	if err != nil {
		t.Fatal(err)
	}
	set, err := SettingsFor(db, feeds, fc)
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	cfg.ManageStream, cfg.Durable = true, "hrsync"
	s, err := NewStack(t.Context(), set, Options{LMS: sandbox.New(), Migrate: true, Log: slog.New(slog.NewJSONHandler(logs, nil))}, cfg)
	if err == nil {
		t.Cleanup(s.Close)
	}
	return s, logs, err
}

// The embedded server listens where it is told, says so in a line a person can
// copy, and its temporary directory is gone once the stack closes.
func TestEmbeddedNATSAddress(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	s, logs, err := openTestStack(t, FileConfig{}, StackConfig{EmbeddedNATS: true, EmbeddedAddr: addr})
	if err != nil {
		t.Fatal(err)
	}
	url := "nats://" + addr
	line := logs.find("embedded NATS server listening at ")
	if line == nil || line["url"] != url || !strings.Contains(line["msg"].(string), url) {
		t.Fatalf("no start line naming %s; got %v", url, line)
	}
	dir, _ := line["store_dir"].(string)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() || !strings.Contains(filepath.Base(dir), "hrsync-nats-") {
		t.Fatalf("store_dir %q: %v; want a temporary hrsync-nats-* directory", dir, err)
	}
	// Another client (hrsync publish) reaches it at the printed address.
	nc, err := nats.Connect(url, nats.MaxReconnects(0))
	if err != nil {
		t.Fatalf("connect to the printed %s: %v", url, err)
	}
	js, _ := jetstream.New(nc)
	if _, err := js.Stream(t.Context(), events.StreamConfig{}.Name("hr")); err != nil {
		t.Errorf("feed hr's stream on the embedded server: %v", err)
	}
	nc.Close()
	s.Close()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("after Close, %s: %v; want it removed", dir, err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("after Close, %s still accepts connections", addr)
	}
}

// A directory the caller names is the caller's: Close keeps it.
func TestEmbeddedNATSDirKept(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "nats")
	s, logs, err := openTestStack(t, FileConfig{}, StackConfig{EmbeddedNATS: true, EmbeddedDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	line := logs.find("embedded NATS server listening at nats://127.0.0.1:")
	if line == nil || line["store_dir"] != dir {
		t.Fatalf("start line %v; want a free loopback port and store_dir %s", line, dir)
	}
	s.Close()
	if _, err := os.Stat(filepath.Join(dir, "jetstream")); err != nil {
		t.Errorf("the named directory's JetStream files are gone after Close: %v", err)
	}
}

func TestEmbeddedNATSAddressRefused(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, tc := range []struct{ addr, want string }{
		{"0.0.0.0:4250", "listens only on loopback"},
		{"192.0.2.1:4250", "listens only on loopback"},
		{"nats.example:4250", "listens only on loopback"},
		{"127.0.0.1", "want HOST:PORT"},
		{"127.0.0.1:http", "is not a number"},
		{"127.0.0.1:70000", "is not a number"},
		{taken.Addr().String(), "address already in use"},
	} {
		_, _, err := openTestStack(t, FileConfig{}, StackConfig{EmbeddedNATS: true, EmbeddedAddr: tc.addr})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.addr) {
			t.Errorf("EmbeddedAddr %q: %v; want an error naming it and %q", tc.addr, err, tc.want)
		}
	}
}

// The stack authenticates as nats: in the configuration file says, with a
// password read from a file, as deploy/k8s/hrsync.yaml configures it.
func TestStackNATSFromConfigFile(t *testing.T) {
	t.Parallel()
	url := startNATS(t, func(o *server.Options) {
		o.JetStream, o.StoreDir = true, t.TempDir()
		o.Users = []*server.User{{Username: "hrsync", Password: "s3cret"}}
	})
	pw := writeFile(t, t.TempDir(), "password", "s3cret\n")
	fc := FileConfig{NATS: NATSConfig{URL: url, User: "hrsync", PasswordFile: pw}}
	s, logs, err := openTestStack(t, fc, StackConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if line := logs.find("nats connected"); line == nil || line["auth"] != "user hrsync" || line["server_version"] == "" {
		t.Errorf("connect line %v; want auth \"user hrsync\" and the server's version", line)
	}
	if !s.nc.IsConnected() {
		t.Error("not connected")
	}
	// A wrong password in the file fails at start, naming the server.
	bad := writeFile(t, t.TempDir(), "password", "guess\n")
	_, _, err = openTestStack(t, FileConfig{NATS: NATSConfig{URL: url, User: "hrsync", PasswordFile: bad}}, StackConfig{})
	if err == nil || !strings.Contains(err.Error(), "Authorization Violation") || !strings.Contains(err.Error(), "connect to NATS at "+url) {
		t.Errorf("wrong password: %v", err)
	}
	// The flags (StackConfig.NATS) lay over the file: a second way to
	// authenticate is refused with both named.
	_, _, err = openTestStack(t, fc, StackConfig{NATS: NATSSettings{Token: "t"}})
	if err == nil || !strings.Contains(err.Error(), "--nats-user") || !strings.Contains(err.Error(), "--nats-token") {
		t.Errorf("user from the file and a token from the flags: %v", err)
	}
}

// While NATS is down the stack keeps running: /readyz says why it is not ready,
// and once the server is back the consumer goes on where it was (docs/nats.md).
func TestStackRidesOutNATSRestart(t *testing.T) {
	t.Parallel()
	port, dir := freePort(t), t.TempDir()
	start := func() *server.Server {
		ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir,
			NoLog: true, NoSigs: true})
		if err != nil {
			t.Fatal(err)
		}
		go ns.Start()
		if !ns.ReadyForConnections(10 * time.Second) {
			t.Fatal("nats-server not ready")
		}
		return ns
	}
	ns := start()
	var committed atomic.Int64
	s, _, err := openTestStack(t, FileConfig{}, StackConfig{NATSURL: ns.ClientURL(),
		Hooks: events.Hooks{AfterCommit: func(f []connector.Fact) { committed.Add(int64(len(f))) }}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.RunLoops(ctx) }()
	publish := func(id string) {
		t.Helper()
		nc, err := nats.Connect(ns.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		e := events.Event{Feed: "hr", Kind: connector.KindHired, ID: id, Source: "/feeds/hr", Time: time.Now().UTC(),
			Data: events.Data{WorkerID: "w-" + id, Email: id + "@example.com", Effective: "2026-12-01"}}
		if _, err := events.Publish(ctx, js, e, events.Structured); err != nil {
			t.Fatal(err)
		}
	}
	ready := func() (bool, string) {
		if err := s.ready(ctx); err != nil {
			return false, err.Error()
		}
		return true, ""
	}
	waitFor(t, 10*time.Second, "ready", ready)
	publish("evt-1")
	waitFor(t, 10*time.Second, "the first event recorded", func() (bool, string) { return committed.Load() == 1, "not yet" })

	ns.Shutdown()
	ns.WaitForShutdown()
	waitFor(t, 10*time.Second, "not ready while NATS is down", func() (bool, string) {
		err := s.ready(ctx)
		return err != nil && strings.HasPrefix(err.Error(), "nats: "), "ready says " + func() string {
			if err != nil {
				return err.Error()
			}
			return "ready"
		}()
	})

	ns = start()
	t.Cleanup(ns.Shutdown)
	waitFor(t, 15*time.Second, "ready again after the restart", ready)
	publish("evt-2")
	waitFor(t, 15*time.Second, "the event after the restart recorded", func() (bool, string) {
		return committed.Load() == 2, strconv.FormatInt(committed.Load(), 10) + " committed"
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("RunLoops = %v, want nil", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("RunLoops did not return after cancel")
	}
}
