package app

import (
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/hrsync/hrsync/events"
)

// NATSSettings say which NATS server to reach and how to authenticate: nats: in
// the configuration file (NATSConfig), with the --nats-* flags (and NATS_*
// variables) over it. At most one way to authenticate: a user and password, a
// token, an nkey seed file, or a credentials (JWT) file. TLS (a CA, a client
// certificate) goes with any of them. Secrets are never in the configuration
// file: it names files (PasswordFile, TokenFile, NKeyFile, CredsFile, KeyFile);
// Password and Token come only from flags or the environment.
type NATSSettings struct {
	// URL is one server URL or a comma-separated list; default nats.DefaultURL.
	URL string
	// User and Password (or PasswordFile, which holds the password).
	User, Password, PasswordFile string
	// Token (or TokenFile, which holds it).
	Token, TokenFile string
	// NKeyFile holds an nkey user seed (SU...).
	NKeyFile string
	// CredsFile is a credentials file: a user JWT and its nkey seed.
	CredsFile string
	// CAFile is the PEM file of the CA that signed the server's certificate
	// (default: the system's); CertFile and KeyFile, a client certificate for
	// servers that verify clients. Any of them turns TLS on.
	CAFile, CertFile, KeyFile string
	// TLSServerName is the name the server's certificate must carry, if not the
	// URL's host.
	TLSServerName string
}

// NATSConfig is nats: in the configuration file. It holds no secret, only the
// files that hold them; password: and token: are refused with the way to give them.
type NATSConfig struct {
	URL           string `yaml:"url"`
	User          string `yaml:"user"`
	PasswordFile  string `yaml:"password_file"`
	TokenFile     string `yaml:"token_file"`
	NKeyFile      string `yaml:"nkey_file"`
	CredsFile     string `yaml:"creds_file"`
	CAFile        string `yaml:"ca_file"`
	CertFile      string `yaml:"cert_file"`
	KeyFile       string `yaml:"key_file"`
	TLSServerName string `yaml:"tls_server_name"`
	// Password and Token are decoded only to refuse them with a clear reason.
	Password string `yaml:"password"`
	Token    string `yaml:"token"`
}

// check refuses secrets written into the configuration file.
func (f NATSConfig) check() error {
	if f.Password != "" {
		return errors.New("nats.password: a password does not belong in the configuration file; " +
			"name a file that holds it (nats.password_file) or set NATS_PASSWORD (--nats-password)")
	}
	if f.Token != "" {
		return errors.New("nats.token: a token does not belong in the configuration file; " +
			"name a file that holds it (nats.token_file) or set NATS_TOKEN (--nats-token)")
	}
	return nil
}

// Settings returns the file's NATS settings.
func (f NATSConfig) Settings() NATSSettings {
	return NATSSettings{URL: f.URL, User: f.User, PasswordFile: f.PasswordFile, TokenFile: f.TokenFile,
		NKeyFile: f.NKeyFile, CredsFile: f.CredsFile, CAFile: f.CAFile, CertFile: f.CertFile, KeyFile: f.KeyFile,
		TLSServerName: f.TLSServerName}
}

// Over returns s with the non-empty fields of flags laid over it: s is what the
// configuration file says, flags what the --nats-* flags (and NATS_* variables)
// gave. Giving two ways to authenticate, one in each, is an error of Options.
func (s NATSSettings) Over(flags NATSSettings) NATSSettings {
	return NATSSettings{
		URL: cmp.Or(flags.URL, s.URL), User: cmp.Or(flags.User, s.User),
		Password: cmp.Or(flags.Password, s.Password), PasswordFile: cmp.Or(flags.PasswordFile, s.PasswordFile),
		Token: cmp.Or(flags.Token, s.Token), TokenFile: cmp.Or(flags.TokenFile, s.TokenFile),
		NKeyFile: cmp.Or(flags.NKeyFile, s.NKeyFile), CredsFile: cmp.Or(flags.CredsFile, s.CredsFile),
		CAFile: cmp.Or(flags.CAFile, s.CAFile), CertFile: cmp.Or(flags.CertFile, s.CertFile),
		KeyFile: cmp.Or(flags.KeyFile, s.KeyFile), TLSServerName: cmp.Or(flags.TLSServerName, s.TLSServerName),
	}
}

