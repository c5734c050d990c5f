// Package events speaks hrsync's event contract: CloudEvents about workers on NATS
// JetStream.
//
// It holds the contract v1 (subjects, CloudEvents types, the data structs and their
// JSON Schemas under schemas/), the codec that turns a NATS message into a
// validated connector.Fact (Decoder) and an Event into a NATS message (Encode), the
// stream set-up (EnsureStream), the publisher (Publish) and the consumer (Consume),
// which records facts in batches through a Recorder and dead-letters what it cannot
// decode. docs/events.md is the contract as publishers read it.
//
// The CloudEvents SDK is used only as a codec; all transport goes through the
// jetstream package of nats.go.
package events
