package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/time/rate"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
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

// session is one sign-in: who, the CSRF token of its forms, and until when;
// key names it (the SHA-256 of its cookie), also in the store.
type session struct {
	key     string
	user    User
	csrf    string
	expires time.Time
}

// SessionStore keeps the console's sessions in the database, so that a
// sign-in survives a restart of the daemon and works on every replica behind
// one address. Implemented by *store.DB.
type SessionStore interface {
	CreateConsoleSession(ctx context.Context, s store.ConsoleSession, max int) error
	// GetConsoleSession returns an error matching connector.ErrNotFound for a
	// session that is unknown, ended or expired at now.
	GetConsoleSession(ctx context.Context, idHash string, now time.Time) (store.ConsoleSession, error)
	DeleteConsoleSession(ctx context.Context, idHash string) error
}

// sessions are the console's sign-ins, kept in the store by the SHA-256 of
// their cookie's value: a reader of the database cannot sign in with a row.
type sessions struct {
	store SessionStore
	ttl   time.Duration
	now   func() time.Time
}

// maxSessions bounds the table: past it, sessions are dropped, soonest to
// expire first.
const maxSessions = 10000

// sessionKey is the store's name of the session whose cookie holds id.
func sessionKey(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

func randomToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("console: crypto/rand: " + err.Error()) // never fails on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// create signs u in: a new session, stored, and the cookie value that names it.
func (s *sessions) create(ctx context.Context, u User) (id string, ss *session, err error) {
	now := s.now()
	id = randomToken()
	ss = &session{key: sessionKey(id), user: u, csrf: randomToken(), expires: now.Add(s.ttl)}
	err = s.store.CreateConsoleSession(ctx, store.ConsoleSession{IDHash: ss.key, User: u.Name, Role: string(u.Role), Feeds: u.Feeds,
		CSRF: ss.csrf, CreatedAt: now, ExpiresAt: ss.expires}, maxSessions)
	return id, ss, err
}

// get returns the live session whose cookie holds id; ok is false for none
// (or an expired one). err is the store's failure to say.
func (s *sessions) get(ctx context.Context, id string) (ss *session, ok bool, err error) {
	if id == "" {
		return nil, false, nil
	}
	st, err := s.store.GetConsoleSession(ctx, sessionKey(id), s.now())
	if errors.Is(err, connector.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return &session{key: st.IDHash, user: User{Name: st.User, Role: Role(st.Role), Feeds: st.Feeds}, csrf: st.CSRF, expires: st.ExpiresAt}, true, nil
}

// drop ends the session whose cookie holds id.
func (s *sessions) drop(ctx context.Context, id string) error {
	return s.store.DeleteConsoleSession(ctx, sessionKey(id))
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
