package buildhook

import (
	"context"
	"strconv"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"kiln/buildhook/build"
)

// sourceDateArg is the build argument reproducible tools read their
// timestamps from (reproducible-builds.org's SOURCE_DATE_EPOCH).
const sourceDateArg = "SOURCE_DATE_EPOCH"

// sourceDateEpoch is when a build's outputs are dated: the rule's
// SOURCE_DATE_EPOCH argument, else the final base image's creation time,
// so that the same inputs give the same timestamps. ok is false when
// neither is known (a base outside this registry, an undated base).
func sourceDateEpoch(ctx context.Context, job *build.Job) (epoch int64, ok bool) {
	if v, set := job.Rule.Args[sourceDateArg]; set {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return 0, false
		}
		return n, true
	}
	fb := job.Rule.FinalBase
	if fb == nil {
		return 0, false
	}
	ref, err := name.NewTag(job.Registry+"/"+fb.String(), name.Insecure)
	if err != nil {
		return 0, false
	}
	img, err := remote.Image(ref, build.RemoteOptions(ctx, job, nil, nil)...)
	if err != nil {
		return 0, false
	}
	if err := build.CheckConfigSize(fb.String(), img); err != nil {
		return 0, false
	}
	cf, err := img.ConfigFile()
	if err != nil || cf.Created.IsZero() || cf.Created.Unix() < 0 {
		return 0, false
	}
	return cf.Created.Unix(), true
}
