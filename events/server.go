package events

import (
	"fmt"
	"strconv"
	"strings"
)

// nats-server versions (docs/nats.md, "Supported servers").
const (
	// MinServerVersion is the oldest nats-server hrsync supports: the one Debian 12
	// ships, which hrsync's tests run against (events/oldserver_test.go). nats.go's
	// jetstream package, which hrsync uses for all JetStream calls, needs 2.9.0 at
	// least; no 2.9 release before 2.9.10 is tested, so none is supported.
	MinServerVersion = "2.9.10"
	// TermReasonServerVersion is the first nats-server that understands a
	// termination with a reason ("+TERM <reason>", nats-server pull request 4697;
	// nats.go documents TermWithReason for servers >= 2.10.4). An older server does
	// not recognise that acknowledgement at all: the message stays pending and comes
	// back after AckWait, forever. To those servers hrsync sends a plain "+TERM".
	TermReasonServerVersion = "2.10.4"
)

// ServerVersionError says why hrsync does not run against a NATS server.
type ServerVersionError struct {
	Version string // as the server announced it; empty if it announced none
	Reason  string
}

func (e *ServerVersionError) Error() string {
	v := e.Version
	if v == "" {
		v = "(none announced)"
	}
	return fmt.Sprintf("nats-server version %s: %s", v, e.Reason)
}

// CheckServerVersion returns a *ServerVersionError if a NATS server announcing
// version v (nats.Conn.ConnectedServerVersion) is one hrsync does not support,
// with the reason; nil otherwise.
func CheckServerVersion(v string) error {
	got, ok := parseServerVersion(v)
	if !ok {
		return &ServerVersionError{Version: v, Reason: "not a version hrsync can read (want MAJOR.MINOR.PATCH); " +
			"hrsync needs nats-server " + MinServerVersion + " or later"}
	}
	min, _ := parseServerVersion(MinServerVersion)
	if got.less(min) {
		reason := "older than " + MinServerVersion + ", the oldest nats-server hrsync supports (docs/nats.md); upgrade the server"
		if got.less(serverVersion{2, 9, 0, false}) {
			reason += " (the JetStream API hrsync uses needs 2.9.0 at least)"
		}
		return &ServerVersionError{Version: v, Reason: reason}
	}
	return nil
}

// UnderstandsTermReason reports whether a NATS server announcing version v
// settles a "terminate with reason" acknowledgement. It is false for a version it
// cannot read, so that the plain termination every server understands is sent.
func UnderstandsTermReason(v string) bool {
	got, ok := parseServerVersion(v)
	want, _ := parseServerVersion(TermReasonServerVersion)
	return ok && !got.less(want)
}

// serverVersion is MAJOR.MINOR.PATCH; pre is set for a pre-release
// (2.10.4-RC.1), which counts as older than its release.
type serverVersion struct {
	major, minor, patch int
	pre                 bool
}

func (a serverVersion) less(b serverVersion) bool {
	switch {
	case a.major != b.major:
		return a.major < b.major
	case a.minor != b.minor:
		return a.minor < b.minor
	case a.patch != b.patch:
		return a.patch < b.patch
	}
	return a.pre && !b.pre
}

// parseServerVersion reads "2.9.10", "v2.10.4" or "2.11.0-RC.2".
func parseServerVersion(s string) (serverVersion, bool) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "v")
	core, pre, hasPre := strings.Cut(s, "-")
	if hasPre && pre == "" {
		return serverVersion{}, false
	}
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return serverVersion{}, false
	}
	var n [3]int
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 || p == "" || p[0] == '+' {
			return serverVersion{}, false
		}
		n[i] = v
	}
	return serverVersion{n[0], n[1], n[2], hasPre}, true
}
