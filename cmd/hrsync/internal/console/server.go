package console

import (
	"cmp"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hrsync/hrsync/cmd/hrsync/internal/deadletter"
	"github.com/hrsync/hrsync/cmd/hrsync/internal/person"
	"github.com/hrsync/hrsync/cmd/hrsync/internal/review"
	"github.com/hrsync/hrsync/cmd/hrsync/internal/roster"
	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/store"
)

//go:embed templates/*.html static/*
var assets embed.FS

// Store is what the console reads and decides through. Implemented by *store.DB,
// whose DecideHold and AllowSample enforce four eyes.
type Store interface {
	ListHolds(ctx context.Context, f store.HoldFilter) ([]connector.Hold, error)
	GetHold(ctx context.Context, id int64) (connector.Hold, error)
	HoldWorkers(ctx context.Context, id int64, after connector.WorkerKey, limit int) ([]connector.HeldWorker, error)
	// LinksOf names the accounts of held people whose hold does not (an upload's).
	LinksOf(ctx context.Context, ws []connector.WorkerKey) (map[connector.WorkerKey]string, error)
	JobItems(ctx context.Context, hold int64, after, limit int) ([]connector.JobItem, error)
	JobCounts(ctx context.Context, hold int64) (map[connector.JobItemStatus]int, error)
	DecideHold(ctx context.Context, id int64, d connector.HoldDecision) (connector.Hold, error)
	AllowSample(ctx context.Context, id int64, n int, by, reason string) (connector.Hold, error)
	ListAudit(ctx context.Context, f store.AuditFilter) ([]connector.AuditEntry, error)
	ListDeadLetters(ctx context.Context, f store.DeadLetterFilter) ([]connector.DeadLetter, error)
	ListReviews(ctx context.Context, f store.ReviewFilter) ([]connector.Review, error)
	// A person's page.
	LoadHistory(ctx context.Context, w connector.WorkerKey) (connector.History, error)
	connector.LinkReader
	connector.StateActionReader
	// The overview.
	FeedActivity(ctx context.Context) (map[string]store.FeedActivity, error)
	DailyFacts(ctx context.Context, since, until time.Time) ([]store.DayCount, error)
	DailyActions(ctx context.Context, since, until time.Time) ([]store.DayCount, error)
	// The dead letters' and the review items' use cases, shared with the CLI.
	deadletter.Store
	review.Store
	// Sessions, so that a sign-in survives a restart and works on every replica.
	SessionStore
}

var _ Store = (*store.DB)(nil)

// Deps are the parts of the app the console works with.
type Deps struct {
	Store Store
	// Feeds are the configured feeds (a dead letter's replay decodes with them).
	Feeds connector.Feeds
	// PublishUpload publishes the events of an approved upload hold
	// (roster.PublishApprovedHold on the daemon's JetStream); nil: the console
	// says to run hrsync holds approve ID again from the CLI.
	PublishUpload func(ctx context.Context, id int64) (int, error)
	// PublishSample publishes the sampled leavers of an open upload hold
	// (roster.PublishSample on the daemon's JetStream); nil: the console says to
	// run hrsync holds approve ID --sample-batch N from the CLI.
	PublishSample func(ctx context.Context, id int64) (int, error)
	// Uploader runs roster uploads from the upload page, as the CLI and the
	// admin API do (nil: no upload page); MaxUpload is the largest file, in
	// bytes (the admin API's limit; 0: roster.DefaultLimits).
	Uploader  *roster.Uploader
	MaxUpload int64
	// RunJob runs the approved part of a clean-up or offboarding hold (what
	// hrsync holds run does); nil: the console has no run button.
	RunJob func(ctx context.Context, id int64) error
	// LMS is the LMS behind the guard, for a person's page to read their account
	// (nil: the page says it cannot).
	LMS connector.LMS
	// Policy is a feed's policy as the converger applies it.
	Policy func(feed string) connector.Policy
	// Converger converges one person now ("sync now"): the daemon's converger
	// (person.Apply, as hrsync explain --apply); nil: no sync now.
	Converger person.Converger
	// Settle is the safeguard's settle period (safeguard.settle): sync now waits
	// for a removal's burst to be judged, as explain --apply does.
	Settle time.Duration
	// Lag is a feed's consumer lag: messages not delivered yet, and delivered
	// but not acknowledged (nil: the overview says "-").
	Lag func(ctx context.Context, feed string) (pending, ackPending uint64, err error)
	// LMSState is the LMS guard's quarantine state (nil: not shown).
	LMSState func() LMSState
	// Getenv reads the OIDC client secret (nil: os.Getenv).
	Getenv func(string) string
	Log    *slog.Logger
	Now    func() time.Time
}

