package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"
)

// MetadataDeployment is the key, in a durable consumer's metadata, of the
// deployment (store.DeploymentID) that created it.
const MetadataDeployment = "hrsync.deployment"

// ErrOtherDeployment means a durable consumer belongs to another deployment: its
// metadata names another store's deployment id.
var ErrOtherDeployment = errors.New("the consumer belongs to another hrsync deployment")

// DeploymentError says which consumer belongs to which deployment, and what to do.
// It wraps ErrOtherDeployment.
type DeploymentError struct {
	Stream, Durable string
	// Owner is the deployment the consumer's metadata names; Ours is this store's.
	Owner, Ours string
}

func (e *DeploymentError) Error() string {
	return fmt.Sprintf("events: consumer %s on stream %s belongs to deployment %s (its metadata %s), and this hrsync's "+
		"store is deployment %s: %v, and two deployments sharing one durable consumer would each record about half "+
		"of the events. Give this deployment a durable name of its own (--durable, HRSYNC_DURABLE) or streams of its "+
		"own (stream.prefix); if deployment %s is gone for good, delete the consumer (nats consumer rm %s %s) and "+
		"start again (docs/nats.md, \"One deployment per consumer\")",
		e.Durable, e.Stream, e.Owner, MetadataDeployment, e.Ours, ErrOtherDeployment, e.Owner, e.Stream, e.Durable)
}

func (e *DeploymentError) Unwrap() error { return ErrOtherDeployment }

// BindError means a feed's durable consumer could not be looked up, created or
// updated (JetStream did not answer in time, a cluster without a leader yet):
// nothing was consumed, and trying again later may work.
type BindError struct {
	Stream, Durable string
	Err             error
}

func (e *BindError) Error() string {
	return fmt.Sprintf("events: consumer %s on stream %s: %v", e.Durable, e.Stream, e.Err)
}

func (e *BindError) Unwrap() error { return e.Err }

// bindConsumer creates the durable consumer cfg on stream for deployment, or
// updates it, unless it belongs to another deployment (a *DeploymentError). A
// consumer without the metadata (made by an hrsync before deployments, or by an
// operator) is adopted: logged, and its metadata set. With deployment empty it
// only creates or updates.
//
// A consumer that does not exist yet is created, not created-or-updated, so that
// two deployments starting at once cannot both take it: the second one's create
// fails (its metadata differs) and it reads the first one's.
func bindConsumer(ctx context.Context, js jetstream.JetStream, stream, deployment string, cfg jetstream.ConsumerConfig, log *slog.Logger) (jetstream.Consumer, error) {
	if deployment == "" {
		return js.CreateOrUpdateConsumer(ctx, stream, cfg)
	}
	cfg.Metadata = map[string]string{MetadataDeployment: deployment}
	for attempt := 0; ; attempt++ {
		cons, err := js.Consumer(ctx, stream, cfg.Durable)
		switch {
		case errors.Is(err, jetstream.ErrConsumerNotFound):
			cons, err = js.CreateConsumer(ctx, stream, cfg)
			if errors.Is(err, jetstream.ErrConsumerExists) && attempt < 3 {
				continue // made by someone else just now: read whose it is
			}
			return cons, err
		case err != nil:
			return nil, err
		}
		owner := cons.CachedInfo().Config.Metadata[MetadataDeployment]
		switch owner {
		case deployment:
		case "":
			log.Warn("adopting a durable consumer that names no deployment (made by an older hrsync, or by hand)",
				"durable", cfg.Durable, "stream", stream, "deployment", deployment)
		default:
			return nil, &DeploymentError{Stream: stream, Durable: cfg.Durable, Owner: owner, Ours: deployment}
		}
		return js.CreateOrUpdateConsumer(ctx, stream, cfg)
	}
}
