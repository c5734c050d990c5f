package app

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
	"github.com/hrsync/hrsync/connector/lms/scim"
)

// TestLMSSearchBatch: lms.search_batch bounds the values of one POST
// /Users/.search; 0 turns .search off (batch reads go as GETs of 50); omitted, the
// client's default; a negative one is refused, naming the setting.
func TestLMSSearchBatch(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(sandbox.New().Handler(""))
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		yaml string
		want int // MaxReadBatch against the sandbox (filter.maxResults 1,000)
	}{
		{"", scim.DefaultSearchBatch},
		{"  search_batch: 200\n", 200},
		{"  search_batch: 0\n", 50},
	} {
		path := filepath.Join(t.TempDir(), "hrsync.yaml")
		if err := os.WriteFile(path, []byte("lms:\n  url: "+srv.URL+sandbox.BasePath+"\n"+tc.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		fc, err := LoadConfigFile(path)
		if err != nil {
			t.Fatal(err)
		}
		lms, err := openLMS(fc.LMS.Over(LMSSettings{}, nil))
		if err != nil {
			t.Fatalf("%q: %v", tc.yaml, err)
		}
		if n := lms.(connector.AccountBatchReader).MaxReadBatch(t.Context()); n != tc.want {
			t.Errorf("%q: MaxReadBatch = %d, want %d", tc.yaml, n, tc.want)
		}
	}
	neg := -3
	if _, err := openLMS(LMSConfig{URL: srv.URL + sandbox.BasePath, SearchBatch: &neg}.Over(LMSSettings{}, nil)); err == nil ||
		!strings.Contains(err.Error(), "lms.search_batch -3") {
		t.Errorf("a negative lms.search_batch: %v, want an error naming it", err)
	}
}
