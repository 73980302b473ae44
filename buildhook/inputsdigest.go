package buildhook

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"kiln/buildhook/build"
	"kiln/buildhook/dockerfile"
)

// inputsVersion changes when the same inputs would build something else
// (a builder's output changed): older builds then never count as
// unchanged.
const inputsVersion = "kiln-build-inputs/1"

// errUnchanged ends a build whose inputs equal those of the rule's last
// successful build, whose image the rule's tags still name.
var errUnchanged = errors.New("unchanged")

// inputsDigest is a digest of everything a build of job reads: what each
// image the Dockerfile names resolves to now, the Dockerfile and its
// context (paths, modes, link targets, contents), the arguments, builder,
// strategy, network and onbuild setting. Equal digests build the same
// image. An adopted image has none: autorebase decides for itself.
func (s *Service) inputsDigest(ctx context.Context, job *build.Job) (digest.Digest, error) {
	r := job.Rule
	if r.Auto {
		return "", nil
	}
	h := sha256.New()
	field := func(k, v string) { fmt.Fprintf(h, "%s %q\n", k, v) }
	field("version", inputsVersion)
	field("builder", r.Builder)
	field("strategy", r.Strategy)
	field("network", r.Network)
	field("onbuild", fmt.Sprint(r.OnBuild))
	field("dockerfile", r.Dockerfile)
	for _, k := range slices.Sorted(maps.Keys(r.Args)) {
		field("arg "+k, r.Args[k])
	}

	content, err := os.ReadFile(filepath.Join(r.Context, r.Dockerfile))
	if err != nil {
		return "", err
	}
	info, err := dockerfile.Parse(content, r.Args)
	if err != nil {
		return "", err
	}
	images := slices.Clone(info.CopyFromImages)
	for _, st := range info.Stages {
		if !st.FromStage && !strings.EqualFold(st.BaseName, "scratch") {
			images = append(images, st.BaseName)
		}
	}
	opts := build.RemoteOptions(ctx, job, nil, nil)
	for _, img := range images {
		ref, err := s.throughKiln(job, img)
		if err != nil {
			return "", err
		}
		desc, err := remote.Head(ref, opts...)
		if err != nil {
			return "", fmt.Errorf("resolving %s: %w", img, err)
		}
		field("image "+img, desc.Digest.String())
	}
	if err := hashTree(h, r.Context); err != nil {
		return "", err
	}
	return digest.NewDigest(digest.SHA256, h), nil
}

// hashTree writes every entry under dir to h, in lexical order: its path,
// kind and permissions, a link's target, a file's size and contents.
func hashTree(h io.Writer, dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "entry %q %s\n", filepath.ToSlash(rel), fi.Mode())
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "link %q\n", target)
		case fi.Mode().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			fh := sha256.New()
			n, err := io.Copy(fh, f)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "file %d %x\n", n, fh.Sum(nil))
		}
		return nil
	})
}

// unchangedSince returns the rule's last successful build if its inputs
// were inputs and every tag of the rule still names its image: building
// again would move nothing.
func (s *Service) unchangedSince(ctx context.Context, job *build.Job, inputs digest.Digest) (*Record, error) {
	last, _, err := s.records.Find(ctx, Query{Rule: job.Rule.Name, Status: StatusSucceeded, Limit: 1})
	if err != nil || len(last) == 0 {
		return nil, err
	}
	prev := last[0]
	if prev.Inputs != inputs || prev.Result == "" {
		return nil, nil
	}
	for _, t := range job.Rule.Tags {
		d, err := s.opts.Store.ResolveTag(ctx, t.Repo, t.Tag)
		if err != nil || d != prev.Result {
			return nil, nil // moved by hand, or deleted: build it again
		}
	}
	return prev, nil
}
