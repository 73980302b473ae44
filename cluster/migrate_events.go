package cluster

// The webhook outbox shared by the instances (package notify): events in
// publish order, and how far each endpoint has taken them. To be folded
// into migrations as the step after the build queue's.
func init() {
	migrations = append(migrations, `CREATE TABLE events (
		id      bigserial PRIMARY KEY,
		content jsonb NOT NULL,
		created timestamptz NOT NULL DEFAULT now()
	);
	CREATE TABLE webhook_cursors (
		endpoint  text PRIMARY KEY,
		delivered bigint NOT NULL DEFAULT 0
	);`)
}
