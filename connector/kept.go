package connector

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
)

// AttributeKeeper says which managed profile fields the LMS keeps. Some LMSs
// accept an attribute and silently drop it (SCIMMY drops employeeNumber,
// department and manager): without this, such a field shows drift after every
// write, and every later converge and reconciliation rewrites the account for
// nothing. Fields are named as ProfileDrift names them (ProfileFields).
// Implementations must be safe for concurrent use.
type AttributeKeeper interface {
	// Kept reports whether the LMS keeps field; unknown fields are kept.
	Kept(field string) bool
	// Dropped lists the fields the LMS does not keep, sorted.
	Dropped() []string
	// Written reports whether hrsync sends field at all: false for a field
	// configured as ignored (it is neither compared nor written; an update keeps
	// the LMS's value). A field learnt as dropped is still written.
	Written(field string) bool
}

// ProfileFields are the managed profile fields in the order ProfileDrift checks
// them. externalId and userName are identity, not profile: they are always kept.
var ProfileFields = []string{"email", "given_name", "family_name", "employee_number", "org_unit", "job_title", "manager_id", "locale"}

// fieldAliases maps the SCIM names of the profile fields (RFC 7643 and its
// enterprise extension) to ProfileFields.
var fieldAliases = map[string]string{
	"emails": "email", "emails.value": "email",
	"name.givenname": "given_name", "givenname": "given_name",
	"name.familyname": "family_name", "familyname": "family_name",
	"employeenumber": "employee_number",
	"department":     "org_unit",
	"title":          "job_title",
	"manager":        "manager_id", "manager.value": "manager_id",
}

// ParseProfileField reads a profile field name: one of ProfileFields, or its SCIM
// attribute name (employeeNumber, department, manager, title, name.givenName,
// name.familyName, emails, locale), case-insensitively.
func ParseProfileField(s string) (string, error) {
	n := strings.ToLower(strings.TrimSpace(s))
	if a, ok := fieldAliases[n]; ok {
		return a, nil
	}
	if slices.Contains(ProfileFields, n) {
		return n, nil
	}
	return "", fmt.Errorf("attribute %q: not a managed profile field; want one of %s, or its SCIM name (employeeNumber, department, manager, title)",
		s, strings.Join(ProfileFields, ", "))
}

// profileValues returns p's fields in ProfileFields order.
func profileValues(p Profile) []string {
	return []string{p.Email, p.GivenName, p.FamilyName, p.EmployeeNumber, p.OrgUnit, p.JobTitle, p.ManagerID, p.Locale}
}

// KeptAttributes is the AttributeKeeper that one process's converger and
// reconciler share. It learns from the answers to writes (Observe): a field sent
// non-empty and answered empty or absent is not kept by this LMS. Fields
// configured as ignored are never compared. What it learns lives in memory only:
// after a restart the first write that carries a dropped field learns it again.
type KeptAttributes struct {
	log *slog.Logger

	mu      sync.RWMutex
	ignored map[string]bool // configured: never kept
	dropped map[string]bool // learnt from answers
}

// NewKeptAttributes returns a keeper that treats ignore (see ParseProfileField) as
// never kept and learns the rest. log gets one INFO line per field learnt; nil
// discards.
func NewKeptAttributes(log *slog.Logger, ignore ...string) (*KeptAttributes, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	k := &KeptAttributes{log: log, ignored: map[string]bool{}, dropped: map[string]bool{}}
	for _, s := range ignore {
		f, err := ParseProfileField(s)
		if err != nil {
			return nil, fmt.Errorf("ignore_attributes: %w", err)
		}
		k.ignored[f] = true
	}
	return k, nil
}

// Kept reports whether the LMS keeps field.
func (k *KeptAttributes) Kept(field string) bool {
	if k == nil {
		return true
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	return !k.ignored[field] && !k.dropped[field]
}

// Dropped lists the fields configured as ignored or learnt as dropped, sorted.
func (k *KeptAttributes) Dropped() []string {
	if k == nil {
		return nil
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	var out []string
	for _, f := range ProfileFields {
		if k.ignored[f] || k.dropped[f] {
			out = append(out, f)
		}
	}
	slices.Sort(out)
	return out
}

// Observe learns from one write: sent is the account that was sent (create or
// update), got the LMS's answer. A field sent non-empty and answered empty is
// learnt as dropped; a field learnt as dropped that the answer carries again is
// kept once more (the LMS started keeping it: dropped fields are still sent).
// An answer without an ID (an adapter that returns nothing) teaches nothing.
func (k *KeptAttributes) Observe(sent, got Account) {
	if k == nil || got.ID == "" {
		return
	}
	s, g := profileValues(sent.Profile), profileValues(got.Profile)
	for i, f := range ProfileFields {
		if s[i] == "" {
			continue
		}
		drop := g[i] == ""
		k.mu.RLock()
		was := k.dropped[f]
		k.mu.RUnlock()
		if drop == was {
			continue
		}
		k.mu.Lock()
		if k.dropped[f] != drop {
			k.dropped[f] = drop
			if drop {
				k.log.Info("the LMS does not keep " + f + ": left out of drift and updates")
			} else {
				k.log.Info("the LMS keeps " + f + " again: compared and updated as before")
			}
		}
		k.mu.Unlock()
	}
}

// Written reports whether field is sent: false only if configured as ignored.
func (k *KeptAttributes) Written(field string) bool {
	if k == nil {
		return true
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	return !k.ignored[field]
}

// kept reports whether k (nil: an LMS that keeps everything) keeps field.
func kept(k AttributeKeeper, field string) bool { return k == nil || k.Kept(field) }

// writable returns p without the fields k says are never written.
func writable(p Profile, k AttributeKeeper) Profile {
	if k == nil {
		return p
	}
	for i, dst := range []*string{&p.Email, &p.GivenName, &p.FamilyName, &p.EmployeeNumber, &p.OrgUnit, &p.JobTitle, &p.ManagerID, &p.Locale} {
		if !k.Written(ProfileFields[i]) {
			*dst = ""
		}
	}
	return p
}

// withAttributes returns policy with Policy.Attributes set to k where a feed's
// policy sets none.
func withAttributes(policy func(feed string) Policy, k AttributeKeeper) func(feed string) Policy {
	if k == nil || (isNilKeeper(k)) {
		return policy
	}
	return func(feed string) Policy {
		p := policy(feed)
		if p.Attributes == nil {
			p.Attributes = k
		}
		return p
	}
}

func isNilKeeper(k AttributeKeeper) bool {
	kk, ok := k.(*KeptAttributes)
	return ok && kk == nil
}
