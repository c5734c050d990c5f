package connector

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// FeedKind says whose people a feed speaks for.
type FeedKind string

// The kinds of feed.
const (
	FeedHR      FeedKind = "hr"      // the company's own HRIS
	FeedPartner FeedKind = "partner" // a partner organisation's roster
)

// Scope is the set of LMS accounts a feed may touch. Matching and every action are
// confined to it, so a partner can never reach an employee's account or another
// partner's.
type Scope struct {
	// ExternalIDPrefixes: an account whose externalId starts with one of these is in
	// scope. The feed's own "<feed>:" prefix is always included.
	ExternalIDPrefixes []string `json:"external_id_prefixes,omitempty"`
	// AdoptUnmanaged lets the feed match accounts that carry no externalId at all
	// (accounts created by hand before hrsync). Default: true for hr feeds, false
	// for partner feeds.
	AdoptUnmanaged bool `json:"adopt_unmanaged"`
	// Organizations, where the LMS has organisations or branches: an account is
	// in scope only if its Organization is one of these (case-insensitive), on
	// top of the externalId rule. Accounts hrsync creates for the feed get the
	// first. Empty: no organisation rule.
	Organizations []string `json:"organizations,omitempty"`
}

// Feed is one source of HR facts.
type Feed struct {
	Name string   `json:"name"`
	Kind FeedKind `json:"kind"`
	// Source is the CloudEvents source every event of the feed must carry.
	Source string `json:"source"`
	// Location is the zone in which bare dates (2026-12-01) start.
	Location *time.Location `json:"-"`
	Scope    Scope          `json:"scope"`
	// PreHireLeadDays creates a new hire's account this many days before the start
	// date; 0 (the default) creates it on the start date.
	PreHireLeadDays int `json:"pre_hire_lead_days,omitempty"`
	// PreHireActive makes that account active at once; by default it is inactive
	// until the start date.
	PreHireActive bool `json:"pre_hire_active,omitempty"`
	// Leaver is the feed's leaver policy (default deactivate) and DeleteAfter its
	// grace period or time inactive before a deletion (see LeaverAction).
	Leaver      LeaverAction  `json:"leaver,omitempty"`
	DeleteAfter time.Duration `json:"delete_after,omitempty"`
}

// Policy returns base with the feed's pre-hire lead time laid over it.
func (f Feed) Policy(base Policy) Policy {
	base.PreHireLead = time.Duration(f.PreHireLeadDays) * 24 * time.Hour
	base.PreHireActive = f.PreHireActive
	if f.Leaver != "" {
		base.Leaver, base.DeleteAfter = f.Leaver, f.DeleteAfter
	}
	return base
}

// DefaultFeed returns the feed configuration used when nothing else is said:
// source /feeds/<name>, UTC, its own externalId prefix, adopting unmanaged accounts
// only for hr feeds.
func DefaultFeed(name string, kind FeedKind) Feed {
	if kind == "" {
		kind = FeedHR
	}
	return Feed{
		Name:     name,
		Kind:     kind,
		Source:   "/feeds/" + name,
		Location: time.UTC,
		Scope:    Scope{AdoptUnmanaged: kind == FeedHR},
	}
}

// Validate checks a feed's configuration and names the field that is wrong.
func (f Feed) Validate() error {
	if !ValidFeedName(f.Name) {
		return fmt.Errorf("feed %q: name must match [a-z0-9-]+", f.Name)
	}
	if f.Kind != FeedHR && f.Kind != FeedPartner {
		return fmt.Errorf("feed %q: kind %q must be hr or partner", f.Name, f.Kind)
	}
	if f.Source == "" {
		return fmt.Errorf("feed %q: source is required", f.Name)
	}
	if f.Location == nil {
		return fmt.Errorf("feed %q: timezone is required", f.Name)
	}
	if _, err := ParseLeaverAction(string(f.Leaver)); err != nil {
		return fmt.Errorf("feed %q: %w", f.Name, err)
	}
	if f.Leaver.Deletes() && f.DeleteAfter <= 0 {
		return fmt.Errorf("feed %q: leaver.delete_after must be positive for the %s policy (e.g. 720h)", f.Name, f.Leaver)
	}
	if f.PreHireLeadDays < 0 || f.PreHireLeadDays > 366 {
		return fmt.Errorf("feed %q: pre_hire_lead_days %d must be between 0 and 366", f.Name, f.PreHireLeadDays)
	}
	for _, p := range f.Scope.ExternalIDPrefixes {
		if p == "" {
			return fmt.Errorf("feed %q: scope.external_id_prefixes has an empty prefix, which would match every account", f.Name)
		}
	}
	return nil
}

// InScope reports whether the feed may touch account a.
func (f Feed) InScope(a Account) bool {
	if len(f.Scope.Organizations) > 0 && !slices.ContainsFunc(f.Scope.Organizations, func(o string) bool {
		return strings.EqualFold(o, a.Organization)
	}) {
		return false
	}
	if a.ExternalID == "" {
		return f.Scope.AdoptUnmanaged
	}
	if strings.HasPrefix(a.ExternalID, f.Name+":") {
		return true
	}
	for _, p := range f.Scope.ExternalIDPrefixes {
		if strings.HasPrefix(a.ExternalID, p) {
			return true
		}
	}
	return false
}

// Feeds is the set of configured feeds, by name.
type Feeds map[string]Feed

// NewFeeds validates fs and indexes them by name. Two feeds may not share a name or
// a source.
func NewFeeds(fs ...Feed) (Feeds, error) {
	out := Feeds{}
	sources := map[string]string{}
	for _, f := range fs {
		if err := f.Validate(); err != nil {
			return nil, err
		}
		if _, dup := out[f.Name]; dup {
			return nil, fmt.Errorf("feed %q: declared twice", f.Name)
		}
		if other, dup := sources[f.Source]; dup {
			return nil, fmt.Errorf("feed %q: source %q is already used by feed %q", f.Name, f.Source, other)
		}
		sources[f.Source] = f.Name
		out[f.Name] = f
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no feeds configured")
	}
	return out, nil
}

// Names returns the feed names, sorted.
func (fs Feeds) Names() []string {
	names := make([]string, 0, len(fs))
	for n := range fs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
