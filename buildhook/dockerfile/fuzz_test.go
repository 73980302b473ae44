package dockerfile

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds the front end the shared corpus (testdata/corpus, which
// the native builder's FuzzBuild reads too) and what the fuzzer makes of
// it: no input may panic, and a result without an error is usable.
func FuzzParse(f *testing.F) {
	for _, s := range corpus(f, "testdata/corpus") {
		f.Add(s, "TAG", "3.9")
	}
	f.Fuzz(func(t *testing.T, content []byte, k, v string) {
		info, err := Parse(content, map[string]string{k: v})
		if errors.Is(err, ErrParserPanic) {
			t.Fatalf("the parser panicked on %q: %v", content, err)
		}
		if err != nil {
			if info != nil {
				t.Fatal("info with an error")
			}
			return
		}
		if len(info.Stages) == 0 {
			t.Fatal("no stages and no error")
		}
		for _, st := range info.Stages {
			if st.BaseName == "" {
				t.Fatal("blank base name")
			}
			// whatever the Dockerfile, LocalRef must not panic either
			LocalRef(st.BaseName, []string{"localhost:5000"})
		}
	})
}

// corpus reads the Dockerfiles of dir, the seeds of the fuzz targets.
func corpus(tb testing.TB, dir string) [][]byte {
	tb.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.Dockerfile"))
	if err != nil || len(paths) == 0 {
		tb.Fatalf("no seed corpus in %s: %v", dir, err)
	}
	var out [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}
