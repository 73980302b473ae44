package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// uiWindow is the rules' coalescing window: a triggered build stays
// queued this long, so the browser is on the build's page before its log
// starts, and a moved base is seen before its rebuild.
const uiWindow = 8 * time.Second

// startUIKiln starts kiln on port 0 with a chain of native builds:
// python:3.8 (pushed) -> app -> app-tests. The rules name the base by
// registry.hostnames, so the config needs no port.
func startUIKiln(t *testing.T) *buildKilnEnv {
	t.Helper()
	bin, err := buildKiln()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, files := range map[string]map[string]string{
		"app":       {"Dockerfile": "FROM kiln.test/python:3.8\nENV APP=ui\nCOPY app.py /app/app.py\nCMD [\"/bin/sh\"]\n", "app.py": "print('ui')\n"},
		"app-tests": {"Dockerfile": "FROM kiln.test/app:v1\nCOPY test.py /app/test.py\n", "test.py": "print('test')\n"},
	} {
		os.MkdirAll(filepath.Join(dir, name), 0o755)
		for f, content := range files {
			os.WriteFile(filepath.Join(dir, name, f), []byte(content), 0o644)
		}
	}
	cfg := fmt.Sprintf(`storage:
  filesystem:
    root: ./data
registry:
  hostnames: [kiln.test]
buildhook:
  window: %s
  work_dir: ./work
builds:
  - name: app
    context: ./app
    tags: [app:v1]
    builder: native
  - name: app-tests
    context: ./app-tests
    tags: [app-tests:v1]
    builder: native
`, uiWindow)
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	srv, err := launchKiln(bin, "ui", dir, "kiln.log", nil, "", "--config", "config.yml")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.stop(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			srv.printTail(os.Stdout, 120)
		}
	})
	return &buildKilnEnv{srv: srv, addr: srv.env.Addr, dir: dir}
}

// browser starts headless Debian chromium, installed if missing. It runs
// with --no-sandbox only as root: chromium refuses to start its sandbox
// for root. It resolves no host names, so it reaches nothing but the
// loopback address it is sent to.
func browser(t *testing.T) context.Context {
	t.Helper()
	chromium := ensureTool(t, "chromium", "chromium")
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(chromium),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
		chromedp.Flag("no-proxy-server", true),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser, with no deadline
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// do runs browser steps with a deadline.
func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

// value runs one browser action and returns its value.
func value[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// mainText is the text of the page's main element.
func mainText(t *testing.T, ctx context.Context) string {
	t.Helper()
	return value(t, ctx, chromedp.Text(chromedp.CSS("main")))
}

// waitJS waits until the JavaScript expression is true.
func waitJS(t *testing.T, ctx context.Context, timeout time.Duration, what, expr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(timeout))); err != nil {
		t.Fatalf("waiting for %s (%s): %v\npage: %s", what, expr, err, tail(mainText(t, context.WithoutCancel(ctx)), 40))
	}
}