// Server is the console.
type Server struct {
	cfg      Config
	d        Deps
	log      *slog.Logger
	now      func() time.Time
	users    *localUsers
	sessions *sessions
	logins   *loginLimiter
	pages    map[string]*template.Template
	secure   bool
	oidc     *oidcLogin

	// runs are the job holds being run by this process, so that a second click
	// does not start a second run; ctx is the server's, cancelled at shutdown.
	runMu sync.Mutex
	runs  map[int64]bool
	ctx   context.Context

	// pending are the dry runs waiting for their confirmation.
	pending uploads

	// The latest scheduled reconciliation (Reconciled).
	recMu      sync.Mutex
	lastRec    connector.ReconcileSummary
	lastRecErr error
	haveRec    bool
}

// New builds the console of cfg on d; cfg must have passed Check.
func New(cfg Config, d Deps) (*Server, error) {
	if d.Store == nil {
		return nil, errors.New("console: a store is required")
	}
	s := &Server{cfg: cfg, d: d, log: cmp.Or(d.Log, slog.New(slog.DiscardHandler)), now: d.Now, runs: map[int64]bool{},
		ctx: context.Background()}
	if s.now == nil {
		s.now = time.Now
	}
	s.secure = cfg.TLSCert != ""
	if cfg.SecureCookies != nil {
		s.secure = *cfg.SecureCookies
	}
	s.users = newLocalUsers(cfg.Users)
	s.oidc = newOIDCLogin(cfg.OIDC, d.Getenv)
	s.sessions = &sessions{store: d.Store, ttl: cmp.Or(cfg.SessionTTL, 8*time.Hour), now: s.now}
	s.logins = newLoginLimiter(cmp.Or(cfg.LoginsPerMinute, 5))
	var err error
	if s.pages, err = parsePages(); err != nil {
		return nil, err
	}
	return s, nil
}

// parsePages parses each page with the layout it is drawn in.
func parsePages() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"time": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format("2006-01-02 15:04:05Z")
		},
		"timep": func(t *time.Time) string {
			if t == nil {
				return ""
			}
			return t.UTC().Format("2006-01-02 15:04:05Z")
		},
		"join": strings.Join,
		"name": displayName,
		"plan": connector.PlanString,
		"actions": func() []string {
			return []string{string(connector.ActionCreate), string(connector.ActionUpdate), string(connector.ActionDeactivate),
				string(connector.ActionReactivate), string(connector.ActionDelete), string(connector.ActionAnonymise), string(connector.ActionNone)}
		},
	}
	names, err := fs.Glob(assets, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New(base).Funcs(funcs).ParseFS(assets, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", n, err)
		}
		pages[base] = t
	}
	return pages, nil
}

