-- 0018: the deployment this store belongs to. One row: a random id that hrsync
-- makes on first use (store.DeploymentID) and writes into the metadata of the
-- JetStream consumers it creates, so that a second deployment (another store)
-- that finds the same durable consumer on the same stream refuses to consume
-- through it instead of silently taking half of the events (issue #15).
CREATE TABLE deployment (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    id        TEXT NOT NULL
);
