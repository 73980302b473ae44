package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"kiln/cluster"
)

// newClusterCmd is `kiln cluster`: the instances sharing cluster.postgres.
func newClusterCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Show the kiln instances that share cluster.postgres",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newClusterStatusCmd())
	return cmd
}

func newClusterStatusCmd() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "List the instances, their last heartbeats, the builds each runs and the tasks each leads",
		Long: `List the kiln instances registered in cluster.postgres, with when each
started, when it last recorded that it is alive, the builds it runs (and
how many wait in the queue), and which cluster-wide tasks it leads (upstream-watch, gc, retention, cache-check, housekeeping,
webhook:NAME per endpoint: each runs on its leader only). An instance removes itself when it stops
cleanly; one silent for three heartbeat intervals (cluster.heartbeat) is
shown as stale: it was killed or cannot reach the database. The leader of
housekeeping removes instances silent for ten intervals (at least a
minute).

The database is found like serve finds it (--config, ./config.yml).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(f)
			if err != nil {
				return err
			}
			if !cfg.Cluster.Enabled() {
				return errors.New("cluster.postgres is not set: this kiln runs on its own")
			}
			db, err := cluster.Open(cmd.Context(), cfg.Cluster.Postgres)
			if err != nil {
				return err
			}
			defer db.Close()
			instances, err := db.Instances(cmd.Context())
			if err != nil {
				return err
			}
			tasks := slices.Clone(leaderTasks)
			for i, ep := range cfg.Notifications.Endpoints {
				name := ep.Name
				if name == "" {
					name = strconv.Itoa(i) // as notify names it
				}
				tasks = append(tasks, "webhook:"+name)
			}
			leaders, err := db.Leaders(cmd.Context(), tasks)
			if err != nil {
				return err
			}
			running, queued, err := db.RunningBuilds(cmd.Context())
			if err != nil {
				return err
			}
			if err := printInstances(cmd.OutOrStdout(), instances, runsByInstance(running), leadsByInstance(tasks, leaders), time.Now(), 3*cfg.Cluster.Heartbeat); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%d builds queued\n", queued)
			return err
		},
	}
	cmd.Flags().StringVar(&f.config, "config", "", "config `file` (default ./config.yml if present, else built-in defaults)")
	return cmd
}

// leadsByInstance turns task → leader into leader → its tasks, in
// tasks' order.
func leadsByInstance(tasks []string, leaders map[string]string) map[string][]string {
	leads := map[string][]string{}
	for _, task := range tasks {
		if holder, ok := leaders[task]; ok {
			leads[holder] = append(leads[holder], task)
		}
	}
	return leads
}

// runsByInstance lists each instance's running builds as "ID (rule)".
func runsByInstance(running []cluster.RunningBuild) map[string][]string {
	runs := map[string][]string{}
	for _, b := range running {
		runs[b.Instance] = append(runs[b.Instance], b.ID+" ("+b.Rule+")")
	}
	return runs
}

// printInstances writes one line per instance with the builds it runs and
// the tasks it leads; a heartbeat older than stale is marked.
func printInstances(w io.Writer, instances []cluster.Instance, runs, leads map[string][]string, now time.Time, stale time.Duration) error {
	if len(instances) == 0 {
		_, err := fmt.Fprintln(w, "no instances")
		return err
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INSTANCE\tADDRESS\tSTARTED\tHEARTBEAT\tBUILDS\tLEADS")
	for _, i := range instances {
		age := now.Sub(i.Heartbeat).Round(time.Second)
		beat := fmt.Sprintf("%s ago", max(age, 0))
		if age > stale {
			beat += " (stale)"
		}
		led := "-"
		if tasks := leads[i.ID]; len(tasks) > 0 {
			led = strings.Join(tasks, ",")
		}
		builds := "-"
		if rs := runs[i.ID]; len(rs) > 0 {
			builds = strings.Join(rs, ",")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", i.ID, i.Addr, i.Started.UTC().Format(time.RFC3339), beat, builds, led)
	}
	return tw.Flush()
}
