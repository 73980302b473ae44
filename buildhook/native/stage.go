package native

import (
	"fmt"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"

	"kiln/buildhook/build"
	"kiln/buildhook/dockerfile"
)

type targetSet struct {
	index     bool
	indexType types.MediaType
	platforms []v1.Platform
}

// targets decides what to build: every platform of the final stage's base
// when it is an index, else the one platform of its base.
func (br *buildRun) targets() (targetSet, error) {
	global, err := br.globalArgs(hostPlatform())
	if err != nil {
		return targetSet{}, err
	}
	i := len(br.stages) - 1
	for {
		st := br.stages[i]
		if st.Platform != "" {
			p, err := br.stagePlatform(st, global)
			if err != nil {
				return targetSet{}, err
			}
			return targetSet{platforms: []v1.Platform{p}}, nil
		}
		base, _, err := br.shlex.ProcessWord(st.BaseName, shell.EnvsFromSlice(global))
		if err != nil {
			return targetSet{}, fmt.Errorf("Dockerfile line %d: %w", dockerfile.Line(st.Location), err)
		}
		if j := br.stageRef(base, i); j >= 0 {
			i = j
			continue
		}
		if strings.EqualFold(base, "scratch") {
			return targetSet{platforms: []v1.Platform{hostPlatform()}}, nil
		}
		desc, err := br.descriptor(base)
		if err != nil {
			return targetSet{}, err
		}
		if !desc.MediaType.IsIndex() {
			img, err := desc.Image()
			if err != nil {
				return targetSet{}, build.RegistryTransient(err)
			}
			if err := build.CheckConfigSize(base, img); err != nil {
				return targetSet{}, err
			}
			cf, err := img.ConfigFile()
			if err != nil {
				return targetSet{}, build.RegistryTransient(err)
			}
			p := v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant, OSVersion: cf.OSVersion}
			if p.OS == "" {
				p = hostPlatform()
			}
			return targetSet{platforms: []v1.Platform{p}}, nil
		}
		idx, err := desc.ImageIndex()
		if err != nil {
			return targetSet{}, build.RegistryTransient(err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return targetSet{}, build.RegistryTransient(err)
		}
		t := targetSet{index: true, indexType: desc.MediaType}
		for _, m := range im.Manifests {
			if !build.IsImageType(m.MediaType) || m.Platform == nil || m.Platform.OS == "unknown" {
				continue
			}
			if slices.ContainsFunc(t.platforms, func(p v1.Platform) bool { return p.Equals(*m.Platform) }) {
				continue
			}
			t.platforms = append(t.platforms, *m.Platform)
		}
		if len(t.platforms) == 0 {
			return targetSet{}, fmt.Errorf("%s: the index has no platform images", base)
		}
		return t, nil
	}
}

func (br *buildRun) stagePlatform(st instructions.Stage, global []string) (v1.Platform, error) {
	s, _, err := br.shlex.ProcessWord(st.Platform, shell.EnvsFromSlice(global))
	if err != nil {
		return v1.Platform{}, fmt.Errorf("Dockerfile line %d: %w", dockerfile.Line(st.Location), err)
	}
	p, err := v1.ParsePlatform(s)
	if err != nil {
		return v1.Platform{}, fmt.Errorf("Dockerfile line %d: --platform=%s: %w", dockerfile.Line(st.Location), s, err)
	}
	return *p, nil
}

// stage is a stage being built for one platform.
type stage struct {
	b        *buildRun
	index    int
	name     string
	platform v1.Platform
	base     v1.Image
	layerMT  types.MediaType
	cf       *v1.ConfigFile // only Config, Author and platform fields are used
	created  time.Time
	adds     []mutate.Addendum
	env      []string // what ${} sees: the image's Env and the stage's ARGs
	cmdSet   bool

	viewFn func() (*fsView, error)
	view   *fsView

	img v1.Image
}

func (st *stage) fs() (*fsView, error) {
	if st.view == nil {
		v, err := st.viewFn()
		if err != nil {
			return nil, err
		}
		st.view = v
	}
	return st.view, nil
}

func (st *stage) history(createdBy string, layer v1.Layer) {
	st.adds = append(st.adds, mutate.Addendum{Layer: layer, History: v1.History{
		Created:    v1.Time{Time: st.created},
		CreatedBy:  createdBy,
		Comment:    historyComment,
		EmptyLayer: layer == nil,
	}})
}

// finish makes the stage's image: the base, the added layers and history,
// and the config built.
func (st *stage) finish() error {
	img, err := mutate.Append(st.base, st.adds...)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.Config = st.cf.Config
	cf.Author = st.cf.Author
	cf.OS, cf.Architecture, cf.Variant, cf.OSVersion = st.cf.OS, st.cf.Architecture, st.cf.Variant, st.cf.OSVersion
	cf.Created = v1.Time{Time: st.created}
	st.img, err = mutate.ConfigFile(img, cf)
	return err
}

