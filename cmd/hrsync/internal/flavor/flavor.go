// Package flavor lists the ways the sandbox LMS can be spoken to: its own SCIM
// 2.0 server, and simulators of vendors' APIs (Docebo, Moodle) over the same
// in-memory accounts and training history. "hrsync sandbox-lms --flavor NAME"
// serves one; "hrsync demo --lms NAME" plays the season through one, with the
// adapter hrsync runs against the real vendor. A flavor is one file in this
// package that registers itself.
package flavor

import (
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/app"
	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/sandbox"
)

// Flavor is one API the sandbox LMS can be served with.
type Flavor struct {
	// Name is the value of --flavor and --lms, and the lms.type of its adapter.
	Name string
	// Path is where the API lives under the server's root ("/scim/v2"); the
	// LMS URL that hrsync is given is the server's root followed by Path.
	Path string
	// Handler serves sb over the API at the server's root; secret is the
	// credential clients must present (a bearer token, Moodle's wstoken, Docebo's
	// client secret); empty means no authentication where the API allows that.
	Handler func(sb *sandbox.LMS, secret string) http.Handler
	// Settings are the LMS settings with which hrsync reaches a simulator whose
	// API is at url (root + Path), with secret.
	Settings func(url, secret string) app.LMSSettings
	// Sandbox are the options the sandbox LMS served with this flavor is made
	// with (Docebo and Moodle number their users: their simulators want decimal
	// ids, so that the ids hrsync links are the sandbox's own).
	Sandbox []sandbox.Option
}

var (
	mu       sync.RWMutex
	registry = map[string]Flavor{}
)

// Register adds f; a second flavor of the same name is a programming error.
func Register(f Flavor) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := registry[f.Name]; dup {
		panic("flavor: " + f.Name + " registered twice")
	}
	registry[f.Name] = f
}

// Get returns the flavor name, or an error that lists the known ones.
func Get(name string) (Flavor, error) {
	mu.RLock()
	defer mu.RUnlock()
	f, ok := registry[name]
	if !ok {
		return Flavor{}, fmt.Errorf("unknown LMS flavor %q: want one of %s", name, strings.Join(namesLocked(), ", "))
	}
	return f, nil
}

// Names lists the registered flavors, sorted.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	return namesLocked()
}

func namesLocked() []string {
	var ns []string
	for n := range registry {
		ns = append(ns, n)
	}
	sort.Strings(ns)
	return slices.Clip(ns)
}

// LMS returns the LMS settings that reach a simulator of f whose API is at url,
// with the defaults a configuration file gets (timeout, rate).
func (f Flavor) LMS(url, secret string) app.LMSSettings {
	s := f.Settings(url, secret)
	return app.LMSConfig{Type: s.Type}.Over(s, nil)
}

// Open opens the adapter that lms.type f names, to the simulator at url, behind
// the guard, as the app does for every command: tests and tools that talk to a
// simulator directly go through the same registry and guard.
func (f Flavor) Open(url, secret string) (connector.LMS, error) {
	return app.GuardedLMS(f.LMS(url, secret), nil, slog.New(slog.DiscardHandler), nil)
}
