package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"kiln/retention"
)

// newRetentionCmd is `kiln retention`: the retention policies of a
// running kiln.
func newRetentionCmd() *cobra.Command {
	var af apiFlags
	cmd := &cobra.Command{
		Use:   "retention",
		Short: "Run the retention policies of a running kiln",
	}
	af.register(cmd.PersistentFlags())
	var dryRun, asJSON bool
	run := &cobra.Command{
		Use:   "run",
		Short: "Delete what the retention policies no longer keep (--dry-run: only list it)",
		Long: `Run the retention section's policies on a running kiln now, through
POST /kiln/v1/retention. Each deleted (or, with --dry-run, doomed) tag and
manifest is listed with its reason, then a summary; tags build rules produce
or build on are never deleted. The server logs the same.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			server, client, err := af.connect()
			if err != nil {
				return err
			}
			u := strings.TrimSuffix(server, "/") + adminRetentionPath
			if dryRun {
				u += "?dry_run=1"
			}
			var report retention.Report
			if err := doJSON(client, http.MethodPost, u, &report); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(&report)
			}
			printRetention(out, &report)
			if report.Failed > 0 {
				return fmt.Errorf("%d deletions failed", report.Failed)
			}
			return nil
		},
	}
	run.Flags().BoolVar(&dryRun, "dry-run", false, "list what would be deleted; delete nothing")
	run.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	cmd.AddCommand(run)
	return cmd
}

// printRetention writes a line per deletion, per protected tag, then the
// summary.
func printRetention(w io.Writer, r *retention.Report) {
	verb := "deleted"
	if r.DryRun {
		verb = "would delete"
	}
	for _, d := range append(append([]retention.Deletion{}, r.Tags...), r.Manifests...) {
		name := d.Repository + "@" + string(d.Digest)
		if d.Tag != "" {
			name = d.Repository + ":" + d.Tag
		}
		switch {
		case d.Error != "":
			fmt.Fprintf(w, "failed to delete %s %s: %s\n", d.Kind(), name, d.Error)
		case d.Kept != "":
			fmt.Fprintf(w, "kept %s %s: %s\n", d.Kind(), name, d.Kept)
		default:
			fmt.Fprintf(w, "%s %s %s: %s\n", verb, d.Kind(), name, d.Reason)
		}
	}
	for _, d := range r.Protected {
		fmt.Fprintf(w, "kept tag %s:%s: protected (a build rule produces or builds on it)\n", d.Repository, d.Tag)
	}
	fmt.Fprintln(w, "retention: "+r.String())
}
