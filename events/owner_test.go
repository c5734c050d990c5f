package events

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestConsumeBindsDeployment: the first deployment's id goes into every feed's
// durable consumer; another deployment is refused before it consumes anything,
// naming both ids and what to do; the same deployment again (a replica, a
// restart) consumes; a consumer without the metadata is adopted.
func TestConsumeBindsDeployment(t *testing.T) {
	t.Parallel()
	js := runJetStream(t)
	feeds := testFeeds(t)
	if _, err := EnsureStreams(t.Context(), js, StreamConfig{}, feeds.Names()); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	// consume runs Consume as deployment dep until its consumers exist, then stops it.
	consume := func(dep string) error {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		done := make(chan error, 1)
		go func() {
			done <- Consume(ctx, js, &Decoder{Feeds: feeds}, newFakeRecorder(), ConsumerConfig{Deployment: dep, Logger: log})
		}()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for range 2000 {
			select {
			case err := <-done:
				return err
			case <-tick.C:
			}
			if owners(t, js, feeds.Names()) == dep+","+dep {
				break
			}
		}
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(15 * time.Second):
			return errors.New("Consume did not return after cancel")
		}
	}
	if err := consume("dep-aaaa"); err != nil {
		t.Fatalf("first deployment: %v", err)
	}
	if got := owners(t, js, feeds.Names()); got != "dep-aaaa,dep-aaaa" {
		t.Fatalf("consumers' %s = %s; want dep-aaaa on both feeds", MetadataDeployment, got)
	}
	err := consume("dep-bbbb")
	var de *DeploymentError
	if !errors.As(err, &de) || !errors.Is(err, ErrOtherDeployment) {
		t.Fatalf("second deployment: Consume = %v; want a *DeploymentError", err)
	}
	for _, want := range []string{"dep-aaaa", "dep-bbbb", "--durable", "nats consumer rm"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not say %q", err, want)
		}
	}
	if got := owners(t, js, feeds.Names()); got != "dep-aaaa,dep-aaaa" {
		t.Fatalf("after the refusal the consumers' %s = %s; want them untouched", MetadataDeployment, got)
	}
	if err := consume("dep-aaaa"); err != nil {
		t.Fatalf("the first deployment again: %v", err)
	}

	// A consumer made without metadata (an older hrsync) is adopted.
	stream := StreamConfig{}.Name("hr")
	if err := js.DeleteConsumer(t.Context(), stream, DefaultDurable); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateConsumer(t.Context(), stream, jetstream.ConsumerConfig{Durable: DefaultDurable,
		AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: FeedSubject("hr")}); err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteConsumer(t.Context(), StreamConfig{}.Name("partner-acme"), DefaultDurable); err != nil {
		t.Fatal(err)
	}
	if err := consume("dep-cccc"); err != nil {
		t.Fatalf("adopting: %v", err)
	}
	if got := owners(t, js, feeds.Names()); got != "dep-cccc,dep-cccc" {
		t.Fatalf("after adoption the consumers' %s = %s; want dep-cccc on both", MetadataDeployment, got)
	}
}

// owners lists the deployment in each feed's durable consumer's metadata.
func owners(t *testing.T, js jetstream.JetStream, feeds []string) string {
	var out []string
	for _, f := range feeds {
		c, err := js.Consumer(t.Context(), StreamConfig{}.Name(f), DefaultDurable)
		if err != nil {
			out = append(out, "none")
			continue
		}
		out = append(out, c.CachedInfo().Config.Metadata[MetadataDeployment])
	}
	return strings.Join(out, ",")
}
