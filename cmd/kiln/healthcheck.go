package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"kiln/config"
)

// newHealthcheckCmd probes the local server's /healthz. It exists for
// container images without a shell or curl (Dockerfile HEALTHCHECK).
func newHealthcheckCmd() *cobra.Command {
	var f serveFlags
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Exit 0 if the kiln serving on this host answers GET /healthz",
		Long: `Probe GET /healthz of the kiln serve running on this host.

The address comes from the same configuration serve reads (--config, else
./config.yml, else the built-in defaults; $KILN_ADDR overrides the file,
--addr overrides both); an unspecified listen host means loopback.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(f)
			if err != nil {
				return err
			}
			url, err := healthURL(cfg.HTTP)
			if err != nil {
				return err
			}
			client := &http.Client{Timeout: timeout, Transport: &http.Transport{
				// A liveness probe of our own loopback listener: the
				// certificate names the public host, not 127.0.0.1, and
				// no credentials are sent.
				TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
			}}
			resp, err := client.Get(url)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("GET %s: %s", url, resp.Status)
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), "ok")
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", "", "config `file` serve was started with")
	fl.StringVar(&f.addr, "addr", "", "address serve listens on, `host:port`; overrides http.addr and $"+config.EnvAddr)
	fl.DurationVar(&timeout, "timeout", 5*time.Second, "give up after this long")
	return cmd
}

// healthURL is the /healthz of the kiln listening as h says.
func healthURL(h config.HTTP) (string, error) {
	base, err := listenURL(h)
	if err != nil {
		return "", err
	}
	return base + "/healthz", nil
}
