package ui

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"kiln/storage"
)

func TestRepositoriesPaged(t *testing.T) {
	t.Parallel()
	s := storage.NewInMemory(storage.Options{})
	for i := range 250 {
		pushImage(t, s, fmt.Sprintf("team/app%03d", i), "v1", nil)
	}
	pushImage(t, s, "team/app000", "v2", nil)
	h := newUI(s, nil)

	code, body := get(t, h, "/")
	if code != http.StatusOK {
		t.Fatalf("GET /: %d", code)
	}
	if n := strings.Count(body, `href="/ui/repo?name=`); n != perPage {
		t.Errorf("first page links %d repositories, want %d", n, perPage)
	}
	mustContain(t, body, "team/app000", "team/app099", `<td class="num">2</td>`, "Page 1 of 3", "250 repositories", `href="/?page=2"`)
	mustNotContain(t, body, "team/app100", "rel=\"prev\"")

	_, body = get(t, h, "/?page=3")
	mustContain(t, body, "team/app249", "Page 3 of 3", `href="/?page=2"`)
	mustNotContain(t, body, "team/app199", `rel="next"`)

	_, body = get(t, h, "/?q=app24")
	if n := strings.Count(body, `href="/ui/repo?name=`); n != 10 {
		t.Errorf("filter app24 shows %d repositories, want 10", n)
	}
	// Out of range pages show the last one, not an error.
	if code, body := get(t, h, "/?page=999"); code != 200 || !strings.Contains(body, "Page 3 of 3") {
		t.Errorf("page 999: %d", code)
	}
}

func TestRepositoryPage(t *testing.T) {
	t.Parallel()
	s := storage.NewInMemory(storage.Options{})
	baseDigest := pushImage(t, s, "base", "1", nil)
	appDigest := pushImage(t, s, "app", "latest", map[string]string{
		"org.opencontainers.image.base.name":   "127.0.0.1:5000/base:1",
		"org.opencontainers.image.base.digest": baseDigest.String(),
		"org.opencontainers.image.created":     "2026-02-03T04:05:06Z",
	})
	pushImage(t, s, "app", "plain", nil)
	h := newUI(s, nil)

	code, body := get(t, h, "/ui/repo?name=app")
	if code != 200 {
		t.Fatalf("GET repo: %d", code)
	}
	mustContain(t, body, "docker pull example.com/app:TAG", `id="tag-latest"`, shortDigest(appDigest), "linux/amd64", `href="/ui/repo?name=base#tag-1"`, "127.0.0.1:5000/base:1", shortDigest(baseDigest), "2026-02-03 04:05:06 UTC", "2026-01-02 03:04:05 UTC")
	mustNotContain(t, body, "base moved")

	// The base moves: the image was not rebuilt on it.
	pushImage(t, s, "base", "1", map[string]string{"new": "yes"})
	_, body = get(t, h, "/ui/repo?name=app")
	if n := strings.Count(body, ">base moved<"); n != 1 {
		t.Errorf("%d base moved badges, want 1 (for latest only)", n)
	}

	for _, name := range []string{"nope", "", "../../etc", "UPPER"} {
		if code, _ := get(t, h, "/ui/repo?name="+name); code != http.StatusNotFound {
			t.Errorf("repository %q: %d, want 404", name, code)
		}
	}
}

// Annotations are whatever a client pushed: they are shown as text, never
// as markup, and only a base that is a tag here becomes a link.
func TestRepositoryHostileAnnotations(t *testing.T) {
	t.Parallel()
	s := storage.NewInMemory(storage.Options{})
	hostile := []string{
		`"><script>alert(1)</script>`,
		`javascript:alert(1)//x:1`,
		`x" onmouseover="alert(1)`,
		`127.0.0.1/../../v2/x:1`,
	}
	for i, name := range hostile {
		pushImage(t, s, "evil", fmt.Sprintf("t%d", i), map[string]string{
			"org.opencontainers.image.base.name":   name,
			"org.opencontainers.image.base.digest": `sha256:<b>not a digest</b>`,
			"org.opencontainers.image.created":     `<i>`,
		})
	}
	_, body := get(t, newUI(s, nil), "/ui/repo?name=evil")
	mustContain(t, body, "&lt;script&gt;alert(1)&lt;/script&gt;", "x&#34; onmouseover=&#34;alert(1)")
	mustNotContain(t, body, "<script>alert", `onmouseover="alert`, `href="javascript:`, "<b>not a digest", "<i>")
	if n := strings.Count(body, `href="/ui/repo?name=`); n != 0 {
		t.Errorf("%d links to bases that are not here", n)
	}
}
