package main

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"kiln/storage"
)

// newGCCmd is `kiln gc`: garbage collection of a stopped store.
func newGCCmd() *cobra.Command {
	var (
		f              serveFlags
		dryRun         bool
		grace          time.Duration
		deleteUntagged bool
		asJSON         bool
		quiet          bool
	)
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Delete blobs (and, with delete_untagged, manifests) nothing references",
		Long: `Collect garbage in the store of a stopped kiln.

Every manifest a tag reaches is kept (index children and referrers of kept
manifests too, transitively); with storage.gc.delete_untagged false, every
manifest is kept. Blobs no kept manifest references are deleted, with the
repository links to them. Nothing written or refreshed within
storage.gc.grace is deleted.

A running kiln collects on its own every storage.gc.interval, and on
demand with POST /kiln/v1/gc (?dry_run=1); both are safe during pushes.

The store is found like serve finds it (--config, ./config.yml, $KILN_DATA,
--data). Progress goes to stderr, the result to stdout.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(f)
			if err != nil {
				return err
			}
			opts := storage.GCOptions{DryRun: dryRun, Grace: cfg.Storage.GC.Grace, DeleteUntagged: cfg.Storage.GC.DeleteUntagged}
			if cmd.Flags().Changed("grace") {
				opts.Grace = grace
			}
			if cmd.Flags().Changed("delete-untagged") {
				opts.DeleteUntagged = deleteUntagged
			}
			store, root, err := openStore(cfg, nil)
			if err != nil {
				return err
			}
			var progress func(storage.GCProgress)
			if !quiet {
				fmt.Fprintf(cmd.ErrOrStderr(), "gc %s (grace %s, delete untagged %v%s)\n", root, opts.Grace, opts.DeleteUntagged, map[bool]string{true: ", dry run"}[dryRun])
				progress = gcProgressPrinter(cmd.ErrOrStderr(), time.Second)
			}
			report, err := store.GC(cmd.Context(), opts, progress)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(report)
			}
			fmt.Fprintln(out, gcSummary(report))
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", "", "config `file` (default ./config.yml if present, else built-in defaults)")
	fl.StringVar(&f.data, "data", "", "data `dir`ectory; overrides storage.filesystem.root and $KILN_DATA")
	fl.BoolVar(&dryRun, "dry-run", false, "report what would be deleted; change nothing")
	fl.DurationVar(&grace, "grace", 0, "override storage.gc.grace")
	fl.BoolVar(&deleteUntagged, "delete-untagged", false, "override storage.gc.delete_untagged")
	fl.BoolVar(&asJSON, "json", false, "print the report as JSON")
	fl.BoolVar(&quiet, "quiet", false, "no progress lines on stderr")
	return cmd
}

// gcSummary is the one-line result, e.g. "gc: marked 12 manifests, 40
// blobs; swept 3 manifests, 9 blobs, 1.2 MiB in 35ms".
func gcSummary(r *storage.GCReport) string {
	prefix := "gc: "
	if r.DryRun {
		prefix = "gc (dry run): "
	}
	return prefix + r.String()
}

// gcProgressPrinter prints a line when a phase starts and when it ends,
// and in between at most every interval.
func gcProgressPrinter(w io.Writer, every time.Duration) func(storage.GCProgress) {
	var (
		last     time.Time
		lastLine string
		pending  *storage.GCProgress // the latest report, not printed yet
	)
	emit := func(p storage.GCProgress) {
		line := "gc: " + p.String()
		if line != lastLine {
			fmt.Fprintln(w, line)
		}
		last, lastLine, pending = time.Now(), line, nil
	}
	var phase string
	return func(p storage.GCProgress) {
		if p.Phase != phase {
			if pending != nil {
				emit(*pending) // how the previous phase ended
			}
			phase = p.Phase
			if p.Phase != storage.GCPhaseDone {
				emit(p)
			}
			return
		}
		if time.Since(last) < every {
			pending = &p
			return
		}
		emit(p)
	}
}
