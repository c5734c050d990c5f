package events

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// oldServerBinary is Debian 12's nats-server (2.9.10), the oldest hrsync supports.
const oldServerBinary = "/usr/sbin/nats-server"

// startServerProcess runs binary as a child process with JetStream on a free
// loopback port, storing under a temporary directory, and returns its client URL.
// The process is killed when the test ends.
func startServerProcess(t *testing.T, binary string) string {
	t.Helper()
	if _, err := os.Stat(binary); err != nil {
		t.Skipf("SKIP: %s is not installed (Debian: apt-get install nats-server); "+
			"hrsync's oldest supported NATS server is not tested: %v", binary, err)
	}
	var out syncBuffer
	for attempt := 0; ; attempt++ {
		port := freeLoopbackPort(t)
		cmd := exec.Command(binary, "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", t.TempDir())
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", binary, err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		url := "nats://127.0.0.1:" + strconv.Itoa(port)
		if waitListening(url, exited, 10*time.Second) {
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				<-exited
			})
			return url
		}
		_ = cmd.Process.Kill()
		<-exited
		if attempt == 2 { // the port may have been taken between probe and start
			t.Fatalf("%s did not accept connections on %s; its output:\n%s", binary, url, out.String())
		}
	}
}

// waitListening polls url until a client connects, the process exits, or timeout passes.
func waitListening(url string, exited <-chan error, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		if nc, err := nats.Connect(url, nats.Timeout(time.Second), nats.MaxReconnects(0)); err == nil {
			nc.Close()
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// syncBuffer is a bytes.Buffer a child process and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// With the oldest supported server (2.9.10), which does not understand a
// termination with a reason, a dead letter is still settled: it is dead-lettered
// once and never redelivered. Sending it "+TERM <reason>" would leave it pending,
// redelivered every AckWait forever.
func TestDeadLetterSettlesOnOldestServer(t *testing.T) {
	t.Parallel()
	url := startServerProcess(t, oldServerBinary)
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	v := nc.ConnectedServerVersion()
	if err := CheckServerVersion(v); err != nil {
		t.Fatalf("%s: %v; the oldest supported server must pass the check", oldServerBinary, err)
	}
	if UnderstandsTermReason(v) {
		t.Fatalf("%s announces %s, which understands a termination reason: this test needs an older one", oldServerBinary, v)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	feeds := testFeeds(t)
	if _, err := EnsureStreams(ctx, js, StreamConfig{}, feeds.Names()); err != nil {
		t.Fatalf("streams on nats-server %s: %v", v, err)
	}

	rec := newFakeRecorder()
	var mu sync.Mutex
	deadLettered := 0
	const ackWait = time.Second
	done := make(chan error, 1)
	go func() {
		done <- Consume(ctx, js, &Decoder{Feeds: feeds}, rec, ConsumerConfig{AckWait: ackWait,
			Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
			Hooks:  Hooks{DeadLettered: func(string, string) { mu.Lock(); deadLettered++; mu.Unlock() }}})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Consume: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("Consume did not return after cancel")
		}
	})

	// A poison message (not JSON) and a valid event behind it.
	if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: "hrsync.events.hr.hired", Data: []byte("not json")}); err != nil {
		t.Fatal(err)
	}
	good, err := Encode(hiredEvent("w-1", "evt-1"), Structured)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(ctx, good); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "one fact and one dead letter", func() bool {
		facts, dead, _, _ := rec.counts()
		return facts == 1 && dead == 1
	})
	// Three times AckWait: a message the server did not settle comes back within it.
	stream := StreamConfig{}.Name("hr")
	deadline := time.Now().Add(3 * ackWait)
	for time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		if _, dead, _, _ := rec.counts(); dead != 1 {
			t.Fatalf("the poison message was dead-lettered %d times; nats-server %s redelivered it", dead, v)
		}
	}
	cons, err := js.Consumer(ctx, stream, DefaultDurable)
	if err != nil {
		t.Fatal(err)
	}
	info := cons.CachedInfo()
	if info.NumAckPending != 0 || info.NumRedelivered != 0 || info.NumPending != 0 {
		t.Errorf("consumer not settled on nats-server %s: ack pending %d, redelivered %d, pending %d",
			v, info.NumAckPending, info.NumRedelivered, info.NumPending)
	}
	mu.Lock()
	defer mu.Unlock()
	if deadLettered != 1 {
		t.Errorf("DeadLettered hook called %d times, want 1", deadLettered)
	}
}

// A server that understands a termination reason (the in-process one, 2.15)
// gets one: its advisory names the dead letter, and only the dead letter.
func TestDeadLetterTermReasonOnNewServer(t *testing.T) {
	t.Parallel()
	b := setupConsumer(t, ConsumerConfig{})
	if v := b.js.Conn().ConnectedServerVersion(); !UnderstandsTermReason(v) {
		t.Fatalf("in-process nats-server %s: want one that understands a termination reason", v)
	}
	adv, err := b.js.Conn().SubscribeSync(server.JSAdvisoryConsumerMsgTerminatedPre + ".>")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.js.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	b.publishRaw(t, &nats.Msg{Subject: "hrsync.events.hr.hired", Data: []byte("not json: ann@example.com")})
	m, err := adv.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("no termination advisory: %v", err)
	}
	var a server.JSConsumerDeliveryTerminatedAdvisory
	if err := json.Unmarshal(m.Data, &a); err != nil {
		t.Fatal(err)
	}
	if a.Reason != "hrsync: dead letter 1" || a.Deliveries != 1 {
		t.Errorf("advisory reason %q after %d deliveries; want \"hrsync: dead letter 1\" after 1", a.Reason, a.Deliveries)
	}
	b.settled(t)
}

func TestServerVersions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		v         string
		supported bool
		reason    bool
	}{
		{"2.9.10", true, false},
		{"2.9.25", true, false},
		{"2.10.3", true, false},
		{"2.10.4-RC.1", true, false},
		{"2.10.4", true, true},
		{"v2.10.4", true, true},
		{"2.11.0", true, true},
		{"3.0.0", true, true},
		{"2.9.9", false, false},
		{"2.9.10-beta", false, false},
		{"2.2.0", false, false},
		{"1.4.1", false, false},
		{"", false, false},
		{"2.10", false, false},
		{"2.x.1", false, false},
		{"2.10.+4", false, false},
	} {
		err := CheckServerVersion(tc.v)
		if (err == nil) != tc.supported {
			t.Errorf("CheckServerVersion(%q) = %v; supported %v", tc.v, err, tc.supported)
		}
		var ve *ServerVersionError
		if err != nil && (!errors.As(err, &ve) || ve.Reason == "") {
			t.Errorf("CheckServerVersion(%q) = %#v; want a *ServerVersionError with a reason", tc.v, err)
		}
		if got := UnderstandsTermReason(tc.v); got != tc.reason {
			t.Errorf("UnderstandsTermReason(%q) = %v, want %v", tc.v, got, tc.reason)
		}
	}
	if err := CheckServerVersion("2.2.0"); err == nil || !bytes.Contains([]byte(err.Error()), []byte(MinServerVersion)) {
		t.Errorf("the refusal names the minimum: %v", err)
	}
}