func TestUIInBrowser(t *testing.T) {
	needSetup(t)
	e := startUIKiln(t)
	ctx := browser(t)
	base := "http://" + e.addr

	e.pushBase(t, "3.8.1")
	e.waitBuilds(t, 2)

	// Each page's size and server time, as the note reports them.
	for _, p := range []string{"/", "/ui/repo?name=app", "/ui/builds", "/ui/graph", "/ui/storage"} {
		start := time.Now()
		resp, body := doHTTP(t, "GET", base+p, nil, nil)
		took := time.Since(start)
		if resp.StatusCode != 200 || len(body) > 1<<20 {
			t.Errorf("GET %s: %s, %d bytes (at most 1 MiB)", p, resp.Status, len(body))
		}
		t.Logf("GET %s: %d bytes in %s", p, len(body), took)
	}

	// The pages load and show the chain's repositories.
	start := time.Now()
	do(t, ctx, chromedp.Navigate(base+"/"))
	t.Logf("front page loaded in the browser in %s", time.Since(start))
	text := mainText(t, ctx)
	for _, repo := range []string{"python", "app", "app-tests"} {
		if !strings.Contains(text, repo) {
			t.Errorf("the repositories page lacks %s:\n%s", repo, text)
		}
	}
	do(t, ctx, chromedp.Navigate(base+"/ui/repo?name=app"))
	text = mainText(t, ctx)
	for _, want := range []string{"v1", "linux/amd64", "/python:3.8"} {
		if !strings.Contains(text, want) {
			t.Errorf("the app repository page lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "base moved") {
		t.Errorf("app was just built on its base, yet the page says the base moved:\n%s", text)
	}

	// The graph: python:3.8 -> app -> app-tests, each rule built once.
	do(t, ctx, chromedp.Navigate(base+"/ui/graph"))
	names := value(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("svg .node")].map(n => n.dataset.name + "=" + n.getAttribute("class"))`))
	edges := value(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll("svg .edge").length`))
	slices.Sort(names)
	want := []string{"app-tests=node rule st-succeeded", "app=node rule st-succeeded", "python:3.8=node image"}
	if !slices.Equal(names, want) || edges != 2 {
		t.Errorf("graph nodes %q with %d edges, want %q with 2", names, edges, want)
	}

	// Trigger: the page opens the build and its log lines arrive while it
	// runs. The observer notes the status shown when log text first came.
	do(t, ctx, chromedp.Navigate(base+"/ui/builds?rule=app"),
		chromedp.Click(chromedp.CSS(`button[data-trigger="app"][data-force]`)),
		chromedp.WaitVisible(chromedp.CSS(`#log`)))
	value(t, ctx, chromedp.Evaluate[bool](`window.firstLog = null;
		new MutationObserver(() => {
			const log = document.getElementById("log").textContent;
			if (window.firstLog === null && log.length > 0) window.firstLog = document.getElementById("status").textContent;
		}).observe(document.getElementById("log"), {childList: true, characterData: true, subtree: true}); true`))
	waitJS(t, ctx, 2*time.Minute, "the build's log, then its end",
		`document.getElementById("status").textContent === "succeeded" && document.getElementById("log").textContent.includes("step 1/")`)
	firstLog := value(t, ctx, chromedp.Evaluate[string](`String(window.firstLog)`))
	if firstLog != "queued" && firstLog != "running" {
		t.Errorf("the log appeared when the page said %q: not live", firstLog)
	}
	text = value(t, ctx, chromedp.Text(chromedp.ID("log")))
	for _, line := range []string{"of rule app (manual", "COPY app.py"} {
		if !strings.Contains(text, line) {
			t.Errorf("the log lacks %q:\n%s", line, text)
		}
	}
	e.waitBuilds(t, 3)

	// GC's dry run from its button shows the report and removes nothing.
	do(t, ctx, chromedp.Navigate(base+"/ui/storage"), chromedp.Click(chromedp.CSS(`button[data-gc="dry"]`)))
	waitJS(t, ctx, time.Minute, "the dry run's report", `!document.getElementById("gc-report").hidden`)
	if report := value(t, ctx, chromedp.Text(chromedp.ID("gc-report"))); !strings.Contains(report, `"dryRun": true`) {
		t.Errorf("the dry run's report:\n%s", report)
	}

	// A new base: the badge shows until app is rebuilt on it (the window
	// keeps the rebuild queued), then goes.
	e.pushBase(t, "3.8.2")
	pushed := time.Now()
	do(t, ctx, chromedp.Navigate(base+"/ui/repo?name=app"))
	text = mainText(t, ctx)
	if !strings.Contains(text, "base moved") {
		if time.Since(pushed) > uiWindow {
			t.Fatalf("the page took longer than the window (%s) to load: the rebuild may have run already", uiWindow)
		}
		t.Errorf("no base moved badge after the base moved:\n%s", text)
	}
	e.waitBuilds(t, 5)
	do(t, ctx, chromedp.Reload())
	if text = mainText(t, ctx); strings.Contains(text, "base moved") {
		t.Errorf("base moved badge after the rebuild:\n%s", text)
	}
}
