package buildhook

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/opencontainers/go-digest"

	"kiln/buildhook/build"
	"kiln/buildhook/dockerfile"
)

// BuildahBuilder builds with the buildah CLI, every RUN step in a sandbox:
// OCI isolation (runc) in a user namespace whose root is an unprivileged
// uid of the host, with its own mount, pid, ipc and uts namespaces, no
// network unless the rule asks for it, and bounded memory and processes.
// It never uses chroot isolation. kiln's credential is on disk only while
// buildah pulls the bases and pushes the result, never while a command of
// the build runs.
type BuildahBuilder struct {
	// Root holds buildah's storage (--root; --runroot beside it): a
	// directory private to this kiln, whose bases are pruned after every
	// build (see WorkDir).
	Root string
	// Limits bound each build's commands.
	Limits Limits
}

// Name implements Builder.
func (BuildahBuilder) Name() string { return "buildah" }

// SandboxReady says why this machine cannot run a build's commands
// sandboxed, and what to install; nil when it can.
func (BuildahBuilder) SandboxReady() error {
	_, err := sandboxReady()
	return err
}

func (b BuildahBuilder) cmd(ctx context.Context, log io.Writer, args ...string) *exec.Cmd {
	// overlay, not vfs: vfs leaves the root directory of a layer shifted
	// into the user namespace owned by the host's root, so the build's
	// root could not even create /proc in it.
	base := []string{"--root", filepath.Join(b.Root, "sandbox"), "--runroot", filepath.Join(b.Root, "sandbox-run"), "--storage-driver", "overlay"}
	c := exec.CommandContext(ctx, "buildah", append(base, args...)...)
	c.Stdout, c.Stderr = log, log
	// At the build's timeout buildah gets SIGTERM first, so that it stops
	// the running container rather than leave it behind.
	c.Cancel = func() error { return c.Process.Signal(syscall.SIGTERM) }
	c.WaitDelay = 30 * time.Second
	// So does it when kiln dies: a killed buildah leaves its container
	// running. (kiln never locks a goroutine to its thread, so the thread
	// that started buildah does not end before kiln.)
	c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	return c
}

