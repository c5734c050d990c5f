package main

import (
	"fmt"
	"math"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/pflag"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/roster"
)

// adminFlags are the flags of the admin port's limits.
type adminFlags struct {
	maxUpload string
	l         roster.Limits
}

func (f *adminFlags) register(fs *pflag.FlagSet) {
	d := roster.DefaultLimits()
	fs.StringVar(&f.maxUpload, "admin-max-upload", humanize.IBytes(uint64(d.MaxUpload)), "largest roster upload the admin API accepts, e.g. 64MiB or 200MB; larger answers 413")
	envFlag(fs, "admin-max-upload", "HRSYNC_ADMIN_MAX_UPLOAD")
	fs.IntVar(&f.l.UploadsPerToken, "admin-uploads-per-token", d.UploadsPerToken, "roster uploads one token may have in flight; one more answers 429")
	envFlag(fs, "admin-uploads-per-token", "HRSYNC_ADMIN_UPLOADS_PER_TOKEN")
	fs.DurationVar(&f.l.ReadHeaderTimeout, "admin-read-header-timeout", d.ReadHeaderTimeout, "admin port: time to receive a request's headers")
	envFlag(fs, "admin-read-header-timeout", "HRSYNC_ADMIN_READ_HEADER_TIMEOUT")
	fs.DurationVar(&f.l.ReadTimeout, "admin-read-timeout", d.ReadTimeout, "admin port: time to receive a whole request, body included (a roster upload)")
	envFlag(fs, "admin-read-timeout", "HRSYNC_ADMIN_READ_TIMEOUT")
	fs.DurationVar(&f.l.WriteTimeout, "admin-write-timeout", d.WriteTimeout, "admin port: time from the end of a request's headers to the end of its response")
	envFlag(fs, "admin-write-timeout", "HRSYNC_ADMIN_WRITE_TIMEOUT")
	fs.DurationVar(&f.l.IdleTimeout, "admin-idle-timeout", d.IdleTimeout, "admin port: how long a kept-alive connection may wait for its next request")
	envFlag(fs, "admin-idle-timeout", "HRSYNC_ADMIN_IDLE_TIMEOUT")
}

// config checks the flags and returns the limits.
func (f *adminFlags) config() (roster.Limits, error) {
	l := f.l
	n, err := humanize.ParseBytes(f.maxUpload)
	switch {
	case err != nil:
		return l, fmt.Errorf("--admin-max-upload %q: not a size; want bytes or a size such as 64MiB", f.maxUpload)
	case n == 0 || n > math.MaxInt64:
		return l, fmt.Errorf("--admin-max-upload %q: must be more than 0 bytes", f.maxUpload)
	}
	l.MaxUpload = int64(n)
	if l.UploadsPerToken < 1 {
		return l, fmt.Errorf("--admin-uploads-per-token %d: must be at least 1", l.UploadsPerToken)
	}
	for _, t := range []struct {
		name string
		d    time.Duration
	}{{"admin-read-header-timeout", l.ReadHeaderTimeout}, {"admin-read-timeout", l.ReadTimeout},
		{"admin-write-timeout", l.WriteTimeout}, {"admin-idle-timeout", l.IdleTimeout}} {
		if t.d <= 0 {
			return l, fmt.Errorf("--%s %s: must be positive (a timeout of 0 would let a client hold a connection for ever)", t.name, t.d)
		}
	}
	return l, nil
}
