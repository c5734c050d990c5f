package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/events"
)

// publishExample is the example of "publish --help" that sends a file; a test
// runs it as written, from the repository's root.
const publishExample = "hrsync publish --file testdata/events/hired.json"

func newPublishCmd(env *environment) *cobra.Command {
	cmd := newCmd("publish", "validate and send one event from a JSON file or from flags", `
Validate one event against contract v1 and publish it to JetStream, so you can try
the contract without writing code. A violation is refused locally with the same
message the daemon would give, and nothing is sent.

From a file: a structured CloudEvent (application/cloudevents+json); its feed is the
one whose source the event carries, or --feed. From flags: --type and --worker, with
the data fields; the event goes to --feed (default hr).`, noArgs)
	cmd.Example = "  " + publishExample + `

  hrsync publish --feed hr --type hired --worker w-1001 --email ann@example.com \
    --given-name Ann --family-name Lee --effective 2026-12-01

  # a GDPR erasure request (no profile, no effective date; see docs/erasure.md):
  hrsync publish --type erasure_requested --worker w-1001 --reason DSR-2026-0042 \
    --requested-by privacy-office`
	fs := cmd.Flags()
	var c connFlags
	c.addConfig(fs)
	c.addNATS(fs)
	file := fs.String("file", "", "a structured CloudEvent JSON `FILE` to validate and send as is")
	feed := addFeed(fs, "the feed to publish to (default: the feed whose source the event carries, or hr)")
	kind := fs.String("type", "", "event kind: hired, left, rehired, updated, suspended, resumed or erasure_requested")
	id := fs.String("id", "", "event id (default: random)")
	source := fs.String("source", "", "CloudEvents source (default: the feed's, /feeds/<feed>)")
	at := fs.String("time", "", "event time, RFC 3339 (default: now)")
	mode := &choice{v: "binary", allowed: []string{"binary", "structured"}}
	fs.Var(mode, "content-mode", "CloudEvents content mode: binary (ce- headers) or structured")
	dry := fs.Bool("dry-run", false, "validate and print, but do not send")
	var d events.Data
	fs.StringVar(&d.WorkerID, "worker", "", "worker id (data.worker_id and the event subject)")
	fs.StringVar(&d.Email, "email", "", "email (required for hired and rehired)")
	fs.StringVar(&d.GivenName, "given-name", "", "given name")
	fs.StringVar(&d.FamilyName, "family-name", "", "family name")
	fs.StringVar(&d.EmployeeNumber, "employee-number", "", "employee number")
	fs.StringVar(&d.OrgUnit, "org-unit", "", "org unit")
	fs.StringVar(&d.JobTitle, "job-title", "", "job title")
	fs.StringVar(&d.ManagerID, "manager-id", "", "manager's worker id")
	fs.StringVar(&d.Locale, "locale", "", "locale, e.g. de-DE")
	fs.StringVar(&d.Effective, "effective", "", "effective date (2026-12-01) or date-time (RFC 3339); default today (none for erasure_requested)")
	fs.StringVar(&d.Timezone, "timezone", "", "IANA zone for a bare effective date (default: the feed's)")
	fs.StringVar(&d.Reason, "reason", "", "why the worker left (left), is away (suspended) or is to be erased (erasure_requested, required; kept, so it must not name the person)")
	fs.StringVar(&d.RequestedBy, "requested-by", "", "who asked for the erasure (erasure_requested only; kept, so it must not name the person)")
	fs.StringVar(&d.PreviousWorkerID, "previous-worker-id", "", "the worker's earlier id, if HR issued a new one (rehired only)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		feeds, sc, err := c.feedsAndStream()
		if err != nil {
			return err
		}
		var msg *nats.Msg
		if *file != "" {
			if msg, err = fileMessage(*file, feed.name, feeds); err != nil {
				return err
			}
		} else {
			if *kind == "" || d.WorkerID == "" {
				return usagef(cmd, "publish: --file, or --type and --worker, are required")
			}
			e := events.Event{Feed: cmp.Or(feed.name, "hr"), Kind: connector.Kind(*kind), ID: cmp.Or(*id, randomID()), Source: *source, Data: d}
			if f, ok := feeds[e.Feed]; ok && e.Source == "" {
				e.Source = f.Source
			}
			e.Time = time.Now().UTC()
			if *at != "" {
				if e.Time, err = time.Parse(time.RFC3339, *at); err != nil {
					return usagef(cmd, "--time %q: not RFC 3339", *at)
				}
			}
			if e.Data.Effective == "" && e.Kind != connector.KindErasureRequested {
				e.Data.Effective = time.Now().UTC().Format(time.DateOnly)
			}
			if err := events.CheckEvent(e, feeds); err != nil {
				return fmt.Errorf("refused, nothing sent: %w", err)
			}
			m := events.Binary
			if mode.v == "structured" {
				m = events.Structured
			}
			if msg, err = events.Encode(e, m); err != nil {
				return err
			}
		}
		if *dry {
			fmt.Fprintf(env.stdout, "valid; would publish to %s:\n%s\n", msg.Subject, msg.Data)
			return nil
		}
		return publishMsg(cmd.Context(), env, &c, msg, sc)
	}
	return cmd
}

