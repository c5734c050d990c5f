package store_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/hrsync/hrsync/store/pgtest"
)

func TestDeploymentIDSQLite(t *testing.T) { testDeploymentID(t, sqliteURL) }

func TestDeploymentIDPostgres(t *testing.T) {
	t.Parallel()
	testDeploymentID(t, pgtest.URL)
}

// testDeploymentID: the id is made once per database, the same for every handle
// (replicas starting together included), and another database has another.
func testDeploymentID(t *testing.T, newURL func(t testing.TB) string) {
	url := newURL(t)
	const n = 4
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		db := mustOpen(t, url)
		wg.Go(func() {
			id, err := db.DeploymentID(t.Context())
			if err != nil {
				t.Errorf("DeploymentID (handle %d): %v", i, err)
			}
			ids[i] = id
		})
	}
	wg.Wait()
	for i, id := range ids {
		if id != ids[0] || !strings.HasPrefix(id, "dep-") || len(id) != len("dep-")+16 {
			t.Fatalf("handle %d: DeploymentID = %q; want one id dep-<16 hex> for every handle (%q)", i, id, ids)
		}
	}
	again, err := mustOpen(t, url).DeploymentID(t.Context())
	if err != nil || again != ids[0] {
		t.Fatalf("DeploymentID again = %q, %v; want %q", again, err, ids[0])
	}
	other, err := mustOpen(t, newURL(t)).DeploymentID(t.Context())
	if err != nil || other == ids[0] {
		t.Fatalf("DeploymentID of another database = %q, %v; want another id than %q", other, err, ids[0])
	}
}
