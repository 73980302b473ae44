package main

import (
	"fmt"
	"net"
	"net/http"
	"os"

	"github.com/spf13/pflag"

	"kiln/config"
)

// envServer names the kiln the API commands talk to, below --server.
const envServer = "KILN_SERVER"

// serverFlags say which kiln the API commands (kiln builds …) talk to.
type serverFlags struct {
	server string // --server
	config string // --config
}

func (f *serverFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.server, "server", "", "kiln `URL` (default $"+envServer+", else http.addr and TLS of the config)")
	fl.StringVar(&f.config, "config", "", "config `file` to find the server in when no URL is given (default ./config.yml if present)")
}

// apiFlags say which kiln an API command talks to, and who it logs in as.
type apiFlags struct {
	serverFlags
	username string // --username, else $KILN_USERNAME
}

func (f *apiFlags) register(fl *pflag.FlagSet) {
	f.serverFlags.register(fl)
	fl.StringVar(&f.username, "username", os.Getenv("KILN_USERNAME"), "log in as `user` ($KILN_USERNAME; the password comes from $KILN_PASSWORD)")
}

// connect resolves the server and the client that logs in to it.
func (f *apiFlags) connect() (server string, client *http.Client, err error) {
	if server, err = f.url(); err != nil {
		return "", nil, err
	}
	client, err = apiClient(server, f.username)
	return server, client, err
}

// url resolves the server: --server, then $KILN_SERVER, then the address
// serve would listen on with the same config (--config, else ./config.yml,
// else the defaults; $KILN_ADDR applies), as healthcheck finds it.
func (f serverFlags) url() (string, error) {
	if f.server != "" {
		return f.server, nil
	}
	if s := os.Getenv(envServer); s != "" {
		return s, nil
	}
	cfg, err := loadConfig(serveFlags{config: f.config})
	if err != nil {
		return "", fmt.Errorf("finding the server (or give --server or $%s): %w", envServer, err)
	}
	return listenURL(cfg.HTTP)
}

// listenURL is the base URL that reaches a kiln listening as h says: a
// wildcard or empty host is reached through loopback, and TLS means https.
func listenURL(h config.HTTP) (string, error) {
	host, port, err := net.SplitHostPort(h.Addr)
	if err != nil {
		return "", fmt.Errorf("http.addr %q: %w", h.Addr, err)
	}
	if ip := net.ParseIP(host); host == "" || ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	scheme := "http"
	if h.TLS.Enabled() {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port), nil
}
