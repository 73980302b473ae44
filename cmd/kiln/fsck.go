package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"kiln/storage"
)

// newFsckCmd is `kiln fsck`: check (and repair) a stopped store.
func newFsckCmd() *cobra.Command {
	var (
		f       serveFlags
		repair  bool
		workers int
		quiet   bool
	)
	cmd := &cobra.Command{
		Use:   "fsck",
		Short: "Check the store: re-hash every blob, check every link, manifest, tag, referrer and upload",
		Long: `Check the store of a stopped kiln.

Every blob is re-hashed (its name must be the digest of its bytes); every
repository link must name a blob that is there; every manifest must parse,
and its config, layers and index children must be in its repository; every
tag must name a manifest of its repository; referrer entries must match
their manifests; upload sessions must have sound state.

With --repair, corrupt blobs and stray files are moved under
<data>/quarantine/, dangling links and tags and the links of broken
manifests are removed (their bytes stay), missing links and referrer
entries are rewritten, and leftovers of interrupted writes are removed.
Every action is printed.

The store is found like serve finds it (--config, ./config.yml, $KILN_DATA,
--data). Run it while kiln is stopped. The exit status is 1 when problems
remain.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(f)
			if err != nil {
				return err
			}
			store, root, err := openStore(cfg, nil)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "fsck %s%s\n", root, map[bool]string{true: " (repair)"}[repair])
			start := time.Now()
			var progress func(storage.FsckProgress)
			if !quiet {
				progress = printProgress(cmd.ErrOrStderr())
			}
			report, err := store.Fsck(cmd.Context(), storage.FsckOptions{Repair: repair, Workers: workers}, progress)
			if report != nil {
				printReport(out, report, time.Since(start))
			}
			if err != nil {
				return err
			}
			if n := report.Remaining(); n > 0 {
				if !repair {
					fmt.Fprintln(out, "run `kiln fsck --repair` to quarantine and remove what is wrong")
				}
				return fmt.Errorf("fsck: %d problem(s) remain", n)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", "", "config `file` (default ./config.yml if present, else built-in defaults)")
	fl.StringVar(&f.data, "data", "", "data `dir`ectory; overrides storage.filesystem.root and $KILN_DATA")
	fl.BoolVar(&repair, "repair", false, "quarantine corrupt blobs, remove dangling links and tags, rewrite missing links, remove leftovers")
	fl.IntVar(&workers, "workers", 4, "blobs re-hashed in parallel")
	fl.BoolVar(&quiet, "quiet", false, "no progress lines on stderr")
	return cmd
}

// printProgress prints a line when a phase starts, then at most every two
// seconds, and the phase's final count.
func printProgress(w io.Writer) func(storage.FsckProgress) {
	var (
		last     time.Time
		lastLine string
	)
	return func(p storage.FsckProgress) {
		edge := p.Done == 0 || p.Done == p.Total
		if !edge && time.Since(last) < 2*time.Second {
			return
		}
		line := fmt.Sprintf("%s: %d/%d", p.Phase, p.Done, p.Total)
		if p.Phase == "blobs" {
			line += fmt.Sprintf(" (%s)", storage.FormatBytes(p.Bytes))
		}
		if line == lastLine {
			return
		}
		last, lastLine = time.Now(), line
		fmt.Fprintln(w, line)
	}
}

func printReport(w io.Writer, r *storage.FsckReport, took time.Duration) {
	for _, p := range r.Problems {
		fmt.Fprintf(w, "PROBLEM %s\n", p)
	}
	for _, l := range r.Leftovers {
		fmt.Fprintf(w, "leftover %s\n", l)
	}
	repaired := len(r.Problems) - r.Remaining()
	fmt.Fprintf(w, "checked %d blobs (%s), %d repositories, %d layer links, %d manifests, %d tags, %d referrers, %d uploads in %s\n",
		r.Blobs, storage.FormatBytes(r.BlobBytes), r.Repositories, r.LayerLinks, r.Manifests, r.Tags, r.Referrers, r.Uploads, took.Round(time.Millisecond))
	fmt.Fprintf(w, "%d problems (%d repaired, %d remain), %d leftovers of interrupted writes\n",
		len(r.Problems), repaired, r.Remaining(), len(r.Leftovers))
}
