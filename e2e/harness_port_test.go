package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// errPortTaken says a server could not bind the port it was given.
var errPortTaken = errors.New("the port was taken before the server bound it")

// onFreePort calls start with 127.0.0.1:PORT, a port that was free a
// moment ago, and returns the address start succeeded on. It is for
// servers whose address must be known before they start (it goes into
// their config, a rule's build args, Dockerfiles, dockerd's certs.d) or
// that cannot report the port they got for port 0; kiln started plainly
// takes port 0 and --ready-file instead (launchKiln). Another process may
// bind the port in between: start then returns an error wrapping
// errPortTaken (see portTaken) and onFreePort tries another port.
func onFreePort(t *testing.T, start func(addr string) error) string {
	t.Helper()
	const tries = 5
	for try := 1; ; try++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		err = start(addr)
		if err == nil {
			return addr
		}
		if !errors.Is(err, errPortTaken) || try == tries {
			t.Fatal(err)
		}
		t.Logf("%s: %v; trying another port", addr, err)
	}
}

// portTaken wraps err in errPortTaken when the server's log says it could
// not bind its port.
func portTaken(logPath string, err error) error {
	if b, _ := os.ReadFile(logPath); bytes.Contains(b, []byte("address already in use")) {
		return fmt.Errorf("%w: %w", errPortTaken, err)
	}
	return err
}

// onFreePort moves on when a server reports its port taken, and only then.
func TestOnFreePortTriesAnotherPort(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	log := filepath.Join(t.TempDir(), "server.log")
	var tried []string
	addr := onFreePort(t, func(addr string) error {
		if len(tried) == 0 {
			addr = held.Addr().String() // as if another process took it first
		}
		tried = append(tried, addr)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			os.WriteFile(log, []byte(err.Error()+"\n"), 0o644)
			return portTaken(log, errors.New("the server exited"))
		}
		l.Close()
		return nil
	})
	if len(tried) != 2 || addr != tried[1] || addr == held.Addr().String() {
		t.Fatalf("tried %q, got %s; want a second, free port after the held %s", tried, addr, held.Addr())
	}
}
