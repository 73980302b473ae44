package native

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"kiln/buildhook/build"
	"kiln/internal/imagetest"
)

// The finding: ONBUILD COPY . /loot/ in a pushed base copied a secrets
// file of the operator's context, which the Dockerfile never copies, into
// an image the attacker can pull. The triggers now run only for a rule
// with onbuild: true.
func TestOnbuildNeedsOptIn(t *testing.T) {
	t.Parallel()
	host := imagetest.Registry(t)
	base := imagetest.Base(t, imagetest.BaseOptions{Version: "3.8.1"})
	cf, _ := base.ConfigFile()
	cf = cf.DeepCopy()
	cf.Config.OnBuild = []string{"COPY . /loot/"}
	base, err := mutate.ConfigFile(base, cf)
	if err != nil {
		t.Fatal(err)
	}
	bd := imagetest.Push(t, host, "python:3.8", base)
	dir := imagetest.ContextDir(t, map[string]string{
		"Dockerfile":  "ARG REGISTRY\nFROM $REGISTRY/python:3.8\nCOPY app.txt /app/\n",
		"app.txt":     "app",
		"secrets.env": "API_KEY=hunter2\n",
	})
	looted := func(t *testing.T, onbuild bool) (bool, string) {
		job := imagetest.Job(host, dir, "o1", build.ImageRef{Repo: "python", Tag: "3.8"}, bd)
		job.Rule.OnBuild = onbuild
		d, log := imagetest.Build(t, &Builder{}, job)
		for _, l := range imagetest.Layers(t, imagetest.Pull(t, host, "app@"+d.String())) {
			if _, ok := layerFiles(t, l)["loot/secrets.env"]; ok {
				return true, log
			}
		}
		return false, log
	}
	if got, log := looted(t, false); got || !strings.Contains(log, `ignoring the base's ONBUILD trigger "COPY . /loot/"`) {
		t.Errorf("default: secrets copied %v\nlog:\n%s", got, log)
	}
	if got, log := looted(t, true); !got || !strings.Contains(log, "running ONBUILD COPY . /loot/") {
		t.Errorf("onbuild: true: triggers ran %v\nlog:\n%s", got, log)
	}
}

// The finding: ONBUILD COPY --from=127.0.0.1:PORT/x made kiln probe
// internal ports and the build log reported what answered. FROM and
// COPY --from now name only this registry or its mirrored upstreams;
// anything else is refused before any connection.
func TestForeignImagesRefused(t *testing.T) {
	t.Parallel()
	host := imagetest.Registry(t)
	var conns atomic.Int32
	const banner = "internal-service-banner"
	probe := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server", banner)
		http.Error(w, banner, http.StatusNotFound)
	}))
	probe.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	probe.Start()
	defer probe.Close()
	target := strings.TrimPrefix(probe.URL, "http://") + "/x:1"

	base := imagetest.Base(t, imagetest.BaseOptions{Version: "3.8.1"})
	cf, _ := base.ConfigFile()
	cf = cf.DeepCopy()
	cf.Config.OnBuild = []string{"COPY --from=" + target + " / /loot/"}
	trapped, err := mutate.ConfigFile(base, cf)
	if err != nil {
		t.Fatal(err)
	}
	imagetest.Push(t, host, "python:3.8", base)
	imagetest.Push(t, host, "trapped:1", trapped)

	for _, tc := range []struct{ name, dockerfile string }{
		{"COPY --from", "FROM $REGISTRY/python:3.8\nCOPY --from=" + target + " /etc/passwd /p\n"},
		{"FROM", "FROM " + target + "\nCOPY a /a\n"},
		{"FROM in a stage", "FROM " + target + " AS x\nFROM $REGISTRY/python:3.8\nCOPY --from=x /etc/passwd /p\n"},
		{"ONBUILD", "FROM $REGISTRY/trapped:1\nCOPY a /a\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := imagetest.ContextDir(t, map[string]string{"Dockerfile": "ARG REGISTRY\n" + tc.dockerfile, "a": "a"})
			job := imagetest.Job(host, dir, "f1", build.ImageRef{Repo: "python", Tag: "3.8"}, "")
			job.Rule.OnBuild = true // even a rule that trusts its bases' triggers
			log := &strings.Builder{}
			_, err := (&Builder{}).Build(context.Background(), job, log)
			t.Logf("err: %v", err)
			if n := conns.Load(); n != 0 {
				t.Errorf("%d connections reached %s", n, target)
			}
			if err == nil || !strings.Contains(err.Error(), "only pulls images of this registry or its mirrored upstreams") {
				t.Errorf("err = %v, want a refusal", err)
			}
			if err != nil && strings.Contains(err.Error()+log.String(), banner) {
				t.Errorf("the target's answer reached the error or log: %v\n%s", err, log)
			}
		})
	}
}
