package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// storageArgs are the global flags that give buildah/podman a private
// container storage under dir.
func storageArgs(dir string) []string {
	return []string{
		"--root", filepath.Join(dir, "root"),
		"--runroot", filepath.Join(dir, "runroot"),
		"--storage-driver", "vfs",
	}
}

// TestBuildah builds a busybox image from scratch with buildah, pushes it in
// OCI and Docker formats and verifies every blob the registry serves; podman
// then pulls it back and pushes it to another repository.
func TestBuildah(t *testing.T) {
	reg := needRegistry(t)
	busybox := staticBusybox(t)
	ensureTool(t, "buildah", "buildah")

	dir := t.TempDir()
	// A private, empty credentials file: no credentials of the machine's.
	if err := os.WriteFile(filepath.Join(dir, "auth.json"), []byte(`{"auths":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"BUILDAH_ISOLATION=chroot", "STORAGE_DRIVER=vfs", "REGISTRY_AUTH_FILE=" + filepath.Join(dir, "auth.json")}
	buildah := func(args ...string) string {
		t.Helper()
		return strings.TrimSpace(mustRun(t, cmdOpts{Env: env, Timeout: 5 * time.Minute}, "buildah",
			append(storageArgs(filepath.Join(dir, "buildah")), args...)...))
	}

	ctr := buildah("from", "--isolation", "chroot", "scratch")
	buildah("copy", ctr, busybox, "/bin/busybox")
	buildah("config", "--cmd", `["/bin/busybox","echo","hello"]`, "--os", "linux", ctr)
	local := "localhost/kiln-e2e-" + reg.RunID
	buildah("commit", ctr, local)

	repo := reg.Repo("buildah", "img")
	type pushed struct{ tag, format, digest, mediaType string }
	var pushes []pushed
	for _, p := range []struct{ tag, format, mediaType string }{
		{"v1", "oci", "application/vnd.oci.image.manifest.v1+json"},
		{"v1-docker", "v2s2", "application/vnd.docker.distribution.manifest.v2+json"},
	} {
		digestFile := filepath.Join(dir, "digest-"+p.tag)
		buildah("push", "--tls-verify=false", "--format", p.format, "--digestfile", digestFile,
			local, "docker://"+reg.Addr+"/"+repo+":"+p.tag)
		b, err := os.ReadFile(digestFile)
		if err != nil {
			t.Fatalf("buildah push wrote no digest file: %v", err)
		}
		pushes = append(pushes, pushed{p.tag, p.format, strings.TrimSpace(string(b)), p.mediaType})
	}

	for _, p := range pushes {
		body, dig, ct := getManifest(t, reg, repo, p.tag)
		if dig != p.digest {
			t.Errorf("%s:%s: registry's Docker-Content-Digest %s, buildah pushed %s", repo, p.tag, dig, p.digest)
		}
		if ct != p.mediaType {
			t.Errorf("%s:%s (--format %s): Content-Type %q, want %q", repo, p.tag, p.format, ct, p.mediaType)
		}
		var m manifestDoc
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("%s:%s: %v", repo, p.tag, err)
		}
		if m.Config == nil || len(m.Layers) != 1 {
			t.Errorf("%s:%s: want a config and one layer, got %s", repo, p.tag, body)
		}
		if got := checkManifestTree(t, reg, repo, p.digest); got != p.digest {
			t.Errorf("%s@%s: registry says %s", repo, p.digest, got)
		}
		// The config must be the image's: linux, the command we set.
		resp, cfg := doHTTP(t, "GET", reg.URL+"/v2/"+repo+"/blobs/"+m.Config.Digest, nil, nil)
		var c struct {
			OS     string `json:"os"`
			Config struct {
				Cmd []string `json:"Cmd"`
			} `json:"config"`
		}
		if resp.StatusCode != 200 || json.Unmarshal(cfg, &c) != nil {
			t.Errorf("config blob %s: %s %q", m.Config.Digest, resp.Status, cfg)
		} else if c.OS != "linux" || strings.Join(c.Config.Cmd, " ") != "/bin/busybox echo hello" {
			t.Errorf("config blob %s: os %q cmd %q", m.Config.Digest, c.OS, c.Config.Cmd)
		}
	}

	t.Run("podman", func(t *testing.T) {
		podmanPullPush(t, reg, repo+":v1", pushes[0].digest, env)
	})
}
