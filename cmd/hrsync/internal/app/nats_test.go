package app

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/hrsync/hrsync/events"
)

// startNATS runs an in-process nats-server on a free loopback port with the
// authentication opts configures, and returns its client URL.
func startNATS(t *testing.T, configure func(o *server.Options)) string {
	t.Helper()
	o := &server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true}
	configure(o)
	ns, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	return ns.ClientURL()
}

// writeFile writes content to name in dir and returns the path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// connectCase connects with s and checks the outcome: ok, or an error containing want.
func connectCase(t *testing.T, name string, s NATSSettings, want string) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		nc, err := s.Connect(nats.MaxReconnects(0), nats.Timeout(5*time.Second))
		if want == "" {
			if err != nil {
				t.Fatalf("Connect: %v", err)
			}
			defer nc.Close()
			if err := nc.Flush(); err != nil {
				t.Fatalf("flush: %v", err)
			}
			return
		}
		if err == nil {
			nc.Close()
			t.Fatalf("Connect succeeded; want an error containing %q", want)
		}
		if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "connect to NATS at "+RedactNATSURL(s.URL)) {
			t.Fatalf("Connect: %v; want it to name the server and contain %q", err, want)
		}
		t.Logf("refused: %v", err)
	})
}

func TestNATSUserPassword(t *testing.T) {
	t.Parallel()
	url := startNATS(t, func(o *server.Options) {
		o.Users = []*server.User{{Username: "hrsync", Password: "s3cret"}}
	})
	dir := t.TempDir()
	connectCase(t, "OK", NATSSettings{URL: url, User: "hrsync", Password: "s3cret"}, "")
	connectCase(t, "PasswordFile", NATSSettings{URL: url, User: "hrsync",
		PasswordFile: writeFile(t, dir, "pw", "s3cret\n")}, "")
	connectCase(t, "ErrWrongPassword", NATSSettings{URL: url, User: "hrsync", Password: "guess"}, "Authorization Violation")
	connectCase(t, "ErrNoCredentials", NATSSettings{URL: url}, "Authorization Violation")
}

func TestNATSToken(t *testing.T) {
	t.Parallel()
	url := startNATS(t, func(o *server.Options) { o.Authorization = "t0ken" })
	connectCase(t, "OK", NATSSettings{URL: url, Token: "t0ken"}, "")
	connectCase(t, "TokenFile", NATSSettings{URL: url, TokenFile: writeFile(t, t.TempDir(), "token", "t0ken\n")}, "")
	connectCase(t, "ErrWrongToken", NATSSettings{URL: url, Token: "other"}, "Authorization Violation")
}

func TestNATSNKey(t *testing.T) {
	t.Parallel()
	seed := func() (string, string) {
		kp, err := nkeys.CreateUser()
		if err != nil {
			t.Fatal(err)
		}
		pub, _ := kp.PublicKey()
		s, _ := kp.Seed()
		return pub, string(s)
	}
	pub, good := seed()
	_, other := seed()
	url := startNATS(t, func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: pub}} })
	dir := t.TempDir()
	connectCase(t, "OK", NATSSettings{URL: url, NKeyFile: writeFile(t, dir, "good.nk", good)}, "")
	connectCase(t, "ErrUnknownKey", NATSSettings{URL: url, NKeyFile: writeFile(t, dir, "other.nk", other)}, "Authorization Violation")
}

func TestNATSCreds(t *testing.T) {
	t.Parallel()
	must := func(s string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	operator, _ := nkeys.CreateOperator()
	opub, _ := operator.PublicKey()
	ojwt := must(jwt.NewOperatorClaims(opub).Encode(operator))
	oclaims, err := jwt.DecodeOperatorClaims(ojwt)
	if err != nil {
		t.Fatal(err)
	}
	// creds returns a credentials file of a new user of account (signed by signer).
	creds := func(account nkeys.KeyPair) string {
		user, _ := nkeys.CreateUser()
		upub, _ := user.PublicKey()
		useed, _ := user.Seed()
		b, err := jwt.FormatUserConfig(must(jwt.NewUserClaims(upub).Encode(account)), useed)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	account, _ := nkeys.CreateAccount()
	apub, _ := account.PublicKey()
	stranger, _ := nkeys.CreateAccount() // an account the operator never signed
	resolver := &server.MemAccResolver{}
	if err := resolver.Store(apub, must(jwt.NewAccountClaims(apub).Encode(operator))); err != nil {
		t.Fatal(err)
	}
	url := startNATS(t, func(o *server.Options) {
		o.TrustedOperators = []*jwt.OperatorClaims{oclaims}
		o.AccountResolver = resolver
	})
	dir := t.TempDir()
	connectCase(t, "OK", NATSSettings{URL: url, CredsFile: writeFile(t, dir, "good.creds", creds(account))}, "")
	connectCase(t, "ErrUntrustedAccount", NATSSettings{URL: url, CredsFile: writeFile(t, dir, "other.creds", creds(stranger))},
		"Authorization Violation")
}

// pki is a CA and a certificate it signed, as PEM files.
type pki struct {
	ca      *x509.Certificate
	caKey   *ecdsa.PrivateKey
	caFile  string
	dir     string
	serials int64
}

func newPKI(t *testing.T, name string) *pki {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	p := &pki{ca: ca, caKey: key, dir: t.TempDir(), serials: 1}
	p.caFile = writeFile(t, p.dir, name+"-ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	return p
}

// issue signs a certificate for name (a server on 127.0.0.1, or a client) and
// returns its certificate and key files.
func (p *pki) issue(t *testing.T, name string, usage x509.ExtKeyUsage) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p.serials++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(p.serials), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{name}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, p.dir, name+".pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))),
		writeFile(t, p.dir, name+"-key.pem", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})))
}

