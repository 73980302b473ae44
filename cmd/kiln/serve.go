package main

import (
	"io"
	"log/slog"

	"github.com/spf13/cobra"

	"kiln/accesslog"
	"kiln/config"
)

// serveFlags are serve's command-line overrides; "" means not given.
type serveFlags struct {
	config    string
	addr      string
	data      string
	readyFile string

	cpuProfile string
}

func newServeCmd() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the registry API until SIGINT or SIGTERM",
		Long: `Serve the registry API under /v2/.

Configuration comes from --config, else ./config.yml if present, else the
built-in defaults; then $KILN_ADDR and $KILN_DATA override the file, and the
--addr and --data flags override both.

--addr 127.0.0.1:0 listens on a free port; --ready-file then tells a
supervisor or test which one, without a race between picking and binding.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(f)
			if err != nil {
				return err
			}
			logger := newLogger(cmd.ErrOrStderr(), cfg.Log)
			slog.SetDefault(logger) // for libraries that log through slog's default
			stopProfile, err := startCPUProfile(f.cpuProfile)
			if err != nil {
				return err
			}
			defer stopProfile()
			return serveReporting(cmd.Context(), cfg, logger, f.readyFile)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.cpuProfile, "cpu-profile", "", "write a CPU profile of the run to `file` (for performance work)")
	fl.StringVar(&f.config, "config", "", "config `file` (default ./config.yml if present, else built-in defaults)")
	fl.StringVar(&f.addr, "addr", "", "listen address `host:port`; overrides http.addr and $"+config.EnvAddr)
	fl.StringVar(&f.readyFile, "ready-file", "", "once listening, write the bound host:port to `file` (created whole, by rename)")
	fl.StringVar(&f.data, "data", "", "data `dir`ectory; overrides storage.filesystem.root and $"+config.EnvData)
	return cmd
}

// loadConfig applies the precedence flags > environment > file > defaults,
// validating only at the end so a flag can replace a bad environment value.
func loadConfig(f serveFlags) (*config.Config, error) {
	cfg, err := config.Read(f.config)
	if err != nil {
		return nil, err
	}
	if f.addr != "" {
		cfg.HTTP.Addr = f.addr
	}
	if f.data != "" {
		cfg.Storage.Filesystem.Root = f.data
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// newLogger builds the process logger: text or JSON lines on w. Lines
// logged with a request's context carry its request_id.
func newLogger(w io.Writer, c config.Log) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.SlogLevel()}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if c.Format == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(accesslog.ContextHandler(h))
}
