package buildhook

import (
	"reflect"
	"testing"

	"kiln/buildhook/build"
)

// Retention must keep what rules produce and build on, adopted images'
// included.
func TestProtectedTags(t *testing.T) {
	t.Parallel()
	g, err := NewGraph([]*build.Rule{
		rule("base", []string{"base:1"}, "python:3.12"),
		rule("app", []string{"app:1", "app:latest"}, "base:1", "tools:2"),
		autoRule(Adoption{Image: ref("team/img:v1"), Base: ref("team/base:3")}),
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range g.ProtectedTags() {
		got = append(got, r.String())
	}
	want := []string{"app:1", "app:latest", "base:1", "python:3.12", "team/base:3", "team/img:v1", "tools:2"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ProtectedTags = %v, want %v", got, want)
	}
}

func TestIsStagingTag(t *testing.T) {
	t.Parallel()
	if !IsStagingTag(stagingTagPrefix+"0123") || IsStagingTag("v1") || IsStagingTag("latest-"+stagingTagPrefix) {
		t.Fatal("IsStagingTag misjudges")
	}
}
