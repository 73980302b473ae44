package ui

import (
	"fmt"
	"net/http/httptest"
	"testing"

	"kiln/storage"
)

// BenchmarkRepositories renders the front page of 1,000 repositories.
func BenchmarkRepositories(b *testing.B) {
	s := storage.NewInMemory(storage.Options{})
	for i := range 1000 {
		pushImage(b, s, fmt.Sprintf("team/service-%04d", i), "v1", nil)
	}
	h := newUI(s, nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
		b.SetBytes(int64(w.Body.Len()))
	}
}

// BenchmarkGraph renders the graph of 100 rules with 2,000 builds.
func BenchmarkGraph(b *testing.B) {
	var recs = records(2000, "chain3-step4")
	h := newUI(storage.NewInMemory(storage.Options{}), &fakeBuilds{rules: manyRules(), records: recs})
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/ui/graph", nil))
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
		b.SetBytes(int64(w.Body.Len()))
	}
}