// publishMsg sends msg to JetStream.
func publishMsg(ctx context.Context, env *environment, c *connFlags, msg *nats.Msg, sc events.StreamConfig) error {
	nc, err := natsConnect(c, feedOf(msg.Subject))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ack, err := js.PublishMsg(ctx, msg)
	if err != nil {
		return fmt.Errorf("publish to %s (is the stream %s there? run hrsync run once, or create it): %w", msg.Subject, sc.Name(feedOf(msg.Subject)), err)
	}
	dup := ""
	if ack.Duplicate {
		dup = " (duplicate: JetStream already had this id)"
	}
	fmt.Fprintf(env.stdout, "published to %s: stream %s seq %d%s\n", msg.Subject, ack.Stream, ack.Sequence, dup)
	return nil
}

// fileMessage reads a structured CloudEvent and validates it as the daemon would.
func fileMessage(path, feed string, feeds connector.Feeds) (*nats.Msg, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var head struct {
		Type   string `json:"type"`
		Source string `json:"source"`
		ID     string `json:"id"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("refused, nothing sent: %s is not a JSON CloudEvent: %w", path, err)
	}
	if feed == "" {
		feed = "hr"
		for _, f := range feeds {
			if f.Source == head.Source {
				feed = f.Name
			}
		}
	}
	name := strings.TrimSuffix(strings.TrimPrefix(head.Type, "hrsync.worker."), ".v1")
	msg := nats.NewMsg("hrsync.events." + feed + "." + name)
	msg.Header.Set("Content-Type", "application/cloudevents+json")
	msg.Header.Set(jetstream.MsgIDHeader, head.Source+" "+head.ID)
	msg.Data = data
	if _, err := (&events.Decoder{Feeds: feeds}).Decode(msg.Subject, msg.Header, msg.Data); err != nil {
		return nil, fmt.Errorf("refused, nothing sent: %w", err)
	}
	return msg, nil
}

// natsConnect connects the CLI to publish for feed. Its replies come on the feed's
// inbox prefix (_INBOX.<feed>), the only inbox a feed's NATS user may subscribe to
// (deploy/nats/nats-server.conf); the connector's user may use it too.
func natsConnect(c *connFlags, feed string) (*nats.Conn, error) {
	s, err := c.natsSettings()
	if err != nil {
		return nil, err
	}
	return s.Connect(nats.Name("hrsync-cli"), nats.Timeout(5*time.Second), nats.CustomInboxPrefix(events.FeedInboxPrefix(feed)))
}

// feedOf returns the feed of an event subject, hrsync.events.<feed>.<name>.
func feedOf(subject string) string {
	rest, _ := strings.CutPrefix(subject, events.SubjectPrefix)
	feed, _, _ := strings.Cut(rest, ".")
	return feed
}

func randomID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
