package testbed

import "net"

// freeLoopbackAddr returns 127.0.0.1:PORT with a port nothing listens on
// right now. Another process may take it before the caller binds it; the
// daemon then exits and its start fails with a log that says so.
func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
