package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ---------------------------------------------------------------- kiln

type kilnServer struct {
	env     *registryEnv
	cmd     *exec.Cmd
	stderr  string // path of the captured stderr
	done    chan struct{}
	waitErr error
}

func startKiln(runID string) (*kilnServer, error) {
	bin, err := buildKiln()
	if err != nil {
		return nil, err
	}
	data := filepath.Join(suiteTmp, "data")
	// From an empty directory, so no stray ./config.yml is read.
	return launchKiln(bin, runID, suiteTmp, "kiln.stderr", nil, "", "--data", data)
}

var (
	kilnBinOnce sync.Once
	kilnBin     string
	kilnBinErr  error
)

// buildKiln builds kiln with the race detector, once per suite.
func buildKiln() (string, error) {
	kilnBinOnce.Do(func() {
		bin := filepath.Join(suiteTmp, "kiln")
		fmt.Printf("e2e: building kiln (go build -race ./cmd/kiln)\n")
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		build := exec.CommandContext(ctx, goBin(), "build", "-race", "-o", bin, "./cmd/kiln")
		build.Dir = moduleRoot
		if out, err := build.CombinedOutput(); err != nil {
			kilnBinErr = fmt.Errorf("go build -race ./cmd/kiln: %v\n%s", err, tail(string(out), 40))
			return
		}
		kilnBin = bin
	})
	return kilnBin, kilnBinErr
}

// launchKiln starts `kiln serve --addr ADDR ARGS...` in dir, with env added
// to its environment, and waits until it answers /v2/. An empty addr means
// port 0 on 127.0.0.1: kiln binds a free port and writes it to its
// --ready-file, so no other process can take the port between picking and
// binding. Its output goes to dir/logName.
func launchKiln(bin, runID, dir, logName string, env []string, addr string, args ...string) (*kilnServer, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	readyFile := filepath.Join(dir, logName+".addr")
	os.Remove(readyFile) // a previous start's, in a restart test
	s := &kilnServer{
		env:    &registryEnv{Kiln: true, RunID: runID},
		stderr: filepath.Join(dir, logName),
		done:   make(chan struct{}),
	}
	errf, err := os.Create(s.stderr)
	if err != nil {
		return nil, err
	}
	s.cmd = exec.Command(bin, append([]string{"serve", "--addr", addr, "--ready-file", readyFile}, args...)...)
	s.cmd.Dir = dir
	s.cmd.Env = append(os.Environ(), env...)
	s.cmd.Stdout = errf
	s.cmd.Stderr = errf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		errf.Close()
		return nil, fmt.Errorf("start kiln: %w", err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		errf.Close()
		close(s.done)
	}()
	fmt.Printf("e2e: kiln serve --addr %s %s (pid %d)\n", addr, strings.Join(args, " "), s.cmd.Process.Pid)
	bound, err := waitForReadyFile(readyFile, 60*time.Second, s.done)
	if err != nil {
		s.kill()
		return s, portTaken(s.stderr, fmt.Errorf("kiln did not come up: %w", err))
	}
	s.env.Addr, s.env.URL = bound, "http://"+bound
	if err := waitForV2(s.env.URL, 60*time.Second, s.done); err != nil {
		s.kill()
		return s, fmt.Errorf("kiln did not come up: %w", err)
	}
	return s, nil
}

// waitForReadyFile waits for kiln to write the address it listens on to
// path. done, if not nil, aborts the wait when closed (kiln exited).
func waitForReadyFile(path string, timeout time.Duration, done <-chan struct{}) (string, error) {
	deadline := time.After(timeout)
	for {
		if b, err := os.ReadFile(path); err == nil {
			return strings.TrimSpace(string(b)), nil
		}
		select {
		case <-done:
			return "", errors.New("kiln exited before writing its --ready-file")
		case <-deadline:
			return "", fmt.Errorf("no --ready-file %s within %s", path, timeout)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *kilnServer) kill() {
	select {
	case <-s.done:
	default:
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
}

// stop sends SIGTERM and waits. It reports an error if kiln had already died,
// did not exit within 20s, or the race detector reported a data race.
func (s *kilnServer) stop() error {
	select {
	case <-s.done:
		return fmt.Errorf("kiln exited during the tests: %v", s.waitErr)
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	var errs []error
	select {
	case <-s.done:
		if s.waitErr != nil {
			fmt.Printf("e2e: kiln exited after SIGTERM with: %v\n", s.waitErr)
		}
	case <-time.After(20 * time.Second):
		s.kill()
		errs = append(errs, errors.New("kiln did not exit within 20s of SIGTERM"))
	}
	if b, err := os.ReadFile(s.stderr); err == nil && bytes.Contains(b, []byte("WARNING: DATA RACE")) {
		errs = append(errs, errors.New("the race detector reported a DATA RACE in kiln (see its stderr)"))
	}
	return errors.Join(errs...)
}

func (s *kilnServer) printTail(w io.Writer, n int) {
	b, err := os.ReadFile(s.stderr)
	if err != nil {
		return
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	fmt.Fprintf(w, "e2e: last %d lines of kiln's stderr:\n", len(lines))
	for _, l := range lines {
		fmt.Fprintf(w, "  | %s\n", l)
	}
}

// waitForV2 polls GET /v2/ until it answers 200. done, if not nil, aborts
// the wait when closed (the server exited).
func waitForV2(base string, timeout time.Duration, done <-chan struct{}) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 2 * time.Second}
	var last string
	for time.Now().Before(deadline) {
		resp, err := client.Get(base + "/v2/")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = "GET /v2/ answered " + resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-done:
			return fmt.Errorf("the server exited (last: %s)", last)
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("GET %s/v2/ did not answer 200 within %s (last: %s)", base, timeout, last)
}
