package roster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	rtmetrics "runtime/metrics"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"
)

// peakMemory samples the Go runtime's memory every 2ms until stop is called,
// and returns the peaks: heap in use by objects, and all memory the runtime has
// mapped from the OS (what a container's limit sees of the Go heap, stacks and
// runtime structures).
func peakMemory() (stop func() (heap, total uint64)) {
	runtime.GC()
	samples := []rtmetrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/total:bytes"}}
	done, result := make(chan struct{}), make(chan [2]uint64, 1)
	go func() {
		var peak [2]uint64
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			rtmetrics.Read(samples)
			for i, s := range samples {
				peak[i] = max(peak[i], s.Value.Uint64())
			}
			select {
			case <-done:
				result <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return func() (uint64, uint64) {
		close(done)
		p := <-result
		return p[0], p[1]
	}
}

// writeRoster writes a snapshot roster of n people, about 110 bytes a row, to w.
func writeRoster(w io.Writer, n int) error {
	var buf bytes.Buffer
	buf.WriteString("worker_id,email,given_name,family_name,org_unit,job_title,locale\n")
	for i := range n {
		fmt.Fprintf(&buf, "A-%07d,person.%d@acme.example,Vorname,Nachname-%d,Abteilung %d,Sachbearbeitung,de-DE\n", i, i, i, i%50)
		if buf.Len() > 64<<10 || i == n-1 {
			if _, err := w.Write(buf.Bytes()); err != nil {
				return err
			}
			buf.Reset()
		}
	}
	return nil
}

// tailWriter keeps the last bytes written to it, and counts them all.
type tailWriter struct {
	n    int64
	tail []byte
}

func (t *tailWriter) Write(b []byte) (int, error) {
	t.n += int64(len(b))
	t.tail = append(t.tail, b...)
	if len(t.tail) > 8<<10 {
		t.tail = append(t.tail[:0], t.tail[len(t.tail)-4<<10:]...)
	}
	return len(b), nil
}

// BenchmarkAdminUpload1M uploads a valid roster of a million people as a dry
// run through the real admin server and handler, generated on the fly through a
// pipe (the benchmark holds no rows either), and reads the million events of the
// answer as they come. It reports the peak memory of the process: the target is
// under 200 MB (the container limit is 512 MiB). docs/admin-api.md has the figures.
//
//	go test -run '^$' -bench BenchmarkAdminUpload1M -benchtime 1x ./cmd/hrsync/internal/roster/
func BenchmarkAdminUpload1M(b *testing.B) {
	const rows = 1_000_000
	bb := setupAdmin(b, Limits{MaxUpload: 256 << 20, WriteTimeout: 10 * time.Minute})
	var heap, total uint64
	for b.Loop() {
		stop := peakMemory()
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(writeRoster(pw, rows)) }()
		req, err := http.NewRequestWithContext(b.Context(), http.MethodPost, bb.url+"partner-acme/rosters?dry_run=true", pr)
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer acme-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		var tw tailWriter
		_, err = io.Copy(&tw, resp.Body)
		resp.Body.Close()
		h, tot := stop()
		heap, total = max(heap, h), max(total, tot)
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("%s: %v %q", resp.Status, err, tw.tail)
		}
		i := bytes.LastIndex(tw.tail, []byte(`,"result":`))
		var out struct{ Result Result }
		if i < 0 || json.Unmarshal(append([]byte("{"), tw.tail[i+1:]...), &out) != nil ||
			out.Result.Summary.Rows != rows || out.Result.Summary.Hires != rows {
			b.Fatalf("the answer ends %q; want a dry run of %d hires", tw.tail[max(0, len(tw.tail)-300):], rows)
		}
		b.ReportMetric(float64(tw.n)/(1<<20), "answer-MB")
	}
	b.ReportMetric(float64(heap)/(1<<20), "peak-heap-MB")
	b.ReportMetric(float64(total)/(1<<20), "peak-total-MB")
	if total > 200<<20 {
		b.Errorf("peak memory %d MiB, over the 200 MB target", total>>20)
	}
}

// junk is an endless supply of lines of random printable bytes, with quotes,
// commas and semicolons among them.
type junk struct{ r *rand.Rand }

func (j junk) Read(b []byte) (int, error) {
	const chars = "abcdefghijklmnopqrstuvwxyz0123456789 ,;\"@.-\n"
	for i := range b {
		b[i] = chars[j.r.IntN(len(chars))]
	}
	return len(b), nil
}