// run builds the last stage for one platform.
func (br *buildRun) run(target v1.Platform, prefix string) (v1.Image, error) {
	file, err := dockerfile.Read(br.dockerfile)
	if err != nil {
		return nil, err
	}
	br.file, br.stages = file, file.Stages
	global, reach, err := br.reachableFor(target)
	if err != nil {
		return nil, err
	}
	br.prefix, br.step, br.steps = prefix, 0, 0
	for i, st := range br.stages {
		if reach[i] {
			br.steps += 1 + len(st.Commands)
		}
	}
	stages := make([]*stage, len(br.stages))
	for i := range br.stages {
		if !reach[i] {
			continue
		}
		st, err := br.from(i, global, target, stages)
		if err != nil {
			return nil, err
		}
		for _, c := range br.stages[i].Commands {
			if err := br.ctx.Err(); err != nil {
				return nil, err
			}
			br.logStep(commandText(c))
			if err := br.dispatch(st, c, global, stages); err != nil {
				return nil, fmt.Errorf("Dockerfile line %d: %w", dockerfile.Line(c.Location()), err)
			}
		}
		if err := st.finish(); err != nil {
			return nil, err
		}
		stages[i] = st
	}
	return stages[len(stages)-1].img, nil
}

func (br *buildRun) logStep(text string) {
	br.step++
	fmt.Fprintf(br.log, "%sstep %d/%d: %s\n", br.prefix, br.step, br.steps, text)
}

// from starts stage i: from an earlier stage, scratch or an image.
func (br *buildRun) from(i int, global []string, target v1.Platform, stages []*stage) (*stage, error) {
	ds := br.stages[i]
	line := dockerfile.Line(ds.Location)
	br.logStep(ds.SourceCode)
	baseName, _, err := br.shlex.ProcessWord(ds.BaseName, shell.EnvsFromSlice(global))
	if err != nil {
		return nil, fmt.Errorf("Dockerfile line %d: %w", line, err)
	}
	if baseName == "" {
		return nil, fmt.Errorf("Dockerfile line %d: base name (%s) should not be blank", line, ds.BaseName)
	}
	platform := target
	if ds.Platform != "" {
		if platform, err = br.stagePlatform(ds, global); err != nil {
			return nil, err
		}
	}
	st := &stage{b: br, index: i, name: ds.Name, platform: platform}

	if j := br.stageRef(baseName, i); j >= 0 {
		parent := stages[j]
		st.base = parent.img
		st.layerMT = parent.layerMT
		st.cf = parent.cf.DeepCopy()
		st.cf.Config = *parent.cf.Config.DeepCopy()
		st.cf.Config.OnBuild = nil
		st.created = parent.created
		st.env = slices.Clone(parent.env)
		st.viewFn = func() (*fsView, error) {
			v, err := parent.fs()
			if err != nil {
				return nil, err
			}
			return v.clone(), nil
		}
		return st, nil
	}

	if strings.EqualFold(baseName, "scratch") {
		st.base = mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
		st.layerMT = types.OCILayer
		st.cf = &v1.ConfigFile{OS: platform.OS, Architecture: platform.Architecture, Variant: platform.Variant, OSVersion: platform.OSVersion}
		st.cf.Config.WorkingDir = "/"
		if platform.OS != "windows" {
			st.cf.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
		}
		st.created = time.Unix(0, 0).UTC()
	} else {
		img, err := br.image(baseName, platform)
		if err != nil {
			return nil, fmt.Errorf("Dockerfile line %d: %w", line, err)
		}
		d, err := img.Digest()
		if err != nil {
			return nil, build.RegistryTransient(err)
		}
		fmt.Fprintf(br.log, "%s  %s is %s\n", br.prefix, baseName, d)
		mt, err := img.MediaType()
		if err != nil {
			return nil, build.RegistryTransient(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, build.RegistryTransient(err)
		}
		st.base = img
		st.layerMT = types.OCILayer
		if mt == types.DockerManifestSchema2 {
			st.layerMT = types.DockerLayer
		}
		st.cf = cf.DeepCopy()
		st.created = cf.Created.Time
		if st.created.IsZero() {
			st.created = time.Unix(0, 0).UTC()
		}
		st.viewFn = func() (*fsView, error) {
			b, err := br.base(img)
			if err != nil {
				return nil, err
			}
			return &fsView{base: b, over: map[string]*fsNode{}}, nil
		}
	}
	if st.viewFn == nil {
		st.viewFn = func() (*fsView, error) { return &fsView{over: map[string]*fsNode{}}, nil }
	}
	if br.epoch != nil {
		st.created = *br.epoch
	}
	st.env = slices.Clone(st.cf.Config.Env)

	// ONBUILD triggers of the base run first, then are dropped. They are
	// whoever pushed the base, acting on this rule's context: only a rule
	// that says it trusts its bases runs them.
	triggers := st.cf.Config.OnBuild
	st.cf.Config.OnBuild = nil
	if !br.job.Rule.OnBuild {
		for _, t := range triggers {
			fmt.Fprintf(br.log, "%s  ignoring the base's ONBUILD trigger %q (the rule does not set onbuild: true)\n", br.prefix, t)
		}
		triggers = nil
	}
	for _, t := range triggers {
		c, err := dockerfile.ReadInstruction(t)
		if err != nil {
			return nil, fmt.Errorf("Dockerfile line %d: ONBUILD trigger %q of the base: %w", line, t, err)
		}
		fmt.Fprintf(br.log, "%s  running ONBUILD %s\n", br.prefix, t)
		if _, ok := c.(*instructions.RunCommand); ok {
			return nil, fmt.Errorf("Dockerfile line %d: the base's ONBUILD trigger %q runs a command; use builder docker or buildah", line, t)
		}
		if err := br.dispatch(st, c, global, stages); err != nil {
			return nil, fmt.Errorf("Dockerfile line %d: ONBUILD %s: %w", line, t, err)
		}
	}
	return st, nil
}
