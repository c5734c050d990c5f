package roster

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
)

// adminBundle is an admin API on a real listener, over a SQLite store, with
// three tokens: root-token (admin), acme-token and globex-token (their feeds).
// It has no NATS connection: uploads that are not dry runs can only be refused
// or held.
type adminBundle struct {
	db  *store.DB
	api *API
	url string // http://host:port/v1/feeds/
}

func setupAdmin(t testing.TB, lim Limits) *adminBundle {
	t.Helper()
	db, err := store.Open(t.Context(), "sqlite://"+filepath.Join(t.TempDir(), "h.db"), nil, store.Migrate(true))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	feeds, err := connector.NewFeeds(connector.DefaultFeed("hr", connector.FeedHR),
		connector.DefaultFeed("partner-acme", connector.FeedPartner), connector.DefaultFeed("partner-globex", connector.FeedPartner))
	if err != nil {
		t.Fatal(err)
	}
	up := &Uploader{Store: db, Feeds: feeds, Now: time.Now, Log: slog.New(slog.DiscardHandler),
		Rosters: map[string]Config{
			"partner-acme":   {Mode: "snapshot", UploadTokenSHA256: sha("acme-token")},
			"partner-globex": {Mode: "snapshot", UploadTokenSHA256: sha("globex-token")},
		},
		ThresholdsFunc: func(string) connector.Thresholds { return connector.DefaultThresholds() }}
	api := &API{AdminToken: "root-token", Log: slog.New(slog.NewTextHandler(t.Output(), nil)), Uploader: up, Limits: lim}
	mux := http.NewServeMux()
	mux.Handle("POST /v1/feeds/{feed}/rosters", api)
	mux.Handle("GET /v1/feeds/{feed}/rosters/{id}/report", api.ReportHandler())
	srv := httptest.NewUnstartedServer(mux)
	srv.Config = NewAdminServer(mux, lim)
	srv.Start()
	t.Cleanup(srv.Close)
	return &adminBundle{db: db, api: api, url: srv.URL + "/v1/feeds/"}
}

// post uploads body to feed with the Authorization header auth (none if empty).
func (b *adminBundle) post(t *testing.T, feed, auth, query string, body io.Reader) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, b.url+feed+"/rosters"+query, body)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("%s: the answer is not JSON: %v", resp.Status, err)
	}
	return resp, out
}

// brief clips an answer for a failure message.
func brief(out map[string]any) string {
	s := fmt.Sprint(out)
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}

// inFlight is how many uploads of who the API is serving now.
func (b *adminBundle) inFlight(who string) int {
	b.api.mu.Lock()
	defer b.api.mu.Unlock()
	return b.api.inFlight[who]
}

// TestAdminAPIBearerScheme: the scheme is case-insensitive (RFC 7235 §2.1) and
// may be followed by more than one space; other schemes are refused.
func TestAdminAPIBearerScheme(t *testing.T) {
	t.Parallel()
	b := setupAdmin(t, Limits{})
	for _, auth := range []string{"Bearer acme-token", "bearer acme-token", "BEARER acme-token", "bEaReR  acme-token", "bearer root-token"} {
		resp, out := b.post(t, "partner-acme", auth, "?dry_run=true", strings.NewReader(rosterCSV(3)))
		if resp.StatusCode != http.StatusOK || len(out["events"].([]any)) != 3 {
			t.Errorf("%q: %s %v, want 200 with 3 events", auth, resp.Status, brief(out))
		}
	}
	for _, auth := range []string{"Basic acme-token", "Bearer", "Beareracme-token", "bearer wrong-token", "acme-token"} {
		if resp, _ := b.post(t, "partner-acme", auth, "?dry_run=true", strings.NewReader(rosterCSV(3))); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%q: %s, want 401", auth, resp.Status)
		}
	}
}

