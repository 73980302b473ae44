package ui

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"kiln/storage"
)

// stores are the drivers the benchmarks render from.
func stores(b *testing.B) map[string]func() *storage.Store {
	return map[string]func() *storage.Store{
		"memory": func() *storage.Store { return storage.NewInMemory(storage.Options{}) },
		"filesystem": func() *storage.Store {
			s, err := storage.NewFilesystem(b.TempDir(), storage.Options{})
			if err != nil {
				b.Fatal(err)
			}
			return s
		},
	}
}

func benchPage(b *testing.B, h http.Handler, path string) {
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
		b.SetBytes(int64(w.Body.Len()))
	}
}

// BenchmarkRepositories renders the front page of 1,000 repositories.
func BenchmarkRepositories(b *testing.B) {
	for name, open := range stores(b) {
		b.Run(name, func(b *testing.B) {
			s := open()
			for i := range 1000 {
				pushImage(b, s, fmt.Sprintf("team/service-%04d", i), "v1", nil)
			}
			benchPage(b, newUI(s, nil), "/")
		})
	}
}

// BenchmarkRepository renders a page of 100 tags, each built on a base.
func BenchmarkRepository(b *testing.B) {
	for name, open := range stores(b) {
		b.Run(name, func(b *testing.B) {
			s := open()
			base := pushImage(b, s, "base", "1", nil)
			for i := range 100 {
				pushImage(b, s, "app", fmt.Sprintf("v%d", i), map[string]string{
					"org.opencontainers.image.base.name":   "kiln.test/base:1",
					"org.opencontainers.image.base.digest": base.String(),
				})
			}
			benchPage(b, newUI(s, nil), "/ui/repo?name=app")
		})
	}
}

// BenchmarkGraph renders the graph of 100 rules with 2,000 builds.
func BenchmarkGraph(b *testing.B) {
	h := newUI(storage.NewInMemory(storage.Options{}), &fakeBuilds{rules: manyRules(), records: records(2000, "chain3-step4")})
	benchPage(b, h, "/ui/graph")
}
