package buildhook

import (
	"context"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/validate"

	"kiln/buildhook/build"
	"kiln/buildhook/native"
	"kiln/internal/imagetest"
)

// A build made in kiln's process goes to its tags without a staging tag,
// as the same image or index the staging route gives, complete in every
// repository a tag names.
func TestFinalizeOutputSkipsStaging(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		index bool
	}{{"image", false}, {"index", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			host := imagetest.Registry(t)
			amd := imagetest.Base(t, imagetest.BaseOptions{Arch: "amd64", Version: "3.8.1"})
			var bd = imagetest.Push(t, host, "python:3.8", amd)
			if tc.index {
				arm := imagetest.Base(t, imagetest.BaseOptions{Arch: "arm64", Version: "3.8.1"})
				bd = imagetest.Push(t, host, "python:3.8", imagetest.Index(t, amd, arm))
			}
			dir := imagetest.ContextDir(t, map[string]string{"Dockerfile": appDockerfile, "app.py": "x"})
			base := build.ImageRef{Repo: "python", Tag: "3.8"}
			other := build.ImageRef{Repo: "team/app", Tag: "v1"}

			job := imagetest.Job(host, dir, "direct", base, bd)
			job.Rule.Tags = append(job.Rule.Tags, other)
			out, err := (&native.Builder{}).BuildOutput(context.Background(), job, nil)
			if err != nil {
				t.Fatal(err)
			}
			if (out.Index != nil) != tc.index {
				t.Fatalf("output index %v, want %v", out.Index != nil, tc.index)
			}
			pvtStagingGone(t, host, job)
			final, err := Finalize(context.Background(), job, out, bd, testInputs, nil)
			if err != nil {
				t.Fatal(err)
			}
			pvtStagingGone(t, host, job)

			staged := imagetest.Job(host, dir, "staged", base, bd)
			imagetest.Build(t, &native.Builder{}, staged)
			want, err := Finalize(context.Background(), staged, nil, bd, testInputs, nil)
			if err != nil {
				t.Fatal(err)
			}
			if final != want {
				t.Errorf("finalized output %s, the staging route gives %s", final, want)
			}
			for _, tag := range []string{"app:v1", other.String()} {
				desc := imagetest.Get(t, host, tag)
				if desc.Digest.String() != final.String() {
					t.Errorf("%s is %s, want %s", tag, desc.Digest, final)
				}
				// validate reads every blob: all are in the tag's repository.
				if tc.index {
					idx, err := desc.ImageIndex()
					if err == nil {
						err = validate.Index(idx)
					}
					if err != nil {
						t.Errorf("%s: %v", tag, err)
					}
				} else {
					img, err := desc.Image()
					if err == nil {
						err = validate.Image(img)
					}
					if err != nil {
						t.Errorf("%s: %v", tag, err)
					}
				}
			}
		})
	}
}