// natsField names a setting as the operator gives it: its flag (and variable) and
// its key in the configuration file.
var natsField = map[string]string{
	"url":             "--nats-url (NATS_URL, nats.url)",
	"user":            "--nats-user (NATS_USER, nats.user)",
	"password":        "--nats-password (NATS_PASSWORD)",
	"password_file":   "--nats-password-file (NATS_PASSWORD_FILE, nats.password_file)",
	"token":           "--nats-token (NATS_TOKEN)",
	"token_file":      "--nats-token-file (NATS_TOKEN_FILE, nats.token_file)",
	"nkey_file":       "--nats-nkey-file (NATS_NKEY_FILE, nats.nkey_file)",
	"creds_file":      "--nats-creds (NATS_CREDS, nats.creds_file)",
	"ca_file":         "--nats-ca-file (NATS_CA_FILE, nats.ca_file)",
	"cert_file":       "--nats-cert-file (NATS_CERT_FILE, nats.cert_file)",
	"key_file":        "--nats-key-file (NATS_KEY_FILE, nats.key_file)",
	"tls_server_name": "--nats-tls-server-name (NATS_TLS_SERVER_NAME, nats.tls_server_name)",
}

// URLOrDefault returns the server URL(s) to connect to.
func (s NATSSettings) URLOrDefault() string { return cmp.Or(s.URL, nats.DefaultURL) }

// Auth names the way s authenticates, for logs: "user hrsync", "token",
// "nkey", "creds", "url" (credentials in the URL) or "none"; "+tls" with TLS.
func (s NATSSettings) Auth() string {
	var a string
	switch {
	case s.User != "":
		a = "user " + s.User
	case s.Token != "" || s.TokenFile != "":
		a = "token"
	case s.NKeyFile != "":
		a = "nkey"
	case s.CredsFile != "":
		a = "creds"
	case urlHasUserinfo(s.URL):
		a = "url"
	default:
		a = "none"
	}
	if s.tls() {
		a += "+tls"
	}
	return a
}

func (s NATSSettings) tls() bool {
	return s.CAFile != "" || s.CertFile != "" || s.KeyFile != "" || s.TLSServerName != ""
}

// Options checks s and returns the nats.go options that connect and
// authenticate as it says. It reads every file it names now, so that a missing
// or unreadable file, or two ways to authenticate, fail at start with the field,
// the path and the reason, not at the first reconnect.
func (s NATSSettings) Options() ([]nats.Option, error) {
	password, err := secretOf(s.Password, "password", s.PasswordFile, "password_file")
	if err != nil {
		return nil, err
	}
	token, err := secretOf(s.Token, "token", s.TokenFile, "token_file")
	if err != nil {
		return nil, err
	}
	switch {
	case s.User != "" && password == "":
		return nil, fmt.Errorf("nats: %s is set but no password: set %s or %s",
			natsField["user"], natsField["password"], natsField["password_file"])
	case s.User == "" && password != "":
		return nil, fmt.Errorf("nats: a password is set but no user: set %s", natsField["user"])
	}
	var ways []string
	if s.User != "" {
		ways = append(ways, "a user and password ("+natsField["user"]+")")
	}
	if token != "" {
		field := "token"
		if s.TokenFile != "" {
			field = "token_file"
		}
		ways = append(ways, "a token ("+natsField[field]+")")
	}
	if s.NKeyFile != "" {
		ways = append(ways, "an nkey seed ("+natsField["nkey_file"]+")")
	}
	if s.CredsFile != "" {
		ways = append(ways, "a credentials file ("+natsField["creds_file"]+")")
	}
	if len(ways) > 0 && urlHasUserinfo(s.URL) {
		ways = append(ways, "credentials in the URL ("+natsField["url"]+")")
	}
	if len(ways) > 1 {
		return nil, fmt.Errorf("nats: %s cannot be used together: a NATS user authenticates one way; keep the one "+
			"deploy/nats/nats-server.conf (or your server) gives hrsync's user", strings.Join(ways, " and "))
	}
	var opts []nats.Option
	switch {
	case s.User != "":
		opts = append(opts, nats.UserInfo(s.User, password))
	case token != "":
		opts = append(opts, nats.Token(token))
	case s.NKeyFile != "":
		if err := readable("nkey_file", s.NKeyFile); err != nil {
			return nil, err
		}
		opt, err := nats.NkeyOptionFromSeed(s.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("nats: %s %s: not an nkey user seed (SU...): %w", natsField["nkey_file"], s.NKeyFile, err)
		}
		opts = append(opts, opt)
	case s.CredsFile != "":
		if err := checkCreds(s.CredsFile); err != nil {
			return nil, err
		}
		opts = append(opts, nats.UserCredentials(s.CredsFile))
	}
	if s.tls() {
		cfg, err := s.tlsConfig()
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.Secure(cfg))
	}
	return opts, nil
}

