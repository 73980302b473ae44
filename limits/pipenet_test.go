package limits

import (
	"context"
	"net"
	"net/http"
	"sync"
	"testing"
)

// pipeNet is an in-memory network for tests in a synctest bubble: net.Pipe
// connections have deadlines like TCP ones, and there they expire in the
// bubble's fake time, so a client that idles or trickles past the stall
// timeout takes no real time and no guess at how slow the machine is.
type pipeNet struct {
	conns    chan net.Conn
	done     chan struct{}
	stopOnce sync.Once
}

func (n *pipeNet) Accept() (net.Conn, error) {
	select {
	case c := <-n.conns:
		return c, nil
	case <-n.done:
		return nil, net.ErrClosed
	}
}

func (n *pipeNet) Close() error {
	n.stopOnce.Do(func() { close(n.done) })
	return nil
}

func (n *pipeNet) Addr() net.Addr { return pipeAddr{} }

// Dial connects to the server: its end of the pipe is what Accept returns.
func (n *pipeNet) Dial() (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case n.conns <- server:
		return client, nil
	case <-n.done:
		return nil, net.ErrClosed
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// pipeServer serves Stall(h, testStall) on a pipeNet; call it inside
// synctest.Test. The server and the client's connections are closed when
// the test ends, so the bubble's goroutines all exit.
type pipeServer struct {
	net    *pipeNet
	client *http.Client
}

func startPipeServer(t *testing.T, h http.Handler) *pipeServer {
	t.Helper()
	n := &pipeNet{conns: make(chan net.Conn), done: make(chan struct{})}
	srv := &http.Server{Handler: Stall(h, testStall)}
	go srv.Serve(n)
	tr := &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) { return n.Dial() }}
	t.Cleanup(func() {
		srv.Close()
		tr.CloseIdleConnections()
	})
	return &pipeServer{net: n, client: &http.Client{Transport: tr}}
}

// dial opens a raw connection to the server.
func (s *pipeServer) dial(t *testing.T) net.Conn {
	t.Helper()
	c, err := s.net.Dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