func TestNATSTLS(t *testing.T) {
	t.Parallel()
	ca := newPKI(t, "hrsync-test")
	srvCert, srvKey := ca.issue(t, "nats.internal", x509.ExtKeyUsageServerAuth)
	cliCert, cliKey := ca.issue(t, "hrsync", x509.ExtKeyUsageClientAuth)
	url := startNATS(t, func(o *server.Options) {
		cfg, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: srvCert, KeyFile: srvKey, CaFile: ca.caFile, Verify: true})
		if err != nil {
			t.Fatal(err)
		}
		o.TLSConfig, o.TLS, o.TLSVerify, o.TLSTimeout = cfg, true, true, 5
	})
	connectCase(t, "OK", NATSSettings{URL: url, CAFile: ca.caFile, CertFile: cliCert, KeyFile: cliKey}, "")
	connectCase(t, "ServerName", NATSSettings{URL: url, CAFile: ca.caFile, CertFile: cliCert, KeyFile: cliKey,
		TLSServerName: "nats.internal"}, "")
	connectCase(t, "ErrWrongServerName", NATSSettings{URL: url, CAFile: ca.caFile, CertFile: cliCert, KeyFile: cliKey,
		TLSServerName: "elsewhere.internal"}, "certificate is valid for")
	connectCase(t, "ErrUnknownCA", NATSSettings{URL: url, CAFile: newPKI(t, "stranger").caFile, CertFile: cliCert, KeyFile: cliKey},
		"certificate signed by unknown authority")
	// The server verifies clients: without a certificate the handshake fails. With
	// TLS 1.3 the client sees either the server's alert ("certificate required")
	// or the connection closed after the handshake, whichever comes first.
	connectCase(t, "ErrNoClientCert", NATSSettings{URL: url, CAFile: ca.caFile}, "tls")
	// A client certificate from another CA is not one the server asks for: the
	// client has none to offer.
	strangerCert, strangerKey := newPKI(t, "stranger2").issue(t, "hrsync", x509.ExtKeyUsageClientAuth)
	connectCase(t, "ErrClientCertUnknownCA", NATSSettings{URL: url, CAFile: ca.caFile, CertFile: strangerCert, KeyFile: strangerKey},
		"tls")
}