// TestAdminAPIOversizeUpload: an upload over the limit answers 413 naming the
// limit, whether its Content-Length says so (refused before the body is read)
// or it is sent chunked (cut off at the limit), and nothing of it is applied.
func TestAdminAPIOversizeUpload(t *testing.T) {
	t.Parallel()
	b := setupAdmin(t, Limits{MaxUpload: 4 << 10})
	body := rosterCSV(500) // about 15 KiB
	check := func(name string, resp *http.Response, out map[string]any) {
		t.Helper()
		if resp.StatusCode != http.StatusRequestEntityTooLarge || out["limit_bytes"] != float64(4<<10) ||
			!strings.Contains(fmt.Sprint(out["error"]), "4.0 KiB") || !strings.Contains(fmt.Sprint(out["error"]), "--admin-max-upload") {
			t.Errorf("%s: %s %v, want 413 naming the 4 KiB limit", name, resp.Status, brief(out))
		}
	}
	resp, out := b.post(t, "partner-acme", "Bearer acme-token", "", strings.NewReader(body))
	check("Content-Length", resp, out)
	// io.MultiReader hides the length: the client sends the body chunked.
	resp, out = b.post(t, "partner-acme", "Bearer acme-token", "", io.MultiReader(strings.NewReader(body)))
	check("chunked", resp, out)
	resp, out = b.post(t, "partner-acme", "Bearer acme-token", "?dry_run=true", io.MultiReader(strings.NewReader(body)))
	check("chunked dry run", resp, out)

	ups, err := b.db.ListUploads(t.Context(), store.UploadFilter{Feed: "partner-acme"})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range ups {
		if u.Outcome != "rejected" {
			t.Errorf("upload %d: %s, want only rejections", u.ID, u.Outcome)
		}
	}
	holds, err := b.db.ListHolds(t.Context(), store.HoldFilter{Feed: "partner-acme"})
	if c, cerr := b.db.Counts(t.Context()); err != nil || cerr != nil || len(holds) != 0 || c.Facts != 0 {
		t.Fatalf("after refused uploads: %d holds, %+v (%v, %v)", len(holds), c, err, cerr)
	}
	// Under the limit the same API answers.
	if resp, out := b.post(t, "partner-acme", "Bearer acme-token", "?dry_run=true", strings.NewReader(rosterCSV(10))); resp.StatusCode != http.StatusOK {
		t.Fatalf("a small upload: %s %v", resp.Status, brief(out))
	}
}

// TestAdminAPIUploadsPerToken: with two uploads of acme in flight, a third
// answers 429 with Retry-After, while globex's token and the admin token are
// still served; once one finishes, acme may upload again.
func TestAdminAPIUploadsPerToken(t *testing.T) {
	t.Parallel()
	b := setupAdmin(t, Limits{UploadsPerToken: 2})
	type answer struct {
		code int
		err  error
	}
	var pipes []*io.PipeWriter
	var answers []chan answer
	for range 2 {
		pr, pw := io.Pipe()
		t.Cleanup(func() { pw.Close() })
		done := make(chan answer, 1)
		go func() {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, b.url+"partner-acme/rosters?dry_run=true", pr)
			req.Header.Set("Authorization", "Bearer acme-token")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				done <- answer{err: err}
				return
			}
			resp.Body.Close()
			done <- answer{code: resp.StatusCode}
		}()
		if _, err := io.WriteString(pw, "worker_id,email\n"); err != nil {
			t.Fatal(err)
		}
		pipes, answers = append(pipes, pw), append(answers, done)
	}
	waitFor(t, 10*time.Second, "two uploads of acme in flight", func() (bool, string) {
		n := b.inFlight("feed:partner-acme")
		return n == 2, fmt.Sprintf("%d in flight", n)
	})

	resp, out := b.post(t, "partner-acme", "Bearer acme-token", "?dry_run=true", strings.NewReader(rosterCSV(3)))
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(fmt.Sprint(out["error"]), "2 uploads in flight") {
		t.Fatalf("a third upload of acme: %s (Retry-After %q) %v, want 429 with Retry-After", resp.Status, resp.Header.Get("Retry-After"), brief(out))
	}
	for _, auth := range []string{"Bearer globex-token", "Bearer root-token"} {
		feed := "partner-globex"
		if resp, out := b.post(t, feed, auth, "?dry_run=true", strings.NewReader(rosterCSV(3))); resp.StatusCode != http.StatusOK {
			t.Fatalf("%s while acme's slots are taken: %s %v, want 200", auth, resp.Status, brief(out))
		}
	}

	// The first upload ends; acme has a slot again.
	if _, err := io.WriteString(pipes[0], "w-1,p1@acme.example\n"); err != nil {
		t.Fatal(err)
	}
	pipes[0].Close()
	if a := <-answers[0]; a.err != nil || a.code != http.StatusOK {
		t.Fatalf("the first upload: %d %v", a.code, a.err)
	}
	if resp, out := b.post(t, "partner-acme", "Bearer acme-token", "?dry_run=true", strings.NewReader(rosterCSV(3))); resp.StatusCode != http.StatusOK {
		t.Fatalf("acme after one upload finished: %s %v, want 200", resp.Status, brief(out))
	}
	pipes[1].CloseWithError(errors.New("the uploader gives up"))
	<-answers[1]
	waitFor(t, 10*time.Second, "no upload in flight", func() (bool, string) {
		n := b.inFlight("feed:partner-acme")
		return n == 0, fmt.Sprintf("%d in flight", n)
	})
}

