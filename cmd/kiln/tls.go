package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"kiln/config"
)

// serverTLS is http.tls loaded: what kiln serves HTTPS with and what its
// own builders need to trust it.
type serverTLS struct {
	config *tls.Config
	// selfTransport trusts exactly the certificates of the configured file,
	// for builders dialing kiln on loopback.
	selfTransport http.RoundTripper
	// certDir holds the certificate file as kiln.crt, for buildah.
	certDir string
}

// loadServerTLS reads the certificate and key; nil when TLS is off. Errors
// name the config key of the file at fault.
func loadServerTLS(t config.TLS, logger *slog.Logger) (*serverTLS, error) {
	if !t.Enabled() {
		return nil, nil
	}
	certPEM, err := os.ReadFile(t.Certificate)
	if err != nil {
		return nil, fmt.Errorf("http.tls.certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(t.Key)
	if err != nil {
		return nil, fmt.Errorf("http.tls.key: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("http.tls.certificate %s with http.tls.key %s: %w", t.Certificate, t.Key, err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)

	// Builders dial 127.0.0.1: if the certificate does not name it, they
	// check the first name it does have (they know whom they dial).
	serverName := "127.0.0.1"
	if leaf := pair.Leaf; leaf.VerifyHostname(serverName) != nil {
		switch {
		case len(leaf.DNSNames) > 0:
			serverName = leaf.DNSNames[0]
		case len(leaf.IPAddresses) > 0:
			serverName = leaf.IPAddresses[0].String()
		}
		logger.Warn("the TLS certificate does not name 127.0.0.1: buildah builds cannot verify kiln (the native builder checks it as "+serverName+")",
			slog.String("certificate", t.Certificate))
	}
	tr := remote.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12}

	dir, err := os.MkdirTemp("", "kiln-tls-")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "kiln.crt"), certPEM, 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &serverTLS{
		config:        &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12},
		selfTransport: tr,
		certDir:       dir,
	}, nil
}

// serve serves srv on ln, over HTTPS when TLS is configured.
func (s *serverTLS) serve(srv *http.Server, ln net.Listener) error {
	if s == nil {
		return srv.Serve(ln)
	}
	srv.TLSConfig = s.config
	return srv.ServeTLS(ln, "", "")
}

func (s *serverTLS) close() {
	if s != nil {
		os.RemoveAll(s.certDir)
	}
}
