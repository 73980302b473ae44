package main

import (
	"bytes"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"kiln/registry"
	"kiln/storage"
)

func TestReposAndTagsLs(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(registry.New(storage.NewInMemory(storage.Options{}), registry.Options{}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	img, _ := random.Image(256, 1)
	var want []string
	for i := range 3 {
		for _, tag := range []string{"v1", "v2"} {
			ref, _ := name.ParseReference(fmt.Sprintf("%s/team/app%d:%s", host, i, tag), name.Insecure)
			if err := remote.Write(ref, img); err != nil {
				t.Fatal(err)
			}
		}
		want = append(want, fmt.Sprintf("team/app%d", i))
	}
	run := func(args ...string) string {
		t.Helper()
		root := newRootCmd()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetArgs(append(args, "--server", srv.URL))
		if err := root.Execute(); err != nil {
			t.Fatalf("kiln %v: %v", args, err)
		}
		return out.String()
	}
	if got := run("repos", "ls"); got != strings.Join(want, "\n")+"\n" {
		t.Errorf("repos ls:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	if got := run("tags", "ls", "team/app1"); got != "v1\nv2\n" {
		t.Errorf("tags ls team/app1: %q", got)
	}
}
