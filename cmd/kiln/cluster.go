package main

import (
	"context"
	"log/slog"
	"net"
	"os"
	"time"

	"kiln/buildhook"
	"kiln/cluster"
	"kiln/config"
)

// tokenKeyName names the signing key of bearer tokens in the cluster's
// database.
const tokenKeyName = "tokens"

// clusterNode is this instance's part in a cluster: the shared database and
// its row there. A nil node (no cluster.postgres) does nothing.
type clusterNode struct {
	db       *cluster.DB
	member   *cluster.Member
	tokenKey []byte // shared by every instance
	// heartbeat is cluster.heartbeat: also how often a follower tries to
	// take a task's lead and a leader checks its hold.
	heartbeat time.Duration
	logger    *slog.Logger
}

// openCluster connects to cluster.postgres, migrating its schema, and
// fetches the shared token key; nil without cluster.postgres.
func openCluster(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*clusterNode, error) {
	if !cfg.Cluster.Enabled() {
		return nil, nil
	}
	db, err := cluster.Open(ctx, cfg.Cluster.Postgres)
	if err != nil {
		return nil, err
	}
	key, err := db.SigningKey(ctx, tokenKeyName)
	if err != nil {
		db.Close()
		return nil, err
	}
	return &clusterNode{db: db, tokenKey: key, heartbeat: cfg.Cluster.Heartbeat, logger: logger}, nil
}

// join registers this instance, listening on listenAddr, with a heartbeat.
func (n *clusterNode) join(ctx context.Context, cfg *config.Config, listenAddr string) error {
	if n == nil {
		return nil
	}
	m, err := n.db.Join(ctx, cluster.JoinOptions{Addr: advertisedAddr(listenAddr), Heartbeat: cfg.Cluster.Heartbeat, Logger: n.logger})
	if err != nil {
		return err
	}
	n.member = m
	n.logger.Info("joined the cluster", slog.String("instance", m.ID()))
	return nil
}

// close leaves the cluster (a clean stop removes this instance's row) and
// closes the pool.
func (n *clusterNode) close() {
	if n == nil {
		return
	}
	if n.member != nil {
		ctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
		defer cancel()
		if err := n.member.Leave(ctx); err != nil {
			n.logger.Warn("cluster: leaving", slog.Any("err", err))
		}
	}
	n.db.Close()
}

// builds puts the build queue and records in the cluster's database;
// nil without a cluster.
func (n *clusterNode) builds(cfg *config.Config) *buildhook.SharedOptions {
	if n == nil {
		return nil
	}
	return &buildhook.SharedOptions{Pool: n.db.Pool(), Instance: n.member.ID(), Renew: cfg.Cluster.Heartbeat, Lease: cfg.Cluster.Lease}
}

// key is the shared token key; nil without a cluster.
func (n *clusterNode) key() []byte {
	if n == nil {
		return nil
	}
	return n.tokenKey
}

// leaveTimeout bounds removing this instance's row at a stop.
const leaveTimeout = 10 * time.Second

// advertisedAddr is listenAddr with a wildcard host replaced by this
// machine's name, so that status shows where an instance is.
func advertisedAddr(listenAddr string) string {
	host, port, err := net.SplitHostPort(listenAddr)
	if err != nil {
		return listenAddr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		if name, err := os.Hostname(); err == nil {
			return net.JoinHostPort(name, port)
		}
	}
	return listenAddr
}