// Bad settings are refused before any connection, naming the field and, for a
// file, its path.
func TestNATSOptionsRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	junk := writeFile(t, dir, "junk", "not a key\n")
	empty := writeFile(t, dir, "empty", "\n")
	for _, tc := range []struct {
		name string
		s    NATSSettings
		want []string
	}{
		{"CredsAndUser", NATSSettings{CredsFile: junk, User: "hrsync", Password: "x"}, []string{"--nats-creds", "--nats-user", "cannot be used together"}},
		{"TokenAndNKey", NATSSettings{Token: "t", NKeyFile: junk}, []string{"--nats-token", "--nats-nkey-file"}},
		{"URLAndUser", NATSSettings{URL: "nats://a:b@127.0.0.1:1", User: "hrsync", Password: "x"}, []string{"credentials in the URL", "--nats-user"}},
		{"UserWithoutPassword", NATSSettings{User: "hrsync"}, []string{"--nats-user", "no password", "--nats-password-file"}},
		{"PasswordWithoutUser", NATSSettings{Password: "x"}, []string{"no user", "--nats-user"}},
		{"PasswordTwice", NATSSettings{User: "u", Password: "x", PasswordFile: junk}, []string{"--nats-password ", "--nats-password-file", "both"}},
		{"MissingPasswordFile", NATSSettings{User: "u", PasswordFile: missing}, []string{"nats.password_file", missing, "no such file"}},
		{"EmptyPasswordFile", NATSSettings{User: "u", PasswordFile: empty}, []string{"nats.password_file", empty, "empty"}},
		{"MissingTokenFile", NATSSettings{TokenFile: missing}, []string{"nats.token_file", missing}},
		{"MissingNKeyFile", NATSSettings{NKeyFile: missing}, []string{"nats.nkey_file", missing, "no such file"}},
		{"BadNKeyFile", NATSSettings{NKeyFile: junk}, []string{"nats.nkey_file", junk, "not an nkey user seed"}},
		{"MissingCredsFile", NATSSettings{CredsFile: missing}, []string{"nats.creds_file", missing, "no such file"}},
		{"BadCredsFile", NATSSettings{CredsFile: junk}, []string{"nats.creds_file", junk}},
		{"MissingCAFile", NATSSettings{CAFile: missing}, []string{"nats.ca_file", missing, "no such file"}},
		{"BadCAFile", NATSSettings{CAFile: junk}, []string{"nats.ca_file", junk, "no PEM certificate"}},
		{"CertWithoutKey", NATSSettings{CertFile: junk}, []string{"--nats-cert-file", "--nats-key-file"}},
		{"KeyWithoutCert", NATSSettings{KeyFile: junk}, []string{"--nats-key-file", "--nats-cert-file"}},
		{"MissingCertFile", NATSSettings{CertFile: missing, KeyFile: junk}, []string{"nats.cert_file", missing}},
		{"BadCertPair", NATSSettings{CertFile: junk, KeyFile: junk}, []string{"client certificate", junk}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.s.Options()
			if err == nil {
				t.Fatalf("Options(%+v) = nil error", tc.s)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if _, cerr := tc.s.Connect(); cerr == nil || cerr.Error() != err.Error() {
				t.Errorf("Connect = %v; want the same refusal, before connecting", cerr)
			}
		})
	}
}

// The configuration file names files, never secrets, and flags lay over it.
func TestNATSConfigFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct{ yaml, want string }{
		{"nats:\n  user: hrsync\n  password: s3cret\n", "nats.password: a password does not belong in the configuration file"},
		{"nats:\n  token: s3cret\n", "nats.token: a token does not belong in the configuration file"},
		{"nats:\n  passwd_file: x\n", "field passwd_file not found"},
	} {
		p := writeFile(t, dir, "bad.yaml", tc.yaml)
		if _, err := LoadConfigFile(p); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("LoadConfigFile(%q) = %v; want %q", tc.yaml, err, tc.want)
		}
	}
	p := writeFile(t, dir, "ok.yaml", "nats:\n  url: nats://nats:4222\n  user: hrsync\n  password_file: /run/secrets/nats\n  ca_file: ca.pem\n")
	fc, err := LoadConfigFile(p)
	if err != nil {
		t.Fatal(err)
	}
	got := fc.NATS.Settings().Over(NATSSettings{URL: "nats://other:4222", CAFile: "flag-ca.pem"})
	want := NATSSettings{URL: "nats://other:4222", User: "hrsync", PasswordFile: "/run/secrets/nats", CAFile: "flag-ca.pem"}
	if got != want {
		t.Errorf("flags over file = %+v; want %+v", got, want)
	}
	if a := want.Auth(); a != "user hrsync+tls" {
		t.Errorf("Auth() = %q", a)
	}
	// The stack folds the older StackConfig fields in.
	if n := (StackConfig{NATSURL: "nats://x:1", NATSCreds: "c.creds"}).natsFlags(); n.URL != "nats://x:1" || n.CredsFile != "c.creds" {
		t.Errorf("natsFlags() = %+v", n)
	}
}

// A server older than hrsync supports is refused at connect, with the reason.
// The "server" is a listener that speaks just enough of the NATS protocol to
// announce an old version.
func TestNATSConnectRefusesOldServer(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				_, _ = c.Write([]byte(`INFO {"server_id":"old","version":"2.8.4","proto":1,"max_payload":1048576}` + "\r\n"))
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if strings.HasPrefix(line, "PING") {
						_, _ = c.Write([]byte("PONG\r\n"))
					}
				}
			}()
		}
	}()
	_, err = NATSSettings{URL: "nats://" + ln.Addr().String()}.Connect(nats.MaxReconnects(0))
	var ve *events.ServerVersionError
	if !errors.As(err, &ve) || ve.Version != "2.8.4" || !strings.Contains(err.Error(), events.MinServerVersion) {
		t.Fatalf("Connect to a 2.8.4 server = %v; want a *events.ServerVersionError naming %s", err, events.MinServerVersion)
	}
}

// tlsVersionOK guards the client's TLS floor.
func TestNATSTLSFloor(t *testing.T) {
	t.Parallel()
	cfg, err := NATSSettings{TLSServerName: "nats.internal"}.tlsConfig()
	if err != nil || cfg.MinVersion != tls.VersionTLS12 || cfg.ServerName != "nats.internal" {
		t.Fatalf("tlsConfig = %+v, %v", cfg, err)
	}
}
