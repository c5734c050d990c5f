package console

import (
	"bytes"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/roster"
	"github.com/hrsync/hrsync/connector"
)

// postUpload sends the upload form as the page does: csrf, feed, mode, file.
func (br *browser) postUpload(csrf, feed, file string) (int, string) {
	br.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("csrf", csrf)
	_ = mw.WriteField("feed", feed)
	_ = mw.WriteField("mode", "snapshot")
	fw, _ := mw.CreateFormFile("file", "roster.csv")
	_, _ = io.WriteString(fw, file)
	_ = mw.Close()
	req, _ := http.NewRequest(http.MethodPost, br.base+"/upload", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := br.c.Do(req)
	if err != nil {
		br.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var pendingField = regexp.MustCompile(`name="pending" value="([^"]+)"`)

// An upload is refused with 403 without a session, a token, the role or the
// feed; a file over the limit with 413; a dry run changes nothing and is
// confirmed once.
func TestUploadRefusedAndConfirmedOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.c.d.Uploader = &roster.Uploader{Store: b.db, Feeds: b.c.d.Feeds, Rosters: map[string]roster.Config{},
		Now: time.Now, Log: slog.New(slog.DiscardHandler),
		ThresholdsFunc: func(string) connector.Thresholds { return connector.Thresholds{} }}
	b.c.d.MaxUpload = 4 << 10
	file := "worker_id,email,given_name,family_name\nw1,ann@example.com,Ann,Example\nw2,not-an-address,Bo,Example\n"

	if code, _ := b.browser(t).postUpload("x", "partner-acme", file); code != http.StatusForbidden {
		t.Errorf("upload without a session: %d, want 403", code)
	}
	pat := b.browser(t)
	pat.signIn("pat")
	if code, page := pat.get("/upload"); code != http.StatusOK || strings.Contains(page, "<option>hr</option>") {
		t.Fatalf("pat's upload page: %d; want partner-acme only\n%s", code, page)
	}
	if code, _ := pat.postUpload(pat.csrf+"x", "partner-acme", file); code != http.StatusForbidden {
		t.Errorf("upload with a wrong token: %d, want 403", code)
	}
	if code, _ := pat.postUpload(pat.csrf, "hr", file); code != http.StatusForbidden {
		t.Errorf("pat's upload to hr: %d, want 403", code)
	}
	victor := b.browser(t)
	victor.signIn("victor")
	if code, _ := victor.postUpload(victor.csrf, "partner-acme", file); code != http.StatusForbidden {
		t.Errorf("a viewer's upload: %d, want 403", code)
	}
	if code, _ := pat.postUpload(pat.csrf, "partner-acme", strings.Repeat("x", 5<<10)); code != http.StatusRequestEntityTooLarge {
		t.Errorf("a file over the limit: %d, want 413", code)
	}
	code, page := pat.postUpload(pat.csrf, "partner-acme", file)
	if code != http.StatusOK || !strings.Contains(page, "ann@example.com") || !strings.Contains(page, "not-an-address") {
		t.Fatalf("dry run: %d; want Ann joining and Bo's bad email\n%s", code, page)
	}
	m := pendingField.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("the dry run has no confirm form")
	}
	if code := pat.post("/upload/confirm", url.Values{"csrf": {pat.csrf}, "pending": {m[1] + "x"}}); code != http.StatusConflict {
		t.Errorf("confirm another dry run: %d, want 409", code)
	}
	if code := pat.post("/upload/confirm", url.Values{"pending": {m[1]}}); code != http.StatusForbidden {
		t.Errorf("confirm without the token: %d, want 403", code)
	}
	// No JetStream here: the upload reaches the publish and fails, once.
	if code := pat.post("/upload/confirm", url.Values{"csrf": {pat.csrf}, "pending": {m[1]}}); code != http.StatusUnprocessableEntity {
		t.Errorf("confirm: %d, want 422 (no NATS in this test)", code)
	}
	if code := pat.post("/upload/confirm", url.Values{"csrf": {pat.csrf}, "pending": {m[1]}}); code != http.StatusConflict {
		t.Errorf("confirm twice: %d, want 409", code)
	}
}
