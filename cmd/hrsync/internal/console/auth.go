package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/time/rate"
)

// sessionCookie and loginCookie are the console's cookies: the session, and the
// token that ties a sign-in form to the browser that asked for it (login CSRF).
const (
	sessionCookie = "hrsync_console"
	loginCookie   = "hrsync_console_login"
)

// User is a signed-in person.
type User struct {
	Name  string
	Role  Role
	Feeds []string // empty: every feed
}

// SeesFeed reports whether u may see feed's holds and audit. A hold of no
// single feed ("": a clean-up across feeds) is for users of every feed.
func (u User) SeesFeed(feed string) bool {
	return len(u.Feeds) == 0 || (feed != "" && slices.Contains(u.Feeds, feed))
}

// MayDecide reports whether u may approve, reject or run holds of feed.
func (u User) MayDecide(feed string) bool {
	return u.Role.AtLeast(RoleApprover) && (u.Role == RoleAdmin || u.SeesFeed(feed))
}

// session is one sign-in: who, the CSRF token of its forms, and until when.
type session struct {
	user    User
	csrf    string
	expires time.Time
}

// sessions are kept in memory: a restart signs everyone out, and replicas
// behind one address need sticky sessions (docs/console.md).
type sessions struct {
	mu  sync.Mutex
	m   map[string]*session
	ttl time.Duration
	now func() time.Time
}

// maxSessions bounds memory; past it, sessions are dropped, soonest to expire first.
const maxSessions = 10000

func randomToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("console: crypto/rand: " + err.Error()) // never fails on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (s *sessions) create(u User) (id string, ss *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if len(s.m) >= maxSessions {
		// Those that expire soonest first; then, if sign-ins keep coming faster
		// than sessions expire, any, so that memory stays bounded.
		for k, v := range s.m {
			if v.expires.Before(now.Add(s.ttl / 2)) {
				delete(s.m, k)
			}
		}
		for k := range s.m {
			if len(s.m) < maxSessions/2 {
				break
			}
			delete(s.m, k)
		}
	}
	id = randomToken()
	ss = &session{user: u, csrf: randomToken(), expires: now.Add(s.ttl)}
	s.m[id] = ss
	return id, ss
}

func (s *sessions) get(id string) (*session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.m[id]
	if !ok {
		return nil, false
	}
	if !s.now().Before(ss.expires) {
		delete(s.m, id)
		return nil, false
	}
	return ss, true
}

func (s *sessions) drop(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
}

// tokensEqual compares two tokens in constant time; an empty token never matches.
func tokensEqual(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// loginLimiter bounds sign-in attempts per user name and per client address, so
// that neither guessing one user's password nor spraying many users is fast.
type loginLimiter struct {
	mu    sync.Mutex
	every rate.Limit
	burst int
	m     map[string]*rate.Limiter
}

// maxLimiters bounds memory: past it the map starts again (an attacker who
// fills it only resets counts that were mostly theirs).
const maxLimiters = 10000

func newLoginLimiter(perMinute int) *loginLimiter {
	return &loginLimiter{every: rate.Limit(float64(perMinute) / 60), burst: perMinute, m: map[string]*rate.Limiter{}}
}

// allow takes one attempt for each key; all must have one left.
func (l *loginLimiter) allow(now time.Time, keys ...string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.m) > maxLimiters {
		l.m = map[string]*rate.Limiter{}
	}
	ok := true
	for _, k := range keys {
		lim, found := l.m[k]
		if !found {
			lim = rate.NewLimiter(l.every, l.burst)
			l.m[k] = lim
		}
		if !lim.AllowN(now, 1) {
			ok = false
		}
	}
	return ok
}

// clientAddr is the request's remote host, without the port.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// localUsers checks a user name and password against the configured users.
type localUsers struct {
	byName map[string]UserConfig
	// dummy is compared when the name is unknown, so that the answer takes as
	// long as for a known name with a wrong password.
	dummy []byte
}

func newLocalUsers(us []UserConfig) *localUsers {
	l := &localUsers{byName: map[string]UserConfig{}}
	for _, u := range us {
		l.byName[strings.ToLower(u.Name)] = u
	}
	l.dummy, _ = bcrypt.GenerateFromPassword([]byte(randomToken()), bcrypt.DefaultCost)
	return l
}

// check returns the user if name and password match one.
func (l *localUsers) check(name, password string) (User, bool) {
	u, ok := l.byName[strings.ToLower(strings.TrimSpace(name))]
	if !ok || u.PasswordHash == "" {
		_ = bcrypt.CompareHashAndPassword(l.dummy, []byte(password))
		return User{}, false
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) != nil {
		return User{}, false
	}
	return User{Name: u.Name, Role: u.Role, Feeds: u.Feeds}, true
}

// byClaim returns the configured user an OIDC claim names.
func (l *localUsers) byClaim(name string) (User, bool) {
	u, ok := l.byName[strings.ToLower(strings.TrimSpace(name))]
	if !ok || name == "" {
		return User{}, false
	}
	return User{Name: u.Name, Role: u.Role, Feeds: u.Feeds}, true
}