// rawConn dials the test server for a hand-written request. Every read on it
// gives up after 10s, so a test that the server fails to cut off still ends.
func rawConn(t *testing.T, b *adminBundle) (net.Conn, string) {
	t.Helper()
	host := strings.TrimPrefix(strings.TrimSuffix(b.url, "/v1/feeds/"), "http://")
	c, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	return c, host
}

// trickle writes s to c one byte every 20ms, until s is sent or the server
// closes the connection; it reports how many bytes went out.
func trickle(c net.Conn, s string) <-chan int {
	sent := make(chan int, 1)
	go func() {
		n := 0
		for ; n < len(s); n++ {
			if _, err := c.Write([]byte{s[n]}); err != nil {
				break
			}
			<-time.After(20 * time.Millisecond)
		}
		sent <- n
	}()
	return sent
}

// closedByServer reads c to the end and fails t unless the server closed it
// (our own 10s deadline passing means it did not).
func closedByServer(t *testing.T, c net.Conn) string {
	t.Helper()
	got, err := io.ReadAll(c)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the server kept the connection open (read so far: %q)", got)
	}
	return string(got)
}

// TestAdminAPISlowClients: the admin server cuts off a client that sends its
// headers or its body a byte at a time, answers a request without a token
// without waiting for its body, and closes idle connections.
func TestAdminAPISlowClients(t *testing.T) {
	t.Parallel()
	short := Limits{ReadHeaderTimeout: 200 * time.Millisecond, ReadTimeout: 500 * time.Millisecond,
		WriteTimeout: 5 * time.Second, IdleTimeout: 300 * time.Millisecond}

	t.Run("SlowHeaders", func(t *testing.T) {
		t.Parallel()
		b := setupAdmin(t, short)
		c, host := rawConn(t, b)
		head := "POST /v1/feeds/partner-acme/rosters?dry_run=true HTTP/1.1\r\nHost: " + host + "\r\nAuthorization: Bearer acme-token\r\nContent-Length: 30\r\n\r\n"
		sent := trickle(c, head)
		closedByServer(t, c)
		if n := <-sent; n == len(head) {
			t.Fatalf("the client sent all %d bytes of its headers before the server gave up", n)
		}
	})

	t.Run("SlowBody", func(t *testing.T) {
		t.Parallel()
		b := setupAdmin(t, short)
		c, host := rawConn(t, b)
		body := rosterCSV(20)
		if _, err := fmt.Fprintf(c, "POST /v1/feeds/partner-acme/rosters?dry_run=true HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer acme-token\r\nContent-Length: %d\r\n\r\n", host, len(body)); err != nil {
			t.Fatal(err)
		}
		sent := trickle(c, body)
		got := closedByServer(t, c)
		if n := <-sent; n == len(body) {
			t.Fatalf("the client sent all %d bytes of its body before the server gave up", n)
		}
		if !strings.HasPrefix(got, "HTTP/1.1 408") || !strings.Contains(got, "--admin-read-timeout") {
			t.Fatalf("answer %q, want 408 naming the read timeout", got)
		}
	})

	t.Run("NoTokenBodyNeverRead", func(t *testing.T) {
		t.Parallel()
		// Long timeouts: only the handler's refusal may end this request.
		b := setupAdmin(t, Limits{ReadTimeout: time.Minute, WriteTimeout: time.Minute})
		c, host := rawConn(t, b)
		// A body is announced and never sent.
		if _, err := fmt.Fprintf(c, "POST /v1/feeds/partner-acme/rosters HTTP/1.1\r\nHost: %s\r\nContent-Length: 1000\r\n\r\n", host); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("no answer without the body: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !resp.Close {
			t.Fatalf("%s (close %v), want 401 and the connection closed", resp.Status, resp.Close)
		}
		closedByServer(t, c)
	})

	t.Run("Idle", func(t *testing.T) {
		t.Parallel()
		b := setupAdmin(t, short)
		c, host := rawConn(t, b)
		body := rosterCSV(2)
		if _, err := fmt.Fprintf(c, "POST /v1/feeds/partner-acme/rosters?dry_run=true HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer acme-token\r\nContent-Length: %d\r\n\r\n%s", host, len(body), body); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Close {
			t.Fatalf("%s (close %v), want 200 on a kept-alive connection", resp.Status, resp.Close)
		}
		// Nothing more is sent: the server closes the idle connection.
		if rest, err := io.ReadAll(br); errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("the server kept the idle connection open (read %q)", rest)
		}
	})
}