// tlsConfig builds the client's TLS configuration from the files s names.
func (s NATSSettings) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: s.TLSServerName}
	if s.CAFile != "" {
		pem, err := readFile("ca_file", s.CAFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("nats: %s %s: no PEM certificate in it", natsField["ca_file"], s.CAFile)
		}
		cfg.RootCAs = pool
	}
	switch {
	case s.CertFile != "" && s.KeyFile == "":
		return nil, fmt.Errorf("nats: %s is set but not its key: set %s", natsField["cert_file"], natsField["key_file"])
	case s.CertFile == "" && s.KeyFile != "":
		return nil, fmt.Errorf("nats: %s is set but not its certificate: set %s", natsField["key_file"], natsField["cert_file"])
	case s.CertFile != "":
		if err := readable("cert_file", s.CertFile); err != nil {
			return nil, err
		}
		if err := readable("key_file", s.KeyFile); err != nil {
			return nil, err
		}
		cert, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("nats: client certificate %s (%s) with key %s (%s): %w",
				s.CertFile, natsField["cert_file"], s.KeyFile, natsField["key_file"], err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Connect connects as s says, with opts after s's (a name, an inbox prefix,
// handlers), and refuses a server older than hrsync supports
// (events.CheckServerVersion). Its errors name the server with its credentials
// redacted.
func (s NATSSettings) Connect(opts ...nats.Option) (*nats.Conn, error) {
	base, err := s.Options()
	if err != nil {
		return nil, err
	}
	u := s.URLOrDefault()
	nc, err := nats.Connect(u, append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s (auth %s): %w", RedactNATSURL(u), s.Auth(), err)
	}
	if err := events.CheckServerVersion(nc.ConnectedServerVersion()); err != nil {
		nc.Close()
		return nil, fmt.Errorf("NATS at %s: %w", RedactNATSURL(u), err)
	}
	return nc, nil
}

// secretOf returns the secret given inline (value, named field) or in a file
// (path, named fileField); both at once is an error.
func secretOf(value, field, path, fileField string) (string, error) {
	if path == "" {
		return value, nil
	}
	if value != "" {
		return "", fmt.Errorf("nats: %s and %s are both set: give one", natsField[field], natsField[fileField])
	}
	b, err := readFile(fileField, path)
	if err != nil {
		return "", err
	}
	// Files written by hand or by "kubectl create secret --from-file" often end
	// in a newline, which is not part of the secret.
	v := strings.TrimRight(string(b), "\r\n")
	if v == "" {
		return "", fmt.Errorf("nats: %s %s is empty", natsField[fileField], path)
	}
	return v, nil
}

// readFile reads the file of a named setting, with an error naming both.
func readFile(field, path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("nats: %s: %w", natsField[field], err)
	}
	return b, nil
}

// readable checks that the file of a named setting can be read.
func readable(field, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("nats: %s: %w", natsField[field], err)
	}
	return f.Close()
}

// checkCreds checks that path is a credentials file: a user JWT and an nkey user seed.
func checkCreds(path string) error {
	b, err := readFile("creds_file", path)
	if err != nil {
		return err
	}
	defer clear(b)
	jwt, err := nkeys.ParseDecoratedJWT(b)
	if err != nil || strings.Count(jwt, ".") != 2 {
		return fmt.Errorf("nats: %s %s: no user JWT in it (a credentials file holds a JWT and an nkey seed; `nsc generate creds` writes one)",
			natsField["creds_file"], path)
	}
	kp, err := nkeys.ParseDecoratedUserNKey(b)
	if err != nil {
		return fmt.Errorf("nats: %s %s: no nkey user seed in it: %w", natsField["creds_file"], path, err)
	}
	kp.Wipe()
	return nil
}

// urlHasUserinfo reports whether any of the comma-separated URLs carries credentials.
func urlHasUserinfo(s string) bool {
	for p := range strings.SplitSeq(s, ",") {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			return true
		}
	}
	return false
}
