package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"kiln/storage"
)

// newCacheCmd is `kiln cache`: the pull-through cache of a running kiln.
func newCacheCmd() *cobra.Command {
	var af apiFlags
	cmd := &cobra.Command{
		Use:   "cache",
		Short: "Show and bound the pull-through cache of a running kiln",
	}
	af.register(cmd.PersistentFlags())
	call := func(method, query string, v any) error {
		server, client, err := af.connect()
		if err != nil {
			return err
		}
		return doJSON(client, method, strings.TrimSuffix(server, "/")+adminCachePath+query, v)
	}
	usage := &cobra.Command{
		Use:   "usage",
		Short: "What the cache holds, its budget, and the last eviction",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var st cacheStatus
			if err := call(http.MethodGet, "", &st); err != nil {
				return err
			}
			printCacheStatus(cmd.OutOrStdout(), &st)
			return nil
		},
	}
	var dryRun bool
	evict := &cobra.Command{
		Use:   "evict",
		Short: "Evict what is unused or over budget now (--dry-run: only list it)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			query := ""
			if dryRun {
				query = "?dry_run=1"
			}
			var r storage.EvictReport
			if err := call(http.MethodPost, query, &r); err != nil {
				return err
			}
			printEviction(cmd.OutOrStdout(), &r)
			return nil
		},
	}
	evict.Flags().BoolVar(&dryRun, "dry-run", false, "list what would be evicted; evict nothing")
	cmd.AddCommand(usage, evict)
	return cmd
}

func printCacheStatus(w io.Writer, st *cacheStatus) {
	budget := "none"
	if st.Budget > 0 {
		budget = fmt.Sprintf("%s (%.0f%% used)", storage.FormatBytes(st.Budget), 100*float64(st.Bytes)/float64(st.Budget))
	}
	fmt.Fprintf(w, "cached:  %d images in %d repositories\n", st.Images, st.Repositories)
	fmt.Fprintf(w, "size:    %s held alone, %s shared with pushed or built images\n", storage.FormatBytes(st.Bytes), storage.FormatBytes(st.Shared))
	fmt.Fprintf(w, "budget:  %s\n", budget)
	if st.MaxUnused != "" {
		fmt.Fprintf(w, "unused:  evicted after %s\n", st.MaxUnused)
	}
	if st.Free > 0 {
		fmt.Fprintf(w, "free:    %s on the store's filesystem (evicts below %s)\n", storage.FormatBytes(st.Free), storage.FormatBytes(st.MinFree))
	}
	if r := st.LastEviction; r != nil {
		fmt.Fprintf(w, "last eviction: %d images\n", len(r.Evicted))
	}
}

func printEviction(w io.Writer, r *storage.EvictReport) {
	verb := "evicted"
	if r.DryRun {
		verb = "would evict"
	}
	for _, e := range r.Evicted {
		fmt.Fprintf(w, "%s %s@%s %v (%s, last used %s): %s\n", verb, e.Repo, e.Digest, e.Tags, storage.FormatBytes(e.Bytes), e.LastUsed.UTC().Format("2006-01-02 15:04"), e.Why)
	}
	fmt.Fprintf(w, "cache: %s before, %s after (%d images)\n", storage.FormatBytes(r.Before.Bytes), storage.FormatBytes(r.After.Bytes), r.After.Images)
}