// BenchmarkAdminUploadJunk200MB sends 200 MB of junk, chunked (no
// Content-Length to refuse it by), after a valid header line: under the default
// cap it answers 413 after 64 MiB; with the cap raised it reads all of it and
// answers 422. It reports the peak memory of each.
//
//	go test -run '^$' -bench BenchmarkAdminUploadJunk200MB -benchtime 1x ./cmd/hrsync/internal/roster/
func BenchmarkAdminUploadJunk200MB(b *testing.B) {
	for _, c := range []struct {
		name string
		lim  Limits
		want int
	}{
		{"DefaultCap", Limits{}, http.StatusRequestEntityTooLarge},
		{"Cap256MiB", Limits{MaxUpload: 256 << 20}, http.StatusUnprocessableEntity},
	} {
		b.Run(c.name, func(b *testing.B) {
			bb := setupAdmin(b, c.lim)
			var heap, total uint64
			for b.Loop() {
				stop := peakMemory()
				body := io.MultiReader(strings.NewReader("worker_id,email\n"), io.LimitReader(junk{rand.New(rand.NewPCG(1, 2))}, 200_000_000))
				req, err := http.NewRequestWithContext(b.Context(), http.MethodPost, bb.url+"partner-acme/rosters", body)
				if err != nil {
					b.Fatal(err)
				}
				req.Header.Set("Authorization", "Bearer acme-token")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
				resp.Body.Close()
				h, tot := stop()
				heap, total = max(heap, h), max(total, tot)
				if resp.StatusCode != c.want {
					b.Fatalf("%s, want %d: %.300s", resp.Status, c.want, answer)
				}
				b.Logf("%s: %.200s", resp.Status, answer)
			}
			b.ReportMetric(float64(heap)/(1<<20), "peak-heap-MB")
			b.ReportMetric(float64(total)/(1<<20), "peak-total-MB")
			if total > 200<<20 {
				b.Errorf("peak memory %d MiB, over the 200 MB target", total>>20)
			}
		})
	}
}

// writeRosterXLSX writes a workbook of a snapshot of n people, streamed row by
// row (excelize's StreamWriter), with the start date as a date cell.
func writeRosterXLSX(path string, n int) error {
	f := excelize.NewFile()
	defer f.Close()
	sw, err := f.NewStreamWriter("Sheet1")
	if err != nil {
		return err
	}
	if err := sw.SetRow("A1", []any{"worker_id", "email", "given_name", "family_name", "org_unit", "job_title", "locale", "effective"}); err != nil {
		return err
	}
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		c, _ := excelize.CoordinatesToCellName(1, i+2)
		if err := sw.SetRow(c, []any{fmt.Sprintf("A-%07d", i), fmt.Sprintf("person.%d@acme.example", i), "Vorname",
			fmt.Sprintf("Nachname-%d", i), fmt.Sprintf("Abteilung %d", i%50), "Sachbearbeitung", "de-DE", start.AddDate(0, 0, i%365)}); err != nil {
			return err
		}
	}
	if err := sw.Flush(); err != nil {
		return err
	}
	return f.SaveAs(path)
}

// BenchmarkAdminUploadXLSX300k uploads a workbook of 300,000 people as a dry
// run through the real admin server and handler. The workbook is spooled to
// disk and its sheet streamed from a temporary file with excelize's row
// iterator: the peak memory must stay under the same 200 MB target as CSV.
//
//	go test -run '^$' -bench BenchmarkAdminUploadXLSX300k -benchtime 1x ./cmd/hrsync/internal/roster/
func BenchmarkAdminUploadXLSX300k(b *testing.B) {
	const rows = 300_000
	path := filepath.Join(b.TempDir(), "roster.xlsx")
	if err := writeRosterXLSX(path, rows); err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	bb := setupAdmin(b, Limits{MaxUpload: 256 << 20, WriteTimeout: 10 * time.Minute})
	var heap, total uint64
	for b.Loop() {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		stop := peakMemory()
		req, err := http.NewRequestWithContext(b.Context(), http.MethodPost, bb.url+"partner-acme/rosters?dry_run=true", f)
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer acme-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		var tw tailWriter
		_, err = io.Copy(&tw, resp.Body)
		resp.Body.Close()
		f.Close()
		h, tot := stop()
		heap, total = max(heap, h), max(total, tot)
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("%s: %v %q", resp.Status, err, tw.tail)
		}
		i := bytes.LastIndex(tw.tail, []byte(`,"result":`))
		var out struct{ Result Result }
		if i < 0 || json.Unmarshal(append([]byte("{"), tw.tail[i+1:]...), &out) != nil ||
			out.Result.Summary.Rows != rows || out.Result.Summary.Hires != rows || out.Result.Summary.Format != "xlsx" {
			b.Fatalf("the answer ends %q; want a dry run of %d hires", tw.tail[max(0, len(tw.tail)-300):], rows)
		}
	}
	b.ReportMetric(float64(fi.Size())/(1<<20), "file-MB")
	b.ReportMetric(float64(heap)/(1<<20), "peak-heap-MB")
	b.ReportMetric(float64(total)/(1<<20), "peak-total-MB")
	if total > 200<<20 {
		b.Errorf("peak memory %d MiB, over the 200 MB target", total>>20)
	}
}
