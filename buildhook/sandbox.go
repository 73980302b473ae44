package buildhook

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"syscall"
)

// Limits bound what one build may use (buildhook.limits); zero means the
// builder's own default.
type Limits struct {
	Memory int64 // bytes of memory a sandboxed build's commands may use
	Pids   int   // processes a sandboxed build may run at once
	Spool  int64 // bytes of disk a native build may spool to
	Log    int   // bytes of a build's log kept as it runs (see logBound); 0: defaultLogLimit
}

// The user namespace a sandboxed build runs in maps its uids and gids
// 0..sandboxIDs-1 to an unprivileged range of the host: root in the build
// is nobody outside it. Run as root, kiln uses a fixed range far above
// the ones useradd hands out (/etc/subuid: 100000 to 600100000); run as
// another user, the range /etc/subuid grants that user.
const (
	sandboxHostID = 1879048192 // 0x70000000
	sandboxIDs    = 65536
)

// sandboxInstall is what a machine needs for sandboxed builds.
const sandboxInstall = "install buildah, runc and uidmap (Debian: apt-get install buildah runc uidmap)"

// errNoSandbox marks a build that needs a sandbox the machine lacks.
var errNoSandbox = errors.New("no sandbox for the commands of a build")

// sandboxIDMap returns the --userns-uid-map/--userns-gid-map value of a
// sandboxed build ("container:host:length"), or why there is none. For an
// unprivileged kiln, buildah already runs in a user namespace of the
// user's /etc/subuid range, with the user as its root: uid 1 there is the
// range's first.
func sandboxIDMap() (string, error) {
	if os.Geteuid() == 0 {
		return fmt.Sprintf("0:%d:%d", sandboxHostID, sandboxIDs), nil
	}
	u, err := user.Current()
	if err != nil {
		return "", err
	}
	for _, file := range []string{"/etc/subuid", "/etc/subgid"} {
		n, err := subIDCount(file, u.Username, u.Uid)
		if err != nil {
			return "", err
		}
		if n < sandboxIDs {
			return "", fmt.Errorf("kiln runs as %s, and %s grants it %d ids, fewer than the %d a build's user namespace needs: add a line %s:<start>:%d", u.Username, file, n, sandboxIDs, u.Username, sandboxIDs)
		}
	}
	if _, err := exec.LookPath("newuidmap"); err != nil {
		return "", fmt.Errorf("newuidmap is not installed (%w)", err)
	}
	return fmt.Sprintf("0:1:%d", sandboxIDs), nil
}

// subIDCount returns how many ids file (/etc/subuid format) grants the
// user named name or numbered uid.
func subIDCount(file, name, uid string) (int, error) {
	f, err := os.Open(file)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	total := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(strings.TrimSpace(sc.Text()), ":")
		if len(fields) != 3 || fields[0] != name && fields[0] != uid {
			continue
		}
		if n, err := strconv.Atoi(fields[2]); err == nil && n > 0 {
			total += n
		}
	}
	return total, sc.Err()
}

// userNamespacesUsable reports why this kernel would refuse a build its
// user namespace, or nil.
func userNamespacesUsable() error {
	b, err := os.ReadFile("/proc/sys/user/max_user_namespaces")
	if err != nil {
		return fmt.Errorf("user namespaces: %w", err)
	}
	if strings.TrimSpace(string(b)) == "0" {
		return errors.New("user namespaces are off (/proc/sys/user/max_user_namespaces is 0)")
	}
	if b, err := os.ReadFile("/proc/sys/kernel/unprivileged_userns_clone"); err == nil && os.Geteuid() != 0 && strings.TrimSpace(string(b)) == "0" {
		return errors.New("unprivileged user namespaces are off (kernel.unprivileged_userns_clone is 0)")
	}
	// A seccomp filter or an LSM (a container kiln runs in, AppArmor) can
	// refuse them all the same: try one.
	truePath, err := exec.LookPath("true")
	if err != nil {
		return nil // nothing to try with; buildah will say
	}
	c := exec.Command(truePath)
	c.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}},
	}
	if err := c.Run(); err != nil {
		return fmt.Errorf("this system refuses to create a user namespace: %v", err)
	}
	return nil
}

// sandbox is how buildah sandboxes a build's commands on this machine.
type sandbox struct {
	// IDMap is the --userns-uid-map and --userns-gid-map value.
	IDMap string
	// Cgroup is whether a memory cgroup can bound the build: kiln runs as
	// root. Otherwise (rootless, where cgroups v1 or an undelegated v2
	// refuse the limit) RLIMIT_DATA bounds each process's memory instead.
	Cgroup bool
}

// sandboxReady says why buildah cannot run a build's commands sandboxed
// here (wrapping errNoSandbox), or how it can.
func sandboxReady() (sandbox, error) {
	var missing []string
	for _, tool := range []string{"buildah", "runc"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		return sandbox{}, fmt.Errorf("%w: %s not installed; %s", errNoSandbox, strings.Join(missing, " and "), sandboxInstall)
	}
	if err := userNamespacesUsable(); err != nil {
		return sandbox{}, fmt.Errorf("%w: %v", errNoSandbox, err)
	}
	idMap, err := sandboxIDMap()
	if err != nil {
		return sandbox{}, fmt.Errorf("%w: %v; %s", errNoSandbox, err, sandboxInstall)
	}
	return sandbox{IDMap: idMap, Cgroup: os.Geteuid() == 0}, nil
}