// Handler serves the console. Unsafe cross-origin requests are refused before
// any handler runs (http.CrossOriginProtection, by Sec-Fetch-Site and Origin),
// and each form also carries the session's CSRF token.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(assets, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /login", s.loginForm)
	mux.HandleFunc("POST /login", s.login)
	mux.HandleFunc("GET /login/oidc", s.oidcStart)
	mux.HandleFunc("GET /login/callback", s.oidcCallback)
	mux.HandleFunc("POST /logout", s.form(RoleViewer, s.logout))
	mux.HandleFunc("GET /{$}", s.page(RoleViewer, s.overview))
	mux.HandleFunc("GET /holds", s.page(RoleViewer, s.holds))
	mux.HandleFunc("GET /holds/{id}", s.page(RoleViewer, s.hold))
	mux.HandleFunc("POST /holds/{id}/approve", s.form(RoleApprover, s.decide(true)))
	mux.HandleFunc("POST /holds/{id}/reject", s.form(RoleApprover, s.decide(false)))
	mux.HandleFunc("POST /holds/{id}/sample", s.form(RoleApprover, s.sample))
	mux.HandleFunc("POST /holds/{id}/run", s.form(RoleApprover, s.run))
	mux.HandleFunc("GET /dead", s.page(RoleViewer, s.deadLetters))
	mux.HandleFunc("GET /dead/{id}", s.page(RoleViewer, s.deadLetter))
	mux.HandleFunc("POST /dead/{id}/replay", s.form(RoleApprover, s.replayDeadLetter))
	mux.HandleFunc("POST /dead/{id}/discard", s.form(RoleApprover, s.discardDeadLetter))
	mux.HandleFunc("GET /reviews", s.page(RoleViewer, s.reviews))
	mux.HandleFunc("POST /reviews/{id}/resolve", s.form(RoleApprover, s.resolveReview))
	mux.HandleFunc("GET /person", s.page(RoleViewer, s.personSearch))
	mux.HandleFunc("POST /person", s.form(RoleViewer, s.person))
	mux.HandleFunc("POST /person/sync", s.form(RoleApprover, s.syncNow))
	mux.HandleFunc("GET /drift", s.page(RoleViewer, s.drift))
	mux.HandleFunc("GET /upload", s.page(RoleApprover, s.uploadPage))
	mux.HandleFunc("POST /upload", s.uploadDryRun)
	mux.HandleFunc("POST /upload/confirm", s.form(RoleApprover, s.uploadConfirm))
	mux.HandleFunc("GET /audit", s.page(RoleViewer, s.audit))
	mux.HandleFunc("POST /audit", s.form(RoleViewer, s.auditSearch))
	return securityHeaders(http.NewCrossOriginProtection().Handler(mux))
}

// securityHeaders: no script runs, nothing is framed or cached, no referrer leaks.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

// Serve serves the console on ln until ctx is done, over TLS if configured.
func (s *Server) Serve(ctx context.Context, ln net.Listener) (stop func()) {
	s.ctx = ctx
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 2 * time.Minute, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
	go func() {
		var err error
		if s.cfg.TLSCert != "" {
			err = srv.ServeTLS(ln, s.cfg.TLSCert, s.cfg.TLSKey)
		} else {
			err = srv.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("console stopped", "err", err)
		}
	}()
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}
}

// handlerFunc is a handler for a signed-in user.
type handlerFunc func(w http.ResponseWriter, r *http.Request, u User, ss *session)

// current returns the request's session, if it has a live one, and the
// cookie's value. err is the store's failure to say (the caller answers 500,
// rather than send a signed-in person to sign in again).
func (s *Server) current(r *http.Request) (*session, string, bool, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil, "", false, nil
	}
	ss, ok, err := s.sessions.get(r.Context(), c.Value)
	if ok {
		if u, found := s.users.byClaim(ss.user.Name); found {
			// console.users as this process read it: a role or feeds changed
			// there (and the daemon restarted) apply to sessions already open.
			ss.user = u
		} else if s.oidc == nil {
			// Without OIDC a session can only come from a password sign-in of
			// a configured user: one removed from console.users is signed out.
			ok = false
		}
	}
	return ss, c.Value, ok, err
}

// signedIn returns the request's live session; ok is false if there is none,
// and answered is true if it answered (a 500: the store could not say).
func (s *Server) signedIn(w http.ResponseWriter, r *http.Request) (ss *session, ok, answered bool) {
	ss, _, ok, err := s.current(r)
	if err != nil {
		s.internal(w, r, nil, fmt.Errorf("read the console session: %w", err))
		return nil, false, true
	}
	return ss, ok, false
}

// page serves a page to a signed-in user of role min; others go to sign in.
func (s *Server) page(min Role, h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ss, ok, answered := s.signedIn(w, r)
		if answered {
			return
		}
		if !ok {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		if !ss.user.Role.AtLeast(min) {
			s.fail(w, r, ss, http.StatusForbidden, "Your role may not see this page.")
			return
		}
		h(w, r, ss.user, ss)
	}
}

// form serves a state-changing request: a signed-in user of role min, with the
// session's CSRF token. Anything else is refused with 403, never redirected, so
// that a forged request learns nothing and changes nothing.
func (s *Server) form(min Role, h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		ss, ok, answered := s.signedIn(w, r)
		if answered {
			return
		}
		if !ok {
			s.fail(w, r, nil, http.StatusForbidden, "Sign in first.")
			return
		}
		if !tokensEqual(r.PostFormValue("csrf"), ss.csrf) {
			s.log.Warn("console: request without a valid CSRF token refused", "path", r.URL.Path, "user", ss.user.Name)
			s.fail(w, r, ss, http.StatusForbidden, "This form has expired or did not come from the console. Reload the page and try again.")
			return
		}
		if !ss.user.Role.AtLeast(min) {
			s.log.Warn("console: request refused for the role", "path", r.URL.Path, "user", ss.user.Name, "role", ss.user.Role)
			s.fail(w, r, ss, http.StatusForbidden, "Your role ("+string(ss.user.Role)+") may not do this.")
			return
		}
		h(w, r, ss.user, ss)
	}
}

