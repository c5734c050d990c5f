// Package console is the admin console that hrsync run serves on its own
// address (docs/console.md): server-rendered pages for the people who decide
// holds and read the audit trail. Who acts is the signed-in user, never free
// text; every state-changing request is authenticated, authorised by role and
// feed, and CSRF-protected. The console holds no rule of its own: it calls the
// store's decisions (DecideHold, AllowSample, where four eyes are enforced) and
// the same use cases as the CLI (roster.PublishApprovedHold).
package console

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Config is console: in the configuration file.
type Config struct {
	// Addr is the console's own listen address, apart from the admin port;
	// empty: no console (--console-addr, HRSYNC_CONSOLE_ADDR, override it).
	Addr string `yaml:"addr"`
	// TLSCert and TLSKey, both set, serve HTTPS.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// SecureCookies marks the session cookie Secure; default: true with TLS.
	// Set it true behind a proxy that ends TLS.
	SecureCookies *bool `yaml:"secure_cookies"`
	// SessionTTL is how long a sign-in lasts; default 8h.
	SessionTTL time.Duration `yaml:"session_ttl"`
	// LoginsPerMinute bounds sign-in attempts per user name and per client
	// address; default 5 (with a burst of as many).
	LoginsPerMinute int `yaml:"logins_per_minute"`
	// Users are who may sign in: with a password (small installs), or through
	// OIDC, whose claim names them here.
	Users []UserConfig `yaml:"users"`
	// OIDC is sign-in through the company's identity provider.
	OIDC OIDCConfig `yaml:"oidc"`
}

// UserConfig is one local user.
type UserConfig struct {
	// Name is who signs in: the name typed with a password, or the OIDC claim's
	// value (an email by default).
	Name string `yaml:"name"`
	// PasswordHash is a bcrypt hash (hrsync console hash-password); the password
	// itself is never in the file. Empty with OIDC: the user signs in only there.
	PasswordHash string `yaml:"password_hash"`
	// Role is viewer, approver or admin.
	Role Role `yaml:"role"`
	// Feeds are the feeds the user sees and acts on; empty: every feed. A
	// partner's power user names only their feed.
	Feeds []string `yaml:"feeds"`
}

// Role is what a user may do.
type Role string

// The roles, each allowed what the one before it is.
const (
	// RoleViewer reads holds and the audit trail.
	RoleViewer Role = "viewer"
	// RoleApprover also approves, rejects and runs holds of their feeds.
	RoleApprover Role = "approver"
	// RoleAdmin also acts on every feed's holds whatever their feeds.
	RoleAdmin Role = "admin"
)

func (r Role) rank() int {
	switch r {
	case RoleViewer:
		return 1
	case RoleApprover:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// AtLeast reports whether r is allowed what min is.
func (r Role) AtLeast(min Role) bool { return r.rank() >= min.rank() && r.rank() > 0 }

// Enabled reports whether the console is to be served.
func (c Config) Enabled() bool { return c.Addr != "" }

// Check says what is wrong with c, naming each field; feeds are the configured
// feed names, which users' feeds must be among.
func (c Config) Check(feeds []string) error {
	var errs []error
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("console.tls_cert and console.tls_key: set both or neither"))
	}
	if c.SessionTTL < 0 {
		errs = append(errs, fmt.Errorf("console.session_ttl %s: must not be negative", c.SessionTTL))
	}
	if c.LoginsPerMinute < 0 {
		errs = append(errs, fmt.Errorf("console.logins_per_minute %d: must not be negative", c.LoginsPerMinute))
	}
	if c.Enabled() && len(c.Users) == 0 && len(c.OIDC.Roles) == 0 {
		errs = append(errs, errors.New("console.users: the console is on (console.addr) but has no user; add one with a hash from hrsync console hash-password, or console.oidc.roles"))
	}
	seen := map[string]bool{}
	for i, u := range c.Users {
		where := fmt.Sprintf("console.users[%d]", i)
		switch {
		case strings.TrimSpace(u.Name) == "" || u.Name != strings.TrimSpace(u.Name):
			errs = append(errs, fmt.Errorf("%s.name %q: required, without surrounding spaces", where, u.Name))
		case seen[strings.ToLower(u.Name)]:
			errs = append(errs, fmt.Errorf("%s.name %q: a second user of that name", where, u.Name))
		}
		seen[strings.ToLower(u.Name)] = true
		if u.PasswordHash == "" && c.OIDC.Enabled() {
			// Signs in through OIDC only.
		} else if _, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil {
			errs = append(errs, fmt.Errorf("%s.password_hash: not a bcrypt hash (make one with hrsync console hash-password): %w", where, err))
		}
		if u.Role.rank() == 0 {
			errs = append(errs, fmt.Errorf("%s.role %q: want viewer, approver or admin", where, u.Role))
		}
		for _, f := range u.Feeds {
			if !slices.Contains(feeds, f) {
				errs = append(errs, fmt.Errorf("%s.feeds: %q is not a configured feed (configured: %s)", where, f, strings.Join(feeds, ", ")))
			}
		}
	}
	if err := c.OIDC.check(feeds); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// HashPassword returns the bcrypt hash of password for console.users[].password_hash.
func HashPassword(password string) (string, error) {
	if len(password) < 12 {
		return "", errors.New("the password must be at least 12 characters")
	}
	if len(password) > 72 {
		return "", errors.New("the password must be at most 72 bytes (bcrypt reads no further)")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	return string(h), err
}
