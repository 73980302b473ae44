package main

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"kiln/bench"
)

// newBenchCmd is `kiln bench URL`: the figures of the performance issue,
// measured over HTTP against any registry.
func newBenchCmd() *cobra.Command {
	var (
		cfg      bench.Config
		blobSize string
		only     string
		asJSON   bool
	)
	cmd := &cobra.Command{
		Use:   "bench URL",
		Short: "Measure a registry over HTTP: push, pull, manifest and tag figures",
		Long: `Measure a registry (kiln or any other, without authentication) over HTTP.

Figures, in order (--only picks some; those that need data push it untimed):
  push     monolithic push MB/s: --pushes fresh blobs, one after another, each
           in one POST ?digest= (POST then PUT ?digest= if the registry ignores it)
  chunked  chunked push MB/s: POST, 8 MiB PATCHes with Content-Range, PUT ?digest=
  pull     single pull MB/s: the pushed blobs read one after another
  pull8    8 concurrent pulls MB/s
  get      manifest GET by tag: req/s, p50 and p99 ms at --clients keep-alive clients
  put      manifest PUT to new tags: tags/s, p50, p50 of the first and last 10%
  tags     tags/list of those tags: median ms
  rss      peak RSS of the server process (VmHWM of --pid)

Blobs are random and new to the registry each run, generated and hashed
before timing (the client's own SHA-256 rate is printed for reference).
Every push, pull and manifest answer is checked against its digest; pulls
hash on the client while reading, which on a small machine takes CPU the
server could have used. MB is 10^6 bytes. Each run uses repositories of its
own under kiln-bench/ and leaves them in place.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.URL = args[0]
			if !strings.Contains(cfg.URL, "://") {
				cfg.URL = "http://" + cfg.URL
			}
			n, err := bench.ParseSize(blobSize)
			if err != nil {
				return err
			}
			cfg.BlobSize = n
			if only != "" {
				cfg.Only = strings.Split(only, ",")
			}
			cfg.Progress = cmd.ErrOrStderr()
			res, err := bench.Run(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			return res.WriteText(cmd.OutOrStdout())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&blobSize, "blob-size", "256MiB", "size of each pushed and pulled blob")
	fl.IntVar(&cfg.Pushes, "pushes", 3, "blobs each push figure uploads, one after another")
	fl.IntVar(&cfg.Pulls, "pulls", 8, "concurrent pulls of the pull8 figure")
	fl.DurationVar(&cfg.Duration, "duration", 5*time.Second, "how long the manifest GET load runs")
	fl.IntVar(&cfg.Clients, "clients", 32, "keep-alive clients of the manifest GET load")
	fl.IntVar(&cfg.Tags, "tags", 2000, "new tags the manifest PUT figure creates")
	fl.IntVar(&cfg.PID, "pid", 0, "server process `id` whose peak RSS to report (Linux)")
	fl.StringVar(&only, "only", "", "comma-separated figures to run (default all): "+strings.Join(bench.AllFigures, ","))
	fl.BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}