// view is what every page is drawn with.
type view struct {
	Title string
	User  *User
	CSRF  string
	Flash string
	Error string
	Data  any
}

func (s *Server) render(w http.ResponseWriter, status int, name string, v view) {
	t, ok := s.pages[name]
	if !ok {
		http.Error(w, "no page "+name, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := t.ExecuteTemplate(w, "layout", v); err != nil {
		s.log.Error("console: render", "page", name, "err", err)
	}
}

func (s *Server) viewFor(ss *session, title string, data any) view {
	v := view{Title: title, Data: data}
	if ss != nil {
		u := ss.user
		v.User, v.CSRF = &u, ss.csrf
	}
	return v
}

// fail draws an error page with status.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, ss *session, status int, msg string) {
	v := s.viewFor(ss, http.StatusText(status), nil)
	v.Error = msg
	s.render(w, status, "error", v)
}

// internal logs err (which never holds personal data: ids and reasons only)
// and draws a 500.
func (s *Server) internal(w http.ResponseWriter, r *http.Request, ss *session, err error) {
	s.log.Error("console: request failed", "path", r.URL.Path, "err", err)
	s.fail(w, r, ss, http.StatusInternalServerError, "Something went wrong; the server log says what.")
}

func (s *Server) setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true, Secure: s.secure,
		SameSite: http.SameSiteStrictMode})
}

func (s *Server) loginForm(w http.ResponseWriter, r *http.Request) {
	if _, _, ok, _ := s.current(r); ok {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	tok := randomToken()
	s.setCookie(w, loginCookie, tok, 600)
	v := view{Title: "Sign in", CSRF: tok, Data: s.oidcName()}
	s.render(w, http.StatusOK, "login", v)
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	c, err := r.Cookie(loginCookie)
	if err != nil || !tokensEqual(r.PostFormValue("csrf"), c.Value) {
		s.fail(w, r, nil, http.StatusForbidden, "This sign-in form has expired or did not come from the console. Reload it and try again.")
		return
	}
	name := strings.TrimSpace(r.PostFormValue("name"))
	if !s.logins.allow(s.now(), "user:"+strings.ToLower(name), "addr:"+clientAddr(r)) {
		s.log.Warn("console: sign-in attempts limited", "addr", clientAddr(r))
		w.Header().Set("Retry-After", "60")
		v := view{Title: "Sign in", CSRF: c.Value, Error: "Too many attempts. Wait a minute and try again.", Data: s.oidcName()}
		s.render(w, http.StatusTooManyRequests, "login", v)
		return
	}
	u, ok := s.users.check(name, r.PostFormValue("password"))
	if !ok {
		s.log.Info("console: sign-in refused", "addr", clientAddr(r))
		v := view{Title: "Sign in", CSRF: c.Value, Error: "Wrong name or password.", Data: s.oidcName()}
		s.render(w, http.StatusUnauthorized, "login", v)
		return
	}
	id, _, err := s.sessions.create(r.Context(), u)
	if err != nil {
		s.internal(w, r, nil, err)
		return
	}
	s.setCookie(w, loginCookie, "", -1)
	s.setCookie(w, sessionCookie, id, int(s.sessions.ttl/time.Second))
	s.log.Info("console: signed in", "user", u.Name, "role", u.Role)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, u User, _ *session) {
	if _, id, ok, _ := s.current(r); ok {
		if err := s.sessions.drop(r.Context(), id); err != nil {
			s.internal(w, r, nil, fmt.Errorf("end the console session: %w", err))
			return
		}
	}
	s.setCookie(w, sessionCookie, "", -1)
	s.log.Info("console: signed out", "user", u.Name)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// oidcName is the identity provider's name for the sign-in page; "" without OIDC.
func (s *Server) oidcName() string {
	if s.oidc == nil {
		return ""
	}
	if s.oidc.cfg.Name != "" {
		return s.oidc.cfg.Name
	}
	return "your identity provider"
}
