package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// The CPU an event costs, so that a run on a small machine says what a larger
// deployment could do: the bench process (the consumer, the converger, and the
// embedded NATS server and in-process sandbox LMS when those are used) and the
// PostgreSQL server's processes on this machine, read from /proc.

// cpuSample is the CPU time used so far by this process, by the PostgreSQL
// server's processes and by nats-server processes (-1 where /proc cannot tell).
type cpuSample struct {
	self     time.Duration
	postgres time.Duration
	nats     time.Duration // nats-server processes (--nats-url on this machine)
}

func sampleCPU() cpuSample {
	var ru syscall.Rusage
	s := cpuSample{self: -1}
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	s.postgres = processCPU("postgres")
	s.nats = processCPU("nats-server")
	return s
}

// clockTick is the unit of /proc/PID/stat's utime and stime (USER_HZ, 100 on
// every Linux architecture Go supports).
const clockTick = 10 * time.Millisecond

// processCPU sums the CPU time (user and system) of the processes named comm
// that are alive now, or -1 when /proc is not there. A backend that ended
// between two samples takes its time with it, so the difference of two samples
// is a lower bound; the bench's connections live for the whole run.
func processCPU(comm string) time.Duration {
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil || len(stats) == 0 {
		return -1
	}
	var total time.Duration
	found := false
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // it ended meanwhile, or is not ours to read
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
		open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if open < 0 || end < open || string(b[open+1:end]) != comm {
			continue
		}
		f := bytes.Fields(b[end+1:])
		if len(f) < 13 { // f[0] is state; utime and stime are the 14th and 15th fields of the line
			continue
		}
		u, err1 := strconv.ParseInt(string(f[11]), 10, 64)
		st, err2 := strconv.ParseInt(string(f[12]), 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		total += time.Duration(u+st) * clockTick
		found = true
	}
	if !found {
		return -1
	}
	return total
}

// cpuPerEvent is the CPU time between two samples divided by n events, in
// microseconds (-1 when not known).
func cpuPerEvent(from, to time.Duration, n int) float64 {
	if from < 0 || to < 0 || n <= 0 {
		return -1
	}
	return float64(to-from) / float64(time.Microsecond) / float64(n)
}