// Build implements Builder.
func (b BuildahBuilder) Build(ctx context.Context, job *build.Job, log io.Writer) (digest.Digest, error) {
	sb, err := sandboxReady()
	if err != nil {
		return "", err
	}
	if b.Root == "" {
		return "", fmt.Errorf("buildah has no storage directory (buildhook.work_dir)")
	}
	// Root is inside this kiln's working directory, which lockdir made
	// private (see cmd/kiln's openWorkDir).
	if err := os.MkdirAll(b.Root, 0o700); err != nil {
		return "", err
	}
	bases, err := buildInputs(job.Rule)
	if err != nil {
		return "", err
	}
	image := job.Registry + "/" + job.Staging.String()
	// Bases a tag no longer names would otherwise pile up build after
	// build; the ones still tagged stay, as the next build's cache.
	defer b.prune(context.WithoutCancel(ctx), log)

	// The bases are pulled first, with kiln's login, so that the build
	// itself runs with no credential on disk.
	err = withSelfAuth(job, func(authFile string) error {
		for _, base := range bases {
			args := append([]string{"pull", "--policy", "always"}, buildahSelfArgs(job, authFile)...)
			args = append(args, base)
			fmt.Fprintf(log, "$ buildah %s\n", strings.Join(args, " "))
			if err := b.cmd(ctx, log, args...).Run(); err != nil {
				return fmt.Errorf("buildah pull %s: %w", base, err)
			}
		}
		return nil
	})
	if err != nil {
		return "", err
	}

	epoch, dated := sourceDateEpoch(ctx, job)
	if !dated {
		epoch = -1
	}
	args := b.budArgs(job.Rule, sb, image, epoch)
	memory := "a memory cgroup"
	if !sb.Cgroup {
		memory = "per process, RLIMIT_DATA: an unprivileged kiln has no memory cgroup"
	}
	fmt.Fprintf(log, "sandbox: OCI isolation (runc), user namespace %s, network %s, memory %d bytes (%s), %d processes\n",
		sb.IDMap, ruleNetwork(job.Rule), b.Limits.Memory, memory, b.Limits.Pids)
	fmt.Fprintf(log, "$ buildah %s\n", strings.Join(args, " "))
	if err := b.cmd(ctx, log, args...).Run(); err != nil {
		return "", fmt.Errorf("buildah bud: %w", err)
	}
	defer b.cmd(context.WithoutCancel(ctx), io.Discard, "rmi", image).Run()

	fmt.Fprintf(log, "pushing %s\n", image)
	err = withSelfAuth(job, func(authFile string) error {
		push := append(append([]string{"push"}, buildahSelfArgs(job, authFile)...), image, "docker://"+image)
		if err := b.cmd(ctx, log, push...).Run(); err != nil {
			return build.Transient(fmt.Errorf("buildah push: %w", err))
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return resolveStaging(ctx, job)
}

// prune removes the images of b's storage that no tag names and no
// container uses: the bases that moved since they were pulled.
func (b BuildahBuilder) prune(ctx context.Context, log io.Writer) {
	var out strings.Builder
	if err := b.cmd(ctx, &out, "rmi", "--prune").Run(); err != nil {
		fmt.Fprintf(log, "pruning buildah's storage: %v\n%s", err, out.String())
		return
	}
	if n := len(strings.Fields(out.String())); n > 0 {
		fmt.Fprintf(log, "pruned %d image(s) no tag names from buildah's storage\n", n)
	}
}

// RemoveBuildahStorage prepares the buildah storage in a work directory
// for deletion: a dead kiln's buildah may still hold a container mounted
// (rm waits for its storage lock, then unmounts), and unprivileged, the
// files belong to the user namespace's ids, which only buildah's own
// namespace may delete.
func RemoveBuildahStorage(workDir string) error {
	root := filepath.Join(workDir, "buildah")
	if _, err := os.Lstat(root); err != nil {
		return nil
	}
	b := BuildahBuilder{Root: root}
	if out, err := b.cmd(context.Background(), nil, "rm", "--all").CombinedOutput(); err != nil {
		return fmt.Errorf("buildah rm --all: %v: %s", err, out)
	}
	if os.Geteuid() == 0 {
		return nil
	}
	out, err := exec.Command("buildah", "unshare", "rm", "-rf", root).CombinedOutput()
	if err != nil {
		return fmt.Errorf("buildah unshare rm -rf %s: %v: %s", root, err, out)
	}
	return nil
}

// budArgs is the sandboxed `buildah bud` of rule, dated epoch (Unix
// seconds; negative: now) for reproducible timestamps: bases from the local
// store only (pulled before), no login, no --pid/--ipc/--uts flags
// (private is the default under OCI isolation, and buildah 1.28 turns
// --network none back into a private network when any of them is given).
func (b BuildahBuilder) budArgs(rule *build.Rule, sb sandbox, image string, epoch int64) []string {
	args := []string{"bud", "--isolation", "oci", "--pull=never",
		"--userns-uid-map", sb.IDMap, "--userns-gid-map", sb.IDMap}
	if ruleNetwork(rule) == "none" {
		args = append(args, "--network=none")
	}
	if m := strconv.FormatInt(b.Limits.Memory, 10); b.Limits.Memory > 0 && sb.Cgroup {
		args = append(args, "--memory", m)
	} else if b.Limits.Memory > 0 {
		args = append(args, "--ulimit", "data="+m+":"+m)
	}
	if b.Limits.Pids > 0 {
		// RLIMIT_NPROC counts per uid and user namespace: every process
		// of this build, and only them.
		n := strconv.Itoa(b.Limits.Pids)
		args = append(args, "--ulimit", "nproc="+n+":"+n)
	}
	args = append(args, "-f", filepath.Join(rule.Context, rule.Dockerfile), "-t", image)
	keys := make([]string, 0, len(rule.Args))
	for k := range rule.Args {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "--build-arg", k+"="+rule.Args[k])
	}
	if epoch >= 0 {
		e := strconv.FormatInt(epoch, 10)
		args = append(args, "--timestamp", e)
		if _, set := rule.Args[sourceDateArg]; !set {
			args = append(args, "--build-arg", sourceDateArg+"="+e)
		}
	}
	return append(args, rule.Context)
}

// ruleNetwork is what the rule's RUN steps reach: none unless it says
// default.
func ruleNetwork(r *build.Rule) string {
	if r.Network == "default" {
		return "default"
	}
	return "none"
}

// buildInputs are the images rule's Dockerfile builds from: every stage's
// base and every COPY --from image, once each.
func buildInputs(rule *build.Rule) ([]string, error) {
	content, err := os.ReadFile(filepath.Join(rule.Context, rule.Dockerfile))
	if err != nil {
		return nil, err
	}
	info, err := dockerfile.Parse(content, rule.Args)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var images []string
	add := func(name string) {
		if name != "" && !strings.EqualFold(name, "scratch") && !seen[name] {
			seen[name] = true
			images = append(images, name)
		}
	}
	for _, st := range info.Stages {
		if !st.FromStage {
			add(st.BaseName)
		}
	}
	for _, img := range info.CopyFromImages {
		add(img)
	}
	return images, nil
}

// buildahSelfArgs are the flags that reach kiln itself: over HTTPS its
// certificate as a trusted CA (--cert-dir adds to the system roots, so
// other registries still verify), over plain HTTP --tls-verify=false; and
// the login file, if any.
func buildahSelfArgs(job *build.Job, authFile string) []string {
	var args []string
	if job.Self.CertDir != "" {
		args = append(args, "--tls-verify=true", "--cert-dir", job.Self.CertDir)
	} else {
		args = append(args, "--tls-verify=false")
	}
	if authFile != "" {
		args = append(args, "--authfile", authFile)
	}
	return args
}

// withSelfAuth runs fn with kiln's internal builder login, for kiln's
// address only, as an --authfile (--creds would go to every registry the
// build pulls from), or with "" when there is no login. The file lives in
// a directory only this user can enter, on memory-backed /dev/shm when
// there is one, and is gone when fn returns: never while a build's
// command runs.
func withSelfAuth(job *build.Job, fn func(authFile string) error) error {
	if job.Self.Username == "" {
		return fn("")
	}
	parent := ""
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		parent = "/dev/shm"
	}
	dir, err := os.MkdirTemp(parent, "kiln-buildah-auth-*") // mode 0700
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	basic := base64.StdEncoding.EncodeToString([]byte(job.Self.Username + ":" + job.Self.Password))
	content, err := json.Marshal(map[string]any{"auths": map[string]any{job.Registry: map[string]string{"auth": basic}}})
	if err != nil {
		return err
	}
	file := filepath.Join(dir, "auth.json")
	if err := os.WriteFile(file, content, 0o600); err != nil {
		return err
	}
	return fn(file)
}
