package buildhook

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/moby/patternmatcher"
	"github.com/opencontainers/go-digest"
)

// NativeBuilder builds Dockerfiles that run no commands in-process, with
// go-containerregistry: it starts from the base image's config and layers,
// applies ARG, ENV, LABEL, WORKDIR, COPY, ADD (local files), USER, EXPOSE,
// VOLUME, ENTRYPOINT, CMD, SHELL, STOPSIGNAL, HEALTHCHECK and ONBUILD, one
// layer per COPY, and pushes the result to the job's staging tag. A base
// that is an index gives an index with the same platforms.
//
// Builds are reproducible: the same Dockerfile, context, arguments and
// bases give the same digest. Files get mtime SOURCE_DATE_EPOCH (a build
// argument) or the Unix epoch, and owner 0:0 unless --chown; the image's
// created time is SOURCE_DATE_EPOCH or the base image's.
//
// The zero value is ready to use; a NativeBuilder may run several builds
// at once and shares what it read of base layers between them.
type NativeBuilder struct {
	// Hosts are the names under which clients reach this registry
	// (RegistryHosts): a FROM naming one is pulled from Job.Registry.
	// Names equal to Job.Registry, and localhost, 127.0.0.1 and [::1]
	// with Job.Registry's port, always are. When Hosts is empty, a FROM
	// whose repository and tag are one of the rule's Bases is too.
	Hosts []string
	// Upstreams are the registries kiln mirrors (e.g. docker.io): a FROM
	// naming one is pulled through kiln's cache, where the tag watcher
	// keeps it current, as <upstream>/<repo>.
	Upstreams []string
	// Keychain authenticates pulls from other registries; nil means
	// anonymous.
	Keychain authn.Keychain
	// Transport for registry calls; nil means remote.DefaultTransport.
	Transport http.RoundTripper

	layers nfsLayerCache
}

// Name is "native".
func (b *NativeBuilder) Name() string { return "native" }

// nativeHistoryComment marks the history entries the native builder adds.
const nativeHistoryComment = "kiln.native.v0"

// Build builds job.Rule and pushes the result to job.Staging.
func (b *NativeBuilder) Build(ctx context.Context, job *Job, log io.Writer) (digest.Digest, error) {
	if log == nil {
		log = io.Discard
	}
	nb, err := b.start(ctx, job, log)
	if err != nil {
		return "", err
	}
	defer nb.close()

	tg, err := nb.targets()
	if err != nil {
		return "", err
	}
	staging, err := name.NewTag(job.Registry+"/"+job.Staging.String(), name.Insecure)
	if err != nil {
		return "", fmt.Errorf("staging tag: %w", err)
	}
	if !tg.index {
		img, err := nb.run(tg.platforms[0], "")
		if err != nil {
			return "", err
		}
		d, err := img.Digest()
		if err != nil {
			return "", err
		}
		if err := remote.Write(staging, img, nb.remoteOpts...); err != nil {
			return "", regTransient(fmt.Errorf("pushing %s: %w", staging, err))
		}
		fmt.Fprintf(log, "pushed %s@%s\n", staging, d)
		return digest.Digest(d.String()), nil
	}

	var adds []mutate.IndexAddendum
	for _, p := range tg.platforms {
		img, err := nb.run(p, "["+ncPlatformString(p)+"] ")
		if err != nil {
			return "", err
		}
		desc := v1.Descriptor{Platform: &p}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: desc})
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, tg.indexType), adds...)
	d, err := idx.Digest()
	if err != nil {
		return "", err
	}
	if err := remote.WriteIndex(staging, idx, nb.remoteOpts...); err != nil {
		return "", regTransient(fmt.Errorf("pushing %s: %w", staging, err))
	}
	fmt.Fprintf(log, "pushed %s@%s (index of %d platforms)\n", staging, d, len(adds))
	return digest.Digest(d.String()), nil
}

// nativeBuild is one run of the native builder.
type nativeBuild struct {
	b          *NativeBuilder
	ctx        context.Context
	job        *Job
	log        io.Writer
	remoteOpts []remote.Option

	dockerfile []byte
	stages     []instructions.Stage // expanding changes them: parsed again for each platform
	metaArgs   []instructions.ArgCommand
	shlex      *shell.Lex
	context    *ncContext

	tmp    string
	spool  *nfsSpool
	writer *ncLayerWriter
	epoch  *time.Time

	mu     sync.Mutex
	layers map[string]v1.Layer // by plan key: one object for every platform
	descs  map[string]*remote.Descriptor
	bases  map[v1.Hash]*nfsBase

	prefix      string
	step, steps int
}

func (b *NativeBuilder) start(ctx context.Context, job *Job, log io.Writer) (*nativeBuild, error) {
	r := job.Rule
	df := r.Dockerfile
	if df == "" {
		df = "Dockerfile"
	}
	dfPath := filepath.Join(r.Context, df)
	content, err := os.ReadFile(dfPath)
	if err != nil {
		return nil, err
	}
	stages, metaArgs, escape, err := ncParseDockerfile(content)
	if err != nil {
		return nil, err
	}
	cctx, err := newNCContext(r.Context, dfPath)
	if err != nil {
		return nil, err
	}
	nb := &nativeBuild{
		b: b, ctx: ctx, job: job, log: log,
		dockerfile: content, stages: stages, metaArgs: metaArgs,
		shlex:   shell.NewLex(escape),
		context: cctx,
		layers:  map[string]v1.Layer{},
		descs:   map[string]*remote.Descriptor{},
		bases:   map[v1.Hash]*nfsBase{},
	}
	nb.remoteOpts = []remote.Option{remote.WithContext(ctx)}
	if b.Keychain != nil {
		nb.remoteOpts = append(nb.remoteOpts, remote.WithAuthFromKeychain(b.Keychain))
	}
	if b.Transport != nil {
		nb.remoteOpts = append(nb.remoteOpts, remote.WithTransport(b.Transport))
	}
	if v, ok := r.Args["SOURCE_DATE_EPOCH"]; ok && v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("SOURCE_DATE_EPOCH %q: not a number of seconds", v)
		}
		t := time.Unix(n, 0).UTC()
		nb.epoch = &t
	}

	// Refuse what needs a container before pulling anything.
	global, err := nb.globalArgs(ncHostPlatform())
	if err != nil {
		return nil, err
	}
	reach, err := nb.reachable(global)
	if err != nil {
		return nil, err
	}
	for i, st := range stages {
		if !reach[i] {
			continue
		}
		for _, c := range st.Commands {
			if _, ok := c.(*instructions.RunCommand); ok {
				return nil, ncRunError(c)
			}
		}
	}

	nb.tmp, err = os.MkdirTemp("", "kiln-native-")
	if err != nil {
		return nil, err
	}
	f, err := os.Create(filepath.Join(nb.tmp, "spool"))
	if err != nil {
		os.RemoveAll(nb.tmp)
		return nil, err
	}
	nb.spool = &nfsSpool{f: f}
	mtime := time.Unix(0, 0).UTC()
	if nb.epoch != nil {
		mtime = *nb.epoch
	}
	nb.writer = &ncLayerWriter{dir: nb.tmp, mtime: mtime}
	return nb, nil
}

func ncParseDockerfile(content []byte) ([]instructions.Stage, []instructions.ArgCommand, rune, error) {
	res, err := parser.Parse(bytes.NewReader(content))
	if err != nil {
		return nil, nil, 0, fmt.Errorf("Dockerfile: %w", err)
	}
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("Dockerfile: %w", err)
	}
	if len(stages) == 0 {
		return nil, nil, 0, errors.New("Dockerfile: no FROM")
	}
	return stages, metaArgs, res.EscapeToken, nil
}

func (nb *nativeBuild) close() {
	if nb.spool != nil {
		nb.spool.f.Close()
	}
	if nb.tmp != "" {
		os.RemoveAll(nb.tmp)
	}
}

// ncCommandText is the instruction as written.
func ncCommandText(c instructions.Command) string {
	if s, ok := c.(fmt.Stringer); ok {
		return s.String()
	}
	return strings.ToUpper(c.Name())
}

func ncRunError(c instructions.Command) error {
	return fmt.Errorf("Dockerfile line %d: RUN needs a container; use builder docker or buildah", ncLine(c.Location()))
}

func ncLine(loc []parser.Range) int {
	if len(loc) == 0 {
		return 0
	}
	return loc[0].Start.Line
}

// ---- arguments ----

func ncHostPlatform() v1.Platform {
	return v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
}

func ncPlatformString(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// ncEnvSet sets k in a KEY=value list, in place of an existing k.
func ncEnvSet(env []string, k, v string) []string {
	for i, kv := range env {
		key, _, _ := strings.Cut(kv, "=")
		if shell.EqualEnvKeys(key, k) {
			out := slices.Clone(env)
			out[i] = k + "=" + v
			return out
		}
	}
	return append(slices.Clone(env), k+"="+v)
}

func ncEnvGet(env []string, k string) (string, bool) {
	for _, kv := range env {
		key, v, _ := strings.Cut(kv, "=")
		if shell.EqualEnvKeys(key, k) {
			return v, true
		}
	}
	return "", false
}

// globalArgs are the variables FROM lines see: BuildKit's automatic
// platform arguments, then the ARGs before the first FROM, build
// arguments overriding their defaults.
func (nb *nativeBuild) globalArgs(target v1.Platform) ([]string, error) {
	bp := ncHostPlatform()
	stageName := nb.stages[len(nb.stages)-1].Name
	if stageName == "" {
		stageName = "default"
	}
	args := nb.job.Rule.Args
	var env []string
	for _, kv := range [][2]string{
		{"BUILDPLATFORM", ncPlatformString(bp)}, {"BUILDOS", bp.OS}, {"BUILDOSVERSION", bp.OSVersion},
		{"BUILDARCH", bp.Architecture}, {"BUILDVARIANT", bp.Variant},
		{"TARGETPLATFORM", ncPlatformString(target)}, {"TARGETOS", target.OS}, {"TARGETOSVERSION", target.OSVersion},
		{"TARGETARCH", target.Architecture}, {"TARGETVARIANT", target.Variant},
		{"TARGETSTAGE", stageName},
	} {
		v := kv[1]
		if o, ok := args[kv[0]]; ok {
			v = o
		}
		env = ncEnvSet(env, kv[0], v)
	}
	for _, cmd := range nb.metaArgs {
		for _, kp := range cmd.Args {
			if v, ok := args[kp.Key]; ok {
				env = ncEnvSet(env, kp.Key, v)
				continue
			}
			if kp.Value == nil {
				continue
			}
			v, _, err := nb.shlex.ProcessWord(*kp.Value, shell.EnvsFromSlice(env))
			if err != nil {
				return nil, fmt.Errorf("Dockerfile line %d: %w", ncLine(cmd.Location()), err)
			}
			env = ncEnvSet(env, kp.Key, v)
		}
	}
	return env, nil
}

// stageRef finds an earlier stage by name (case-insensitive), or -1.
func (nb *nativeBuild) stageRef(name string, before int) int {
	for i := 0; i < before; i++ {
		if nb.stages[i].Name != "" && strings.EqualFold(nb.stages[i].Name, name) {
			return i
		}
	}
	return -1
}

// copyFrom says what COPY --from names: a stage (index ≥ 0) or an image.
func (nb *nativeBuild) copyFrom(from string, cur int) (int, error) {
	if n, err := strconv.Atoi(from); err == nil {
		if n < 0 || n >= cur {
			return 0, fmt.Errorf("COPY --from=%s: no such earlier stage", from)
		}
		return n, nil
	}
	return nb.stageRef(from, cur), nil
}

// reachable marks the stages the last one needs, like BuildKit, which
// builds nothing else.
func (nb *nativeBuild) reachable(global []string) ([]bool, error) {
	reach := make([]bool, len(nb.stages))
	reach[len(reach)-1] = true
	for i := len(nb.stages) - 1; i >= 0; i-- {
		if !reach[i] {
			continue
		}
		st := nb.stages[i]
		base, _, err := nb.shlex.ProcessWord(st.BaseName, shell.EnvsFromSlice(global))
		if err != nil {
			return nil, fmt.Errorf("Dockerfile line %d: %w", ncLine(st.Location), err)
		}
		if j := nb.stageRef(base, i); j >= 0 {
			reach[j] = true
		}
		for _, c := range st.Commands {
			if cp, ok := c.(*instructions.CopyCommand); ok && cp.From != "" {
				j, err := nb.copyFrom(cp.From, i)
				if err != nil {
					return nil, fmt.Errorf("Dockerfile line %d: %w", ncLine(c.Location()), err)
				}
				if j >= 0 {
					reach[j] = true
				}
			}
		}
	}
	return reach, nil
}

// ---- images ----

// imageRef turns a FROM or COPY --from reference into where to pull it:
// this registry over plain HTTP for its own names, pinned to the trigger's
// digest when it is the tag that moved.
func (nb *nativeBuild) imageRef(s string) (name.Reference, error) {
	ref, err := name.ParseReference(s)
	if err != nil {
		return nil, fmt.Errorf("image reference %q: %w", s, err)
	}
	job := nb.job
	repo := ref.Context().RepositoryStr()
	host := ref.Context().RegistryStr()
	local := strings.EqualFold(host, job.Registry)
	if !local {
		for _, h := range nb.b.Hosts {
			if strings.EqualFold(h, host) {
				local = true
				break
			}
		}
	}
	hostname := host
	if i := strings.LastIndex(host, ":"); i >= 0 && !strings.HasSuffix(host, "]") {
		hostname = host[:i]
	}
	loopback := hostname == "localhost" || hostname == "127.0.0.1" || hostname == "[::1]"
	if i := strings.LastIndex(job.Registry, ":"); !local && loopback && i >= 0 {
		local = strings.EqualFold(host, hostname+job.Registry[i:])
	}
	tag, isTag := ref.(name.Tag)
	if !local && !loopback && len(nb.b.Hosts) == 0 && isTag && host != name.DefaultRegistry {
		for _, b := range job.Rule.Bases {
			if b.Repo == repo && b.Tag == tag.TagStr() {
				local = true
			}
		}
	}
	if !local {
		if cached, ok := nb.throughCache(host, repo); ok {
			repo, local = cached, true
		}
	}
	if !local {
		return ref, nil
	}
	if isTag {
		if tr := job.Trigger; tr.Digest != "" && tr.Ref.Repo == repo && tr.Ref.Tag == tag.TagStr() {
			return name.NewDigest(job.Registry+"/"+repo+"@"+tr.Digest.String(), name.Insecure)
		}
		return name.NewTag(job.Registry+"/"+repo+":"+tag.TagStr(), name.Insecure)
	}
	return name.NewDigest(job.Registry+"/"+repo+"@"+ref.Identifier(), name.Insecure)
}

// throughCache maps an image of a mirrored registry to the repository kiln
// caches it under.
func (nb *nativeBuild) throughCache(host, repo string) (string, bool) {
	if host == name.DefaultRegistry {
		host = "docker.io"
	}
	for _, u := range nb.b.Upstreams {
		if strings.EqualFold(u, host) {
			return u + "/" + repo, true
		}
	}
	return "", false
}

func (nb *nativeBuild) descriptor(s string) (*remote.Descriptor, error) {
	ref, err := nb.imageRef(s)
	if err != nil {
		return nil, err
	}
	nb.mu.Lock()
	defer nb.mu.Unlock()
	if d, ok := nb.descs[ref.String()]; ok {
		return d, nil
	}
	d, err := remote.Get(ref, nb.remoteOpts...)
	if err != nil {
		return nil, regTransient(fmt.Errorf("pulling %s: %w", s, err))
	}
	nb.descs[ref.String()] = d
	return d, nil
}

func ncIsImageType(mt types.MediaType) bool {
	return mt == types.OCIManifestSchema1 || mt == types.DockerManifestSchema2
}

// ncPlatformMatch says how well have fits want: 2 exactly, 1 with a
// variant that only one side names, 0 not.
func ncPlatformMatch(want v1.Platform, have *v1.Platform) int {
	if have == nil || have.OS != want.OS || have.Architecture != want.Architecture {
		return 0
	}
	norm := func(p v1.Platform) string {
		if p.Architecture == "arm64" && p.Variant == "v8" {
			return ""
		}
		return p.Variant
	}
	if norm(*have) == norm(want) {
		return 2
	}
	if want.Variant == "" || have.Variant == "" {
		return 1
	}
	return 0
}

// image pulls the image s names for platform: the matching child of an
// index, or the image itself.
func (nb *nativeBuild) image(s string, platform v1.Platform) (v1.Image, error) {
	desc, err := nb.descriptor(s)
	if err != nil {
		return nil, err
	}
	if !desc.MediaType.IsIndex() {
		img, err := desc.Image()
		if err != nil {
			return nil, regTransient(fmt.Errorf("pulling %s: %w", s, err))
		}
		return img, nil
	}
	idx, err := desc.ImageIndex()
	if err != nil {
		return nil, regTransient(fmt.Errorf("pulling %s: %w", s, err))
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, regTransient(fmt.Errorf("pulling %s: %w", s, err))
	}
	best, bestScore := -1, 0
	for i, m := range im.Manifests {
		if !ncIsImageType(m.MediaType) {
			continue
		}
		if sc := ncPlatformMatch(platform, m.Platform); sc > bestScore {
			best, bestScore = i, sc
		}
	}
	if best < 0 {
		return nil, fmt.Errorf("%s has no image for platform %s", s, ncPlatformString(platform))
	}
	img, err := idx.Image(im.Manifests[best].Digest)
	if err != nil {
		return nil, regTransient(fmt.Errorf("pulling %s: %w", s, err))
	}
	return img, nil
}

// base returns the scanned filesystem of img, once per build.
func (nb *nativeBuild) base(img v1.Image) (*nfsBase, error) {
	d, err := img.Digest()
	if err != nil {
		return nil, err
	}
	nb.mu.Lock()
	b, ok := nb.bases[d]
	nb.mu.Unlock()
	if ok {
		return b, nil
	}
	b, err = newNFSBase(nb.ctx, &nb.b.layers, img)
	if err != nil {
		return nil, err
	}
	nb.mu.Lock()
	nb.bases[d] = b
	nb.mu.Unlock()
	return b, nil
}

// ---- platforms ----

type ncTargets struct {
	index     bool
	indexType types.MediaType
	platforms []v1.Platform
}

// targets decides what to build: every platform of the final stage's base
// when it is an index, else the one platform of its base.
func (nb *nativeBuild) targets() (ncTargets, error) {
	global, err := nb.globalArgs(ncHostPlatform())
	if err != nil {
		return ncTargets{}, err
	}
	i := len(nb.stages) - 1
	for {
		st := nb.stages[i]
		if st.Platform != "" {
			p, err := nb.stagePlatform(st, global)
			if err != nil {
				return ncTargets{}, err
			}
			return ncTargets{platforms: []v1.Platform{p}}, nil
		}
		base, _, err := nb.shlex.ProcessWord(st.BaseName, shell.EnvsFromSlice(global))
		if err != nil {
			return ncTargets{}, fmt.Errorf("Dockerfile line %d: %w", ncLine(st.Location), err)
		}
		if j := nb.stageRef(base, i); j >= 0 {
			i = j
			continue
		}
		if strings.EqualFold(base, "scratch") {
			return ncTargets{platforms: []v1.Platform{ncHostPlatform()}}, nil
		}
		desc, err := nb.descriptor(base)
		if err != nil {
			return ncTargets{}, err
		}
		if !desc.MediaType.IsIndex() {
			img, err := desc.Image()
			if err != nil {
				return ncTargets{}, regTransient(err)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				return ncTargets{}, regTransient(err)
			}
			p := v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant, OSVersion: cf.OSVersion}
			if p.OS == "" {
				p = ncHostPlatform()
			}
			return ncTargets{platforms: []v1.Platform{p}}, nil
		}
		idx, err := desc.ImageIndex()
		if err != nil {
			return ncTargets{}, regTransient(err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return ncTargets{}, regTransient(err)
		}
		t := ncTargets{index: true, indexType: desc.MediaType}
		for _, m := range im.Manifests {
			if !ncIsImageType(m.MediaType) || m.Platform == nil || m.Platform.OS == "unknown" {
				continue
			}
			if slices.ContainsFunc(t.platforms, func(p v1.Platform) bool { return p.Equals(*m.Platform) }) {
				continue
			}
			t.platforms = append(t.platforms, *m.Platform)
		}
		if len(t.platforms) == 0 {
			return ncTargets{}, fmt.Errorf("%s: the index has no platform images", base)
		}
		return t, nil
	}
}

func (nb *nativeBuild) stagePlatform(st instructions.Stage, global []string) (v1.Platform, error) {
	s, _, err := nb.shlex.ProcessWord(st.Platform, shell.EnvsFromSlice(global))
	if err != nil {
		return v1.Platform{}, fmt.Errorf("Dockerfile line %d: %w", ncLine(st.Location), err)
	}
	p, err := v1.ParsePlatform(s)
	if err != nil {
		return v1.Platform{}, fmt.Errorf("Dockerfile line %d: --platform=%s: %w", ncLine(st.Location), s, err)
	}
	return *p, nil
}

// ---- stages ----

// nstage is a stage being built for one platform.
type nstage struct {
	b        *nativeBuild
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

	viewFn func() (*nfsView, error)
	view   *nfsView

	img v1.Image
}

func (st *nstage) fs() (*nfsView, error) {
	if st.view == nil {
		v, err := st.viewFn()
		if err != nil {
			return nil, err
		}
		st.view = v
	}
	return st.view, nil
}

func (st *nstage) history(createdBy string, layer v1.Layer) {
	st.adds = append(st.adds, mutate.Addendum{Layer: layer, History: v1.History{
		Created:    v1.Time{Time: st.created},
		CreatedBy:  createdBy,
		Comment:    nativeHistoryComment,
		EmptyLayer: layer == nil,
	}})
}

// finish makes the stage's image: the base, the added layers and history,
// and the config built.
func (st *nstage) finish() error {
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
func (nb *nativeBuild) run(target v1.Platform, prefix string) (v1.Image, error) {
	var err error
	if nb.stages, nb.metaArgs, _, err = ncParseDockerfile(nb.dockerfile); err != nil {
		return nil, err
	}
	global, err := nb.globalArgs(target)
	if err != nil {
		return nil, err
	}
	reach, err := nb.reachable(global)
	if err != nil {
		return nil, err
	}
	nb.prefix, nb.step, nb.steps = prefix, 0, 0
	for i, st := range nb.stages {
		if reach[i] {
			nb.steps += 1 + len(st.Commands)
		}
	}
	stages := make([]*nstage, len(nb.stages))
	for i := range nb.stages {
		if !reach[i] {
			continue
		}
		st, err := nb.from(i, global, target, stages)
		if err != nil {
			return nil, err
		}
		for _, c := range nb.stages[i].Commands {
			if err := nb.ctx.Err(); err != nil {
				return nil, err
			}
			nb.logStep(ncCommandText(c))
			if err := nb.dispatch(st, c, global, stages); err != nil {
				return nil, fmt.Errorf("Dockerfile line %d: %w", ncLine(c.Location()), err)
			}
		}
		if err := st.finish(); err != nil {
			return nil, err
		}
		stages[i] = st
	}
	return stages[len(stages)-1].img, nil
}

func (nb *nativeBuild) logStep(text string) {
	nb.step++
	fmt.Fprintf(nb.log, "%sstep %d/%d: %s\n", nb.prefix, nb.step, nb.steps, text)
}

// from starts stage i: from an earlier stage, scratch or an image.
func (nb *nativeBuild) from(i int, global []string, target v1.Platform, stages []*nstage) (*nstage, error) {
	ds := nb.stages[i]
	line := ncLine(ds.Location)
	nb.logStep(ds.SourceCode)
	baseName, _, err := nb.shlex.ProcessWord(ds.BaseName, shell.EnvsFromSlice(global))
	if err != nil {
		return nil, fmt.Errorf("Dockerfile line %d: %w", line, err)
	}
	if baseName == "" {
		return nil, fmt.Errorf("Dockerfile line %d: base name (%s) should not be blank", line, ds.BaseName)
	}
	platform := target
	if ds.Platform != "" {
		if platform, err = nb.stagePlatform(ds, global); err != nil {
			return nil, err
		}
	}
	st := &nstage{b: nb, index: i, name: ds.Name, platform: platform}

	if j := nb.stageRef(baseName, i); j >= 0 {
		parent := stages[j]
		st.base = parent.img
		st.layerMT = parent.layerMT
		st.cf = parent.cf.DeepCopy()
		st.cf.Config = *parent.cf.Config.DeepCopy()
		st.cf.Config.OnBuild = nil
		st.created = parent.created
		st.env = slices.Clone(parent.env)
		st.viewFn = func() (*nfsView, error) {
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
		img, err := nb.image(baseName, platform)
		if err != nil {
			return nil, fmt.Errorf("Dockerfile line %d: %w", line, err)
		}
		d, err := img.Digest()
		if err != nil {
			return nil, regTransient(err)
		}
		fmt.Fprintf(nb.log, "%s  %s is %s\n", nb.prefix, baseName, d)
		mt, err := img.MediaType()
		if err != nil {
			return nil, regTransient(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, regTransient(err)
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
		st.viewFn = func() (*nfsView, error) {
			b, err := nb.base(img)
			if err != nil {
				return nil, err
			}
			return &nfsView{base: b, over: map[string]*nfsNode{}}, nil
		}
	}
	if st.viewFn == nil {
		st.viewFn = func() (*nfsView, error) { return &nfsView{over: map[string]*nfsNode{}}, nil }
	}
	if nb.epoch != nil {
		st.created = *nb.epoch
	}
	st.env = slices.Clone(st.cf.Config.Env)

	// ONBUILD triggers of the base run first, then are dropped.
	triggers := st.cf.Config.OnBuild
	st.cf.Config.OnBuild = nil
	for _, t := range triggers {
		res, err := parser.Parse(strings.NewReader(t))
		if err != nil || len(res.AST.Children) != 1 {
			return nil, fmt.Errorf("Dockerfile line %d: ONBUILD trigger %q of the base: cannot parse it", line, t)
		}
		c, err := instructions.ParseCommand(res.AST.Children[0])
		if err != nil {
			return nil, fmt.Errorf("Dockerfile line %d: ONBUILD trigger %q of the base: %w", line, t, err)
		}
		fmt.Fprintf(nb.log, "%s  running ONBUILD %s\n", nb.prefix, t)
		if _, ok := c.(*instructions.RunCommand); ok {
			return nil, fmt.Errorf("Dockerfile line %d: the base's ONBUILD trigger %q runs a command; use builder docker or buildah", line, t)
		}
		if err := nb.dispatch(st, c, global, stages); err != nil {
			return nil, fmt.Errorf("Dockerfile line %d: ONBUILD %s: %w", line, t, err)
		}
	}
	return st, nil
}

// ---- instructions ----

func (nb *nativeBuild) dispatch(st *nstage, c instructions.Command, global []string, stages []*nstage) error {
	lex := nb.shlex
	expand := func(word string) (string, error) {
		v, _, err := lex.ProcessWord(word, shell.EnvsFromSlice(st.env))
		return v, err
	}
	if _, isArg := c.(*instructions.ArgCommand); !isArg {
		if ex, ok := c.(instructions.SupportsSingleWordExpansion); ok {
			if err := ex.Expand(expand); err != nil {
				return err
			}
		}
	}
	if ex, ok := c.(instructions.SupportsSingleWordExpansionRaw); ok {
		raw := shell.NewLex('\\')
		raw.SkipProcessQuotes = true
		if err := ex.ExpandRaw(func(word string) (string, error) {
			v, _, err := raw.ProcessWord(word, shell.EnvsFromSlice(st.env))
			return v, err
		}); err != nil {
			return err
		}
	}
	conf := &st.cf.Config

	switch c := c.(type) {
	case *instructions.RunCommand:
		return fmt.Errorf("RUN needs a container; use builder docker or buildah")

	case *instructions.ArgCommand:
		var parts []string
		for _, kp := range c.Args {
			val := kp.Value
			if v, ok := nb.job.Rule.Args[kp.Key]; ok {
				val = &v
			} else if val != nil {
				v, err := expand(*val)
				if err != nil {
					return err
				}
				val = &v
			} else if v, ok := ncEnvGet(global, kp.Key); ok {
				val = &v
			}
			s := kp.Key
			if val != nil {
				st.env = ncEnvSet(st.env, kp.Key, *val)
				s += "=" + *val
			}
			parts = append(parts, s)
		}
		st.history("ARG "+strings.Join(parts, " "), nil)

	case *instructions.EnvCommand:
		var b strings.Builder
		b.WriteString("ENV")
		for _, kv := range c.Env {
			conf.Env = ncEnvSet(conf.Env, kv.Key, kv.Value)
			st.env = ncEnvSet(st.env, kv.Key, kv.Value)
			b.WriteString(" " + kv.Key + "=" + kv.Value)
		}
		st.history(b.String(), nil)

	case *instructions.LabelCommand:
		var b strings.Builder
		b.WriteString("LABEL")
		if conf.Labels == nil {
			conf.Labels = map[string]string{}
		} else {
			conf.Labels = maps.Clone(conf.Labels)
		}
		for _, kv := range c.Labels {
			conf.Labels[kv.Key] = kv.Value
			b.WriteString(" " + kv.Key + "=" + kv.Value)
		}
		st.history(b.String(), nil)

	case *instructions.MaintainerCommand:
		st.cf.Author = c.Maintainer
		st.history("MAINTAINER "+c.Maintainer, nil)

	case *instructions.WorkdirCommand:
		wd := c.Path
		if !path.IsAbs(wd) {
			cur := conf.WorkingDir
			if cur == "" {
				cur = "/"
			}
			wd = path.Join(cur, wd)
		}
		wd = path.Clean(wd)
		conf.WorkingDir = wd
		var layer v1.Layer
		if wd != "/" {
			var err error
			if layer, err = nb.workdirLayer(st, wd); err != nil {
				return err
			}
		}
		st.history("WORKDIR "+wd, layer)

	case *instructions.CopyCommand:
		if c.Parents {
			return errors.New("COPY --parents is not supported by the native builder; use builder docker or buildah")
		}
		return nb.copy(st, ncCopyArgs{
			cmd: "COPY", from: c.From, sources: c.SourcePaths, contents: c.SourceContents, dest: c.DestPath,
			chown: c.Chown, chmod: c.Chmod, exclude: c.ExcludePatterns,
		}, stages)

	case *instructions.AddCommand:
		for _, s := range c.SourcePaths {
			if strings.Contains(s, "://") || strings.HasPrefix(s, "git@") {
				return fmt.Errorf("ADD %s: remote sources are not supported by the native builder; use builder docker or buildah", s)
			}
		}
		if c.Checksum != "" {
			return errors.New("ADD --checksum is not supported by the native builder; use builder docker or buildah")
		}
		return nb.copy(st, ncCopyArgs{
			cmd: "ADD", sources: c.SourcePaths, contents: c.SourceContents, dest: c.DestPath,
			chown: c.Chown, chmod: c.Chmod, exclude: c.ExcludePatterns, isAdd: true, unpack: c.Unpack,
		}, stages)

	case *instructions.UserCommand:
		conf.User = c.User
		st.history("USER "+c.User, nil)

	case *instructions.ExposeCommand:
		var ports []string
		for _, p := range c.Ports {
			words, err := lex.ProcessWords(p, shell.EnvsFromSlice(st.env))
			if err != nil {
				return err
			}
			for _, w := range words {
				ps, err := ncParsePort(w)
				if err != nil {
					return err
				}
				ports = append(ports, ps...)
			}
		}
		if conf.ExposedPorts == nil {
			conf.ExposedPorts = map[string]struct{}{}
		} else {
			conf.ExposedPorts = maps.Clone(conf.ExposedPorts)
		}
		for _, p := range ports {
			conf.ExposedPorts[p] = struct{}{}
		}
		st.history(fmt.Sprintf("EXPOSE %v", ports), nil)

	case *instructions.VolumeCommand:
		if conf.Volumes == nil {
			conf.Volumes = map[string]struct{}{}
		} else {
			conf.Volumes = maps.Clone(conf.Volumes)
		}
		for _, v := range c.Volumes {
			if v == "" {
				return errors.New("VOLUME specified can not be an empty string")
			}
			conf.Volumes[v] = struct{}{}
		}
		st.history(fmt.Sprintf("VOLUME %v", c.Volumes), nil)

	case *instructions.StopSignalCommand:
		conf.StopSignal = c.Signal
		st.history("STOPSIGNAL "+c.Signal, nil)

	case *instructions.ShellCommand:
		conf.Shell = slices.Clone(c.Shell)
		st.history(fmt.Sprintf("SHELL %v", c.Shell), nil)

	case *instructions.CmdCommand:
		args := st.withShell(c.CmdLine, c.PrependShell)
		conf.Cmd = args
		conf.ArgsEscaped = true
		st.cmdSet = true
		st.history(fmt.Sprintf("CMD %q", args), nil)

	case *instructions.EntrypointCommand:
		args := st.withShell(c.CmdLine, c.PrependShell)
		conf.Entrypoint = args
		if !st.cmdSet {
			conf.Cmd = nil
		}
		st.history(fmt.Sprintf("ENTRYPOINT %q", args), nil)

	case *instructions.HealthCheckCommand:
		h := c.Health
		conf.Healthcheck = &v1.HealthConfig{
			Test: slices.Clone(h.Test), Interval: h.Interval, Timeout: h.Timeout,
			StartPeriod: h.StartPeriod, Retries: h.Retries,
		}
		st.history(fmt.Sprintf("HEALTHCHECK %+v", *conf.Healthcheck), nil)

	case *instructions.OnbuildCommand:
		conf.OnBuild = append(slices.Clone(conf.OnBuild), c.Expression)

	default:
		return fmt.Errorf("%s is not supported by the native builder", strings.ToUpper(c.Name()))
	}
	return nil
}

func (st *nstage) withShell(args []string, prependShell bool) []string {
	if !prependShell {
		return slices.Clone(args)
	}
	sh := slices.Clone(st.cf.Config.Shell)
	if len(sh) == 0 {
		if st.cf.OS == "windows" {
			sh = []string{"cmd", "/S", "/C"}
		} else {
			sh = []string{"/bin/sh", "-c"}
		}
	}
	return append(sh, strings.Join(args, " "))
}

// ncParsePort reads an EXPOSE word: port, port/proto, range/proto (also
// [ip:][hostport:] prefixes, ignored), into "port/proto" entries.
func ncParsePort(raw string) ([]string, error) {
	p := raw
	if i := strings.LastIndex(p, ":"); i >= 0 {
		p = p[i+1:]
	}
	port, proto, _ := strings.Cut(p, "/")
	if proto == "" {
		proto = "tcp"
	}
	start, end, isRange := strings.Cut(port, "-")
	lo, err := strconv.Atoi(start)
	if err != nil || lo < 0 || lo > 65535 {
		return nil, fmt.Errorf("invalid port: %q", raw)
	}
	hi := lo
	if isRange {
		if hi, err = strconv.Atoi(end); err != nil || hi < lo || hi > 65535 {
			return nil, fmt.Errorf("invalid port range: %q", raw)
		}
	}
	var out []string
	for n := lo; n <= hi; n++ {
		out = append(out, strconv.Itoa(n)+"/"+strings.ToLower(proto))
	}
	return out, nil
}

// workdirLayer creates the working directory when it is missing, owned
// by the USER, like BuildKit; nil when it exists.
func (nb *nativeBuild) workdirLayer(st *nstage, wd string) (v1.Layer, error) {
	view, err := st.fs()
	if err != nil {
		return nil, err
	}
	resolved, err := view.resolve(wd, true)
	if err != nil {
		return nil, err
	}
	plan := &ncPlan{target: view}
	uid, gid := 0, 0
	if u := st.cf.Config.User; u != "" {
		o, err := ncParseOwner(nb.ctx, u, view, nb.spool)
		if err != nil {
			return nil, fmt.Errorf("WORKDIR %s: %w", wd, err)
		}
		uid, gid = o.uid, o.gid
	}
	if err := plan.mkdirAll(resolved, 0o755, uid, gid); err != nil {
		return nil, err
	}
	if len(plan.entries) == 0 {
		return nil, nil
	}
	return nb.commit(st, view, plan)
}

type ncCopyArgs struct {
	cmd      string
	from     string
	sources  []string
	contents []instructions.SourceContent
	dest     string
	chown    string
	chmod    string
	exclude  []string
	isAdd    bool
	unpack   *bool
}

// text is the instruction, expanded, for the history.
func (a ncCopyArgs) text() string {
	parts := []string{a.cmd}
	if a.from != "" {
		parts = append(parts, "--from="+a.from)
	}
	if a.chown != "" {
		parts = append(parts, "--chown="+a.chown)
	}
	if a.chmod != "" {
		parts = append(parts, "--chmod="+a.chmod)
	}
	for _, e := range a.exclude {
		parts = append(parts, "--exclude="+e)
	}
	parts = append(parts, a.sources...)
	for _, c := range a.contents {
		parts = append(parts, "<<"+c.Path)
	}
	parts = append(parts, a.dest)
	return strings.Join(parts, " ")
}

func (nb *nativeBuild) copy(st *nstage, a ncCopyArgs, stages []*nstage) error {
	view, err := st.fs()
	if err != nil {
		return err
	}
	cp := &ncCopy{cmd: a.cmd, sources: a.sources, isAdd: a.isAdd, unpack: a.unpack}
	for _, c := range a.contents {
		cp.contents = append(cp.contents, ncInline{name: c.Path, data: []byte(c.Data)})
	}

	// Destination, relative to WORKDIR; a trailing slash means a directory.
	dest := a.dest
	dirDest := dest == "" || dest == "." || strings.HasSuffix(dest, "/") || strings.HasSuffix(dest, "/.")
	if !path.IsAbs(dest) {
		wd := st.cf.Config.WorkingDir
		if wd == "" {
			wd = "/"
		}
		dest = path.Join(wd, dest)
	}
	dest = path.Clean(dest)
	if dirDest && dest != "/" {
		dest += "/"
	}
	cp.dest = dest

	if a.chown != "" {
		o, err := ncParseOwner(nb.ctx, a.chown, view, nb.spool)
		if err != nil {
			return fmt.Errorf("--chown=%s: %w", a.chown, err)
		}
		cp.chown = o
	}
	if a.chmod != "" {
		m, err := strconv.ParseUint(a.chmod, 8, 32)
		if err != nil || m > 0o7777 {
			return fmt.Errorf("--chmod=%s: the native builder takes octal modes only", a.chmod)
		}
		mode := int64(m)
		cp.chmod = &mode
	}
	if len(a.exclude) > 0 {
		pm, err := patternmatcher.New(a.exclude)
		if err != nil {
			return fmt.Errorf("--exclude: %w", err)
		}
		cp.exclude = pm
	}

	var src ncSource = nb.context
	var srcView *nfsView
	if a.from != "" {
		j, err := nb.copyFrom(a.from, st.index)
		if err != nil {
			return err
		}
		if j >= 0 {
			if srcView, err = stages[j].fs(); err != nil {
				return err
			}
			src = &ncImageSource{view: srcView, name: "stage " + a.from}
		} else {
			img, err := nb.image(a.from, st.platform)
			if err != nil {
				return err
			}
			b, err := nb.base(img)
			if err != nil {
				return err
			}
			srcView = &nfsView{base: b}
			src = &ncImageSource{view: srcView, name: "image " + a.from}
		}
		cp.fromImage = true
	}

	plan, err := cp.plan(src, view)
	if err != nil {
		return err
	}
	if srcView != nil {
		var pending []string
		for _, e := range plan.entries {
			if e.pending != "" {
				pending = append(pending, e.pending)
			}
		}
		slices.Sort(pending)
		got, err := srcView.fetch(nb.ctx, nb.spool, pending)
		if err != nil {
			return err
		}
		for _, e := range plan.entries {
			if e.pending != "" {
				if e.content = got[e.pending]; e.content == nil {
					return fmt.Errorf("%s: cannot read /%s", a.cmd, e.pending)
				}
			}
		}
	}
	var layer v1.Layer
	if len(plan.entries) > 0 {
		if layer, err = nb.commit(st, view, plan); err != nil {
			return err
		}
	}
	st.history(a.text(), layer)
	return nil
}

// commit turns a plan into a layer (reusing one made for another
// platform from the same entries) and records its entries in view.
func (nb *nativeBuild) commit(st *nstage, view *nfsView, plan *ncPlan) (v1.Layer, error) {
	entries := ncSorted(plan)
	key := ncPlanKey(entries, st.layerMT)
	nb.mu.Lock()
	layer, ok := nb.layers[key]
	nb.mu.Unlock()
	if !ok {
		var err error
		layer, err = nb.writer.layer(nb.ctx, entries, st.layerMT)
		if err != nil {
			return nil, err
		}
		nb.mu.Lock()
		nb.layers[key] = layer
		nb.mu.Unlock()
	}
	for _, e := range entries {
		n := &nfsNode{typ: e.typ, mode: e.mode, uid: e.uid, gid: e.gid, size: e.size, link: e.link, src: e.content}
		if e.typ == tar.TypeDir {
			if old := view.lookup(e.name); old.isDir() {
				continue
			}
		}
		view.over[e.name] = n
	}
	if d, err := layer.Digest(); err == nil {
		fmt.Fprintf(nb.log, "%s  layer %s (%d entries)\n", nb.prefix, d, len(entries))
	}
	return layer, nil
}

// regTransient marks a registry failure as worth retrying (see
// IsTransient), unless the registry answered that the request itself is
// wrong (4xx but timeouts and rate limits) or the build was cancelled.
func regTransient(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode >= 400 && te.StatusCode < 500 &&
		te.StatusCode != http.StatusRequestTimeout && te.StatusCode != http.StatusTooManyRequests {
		return err
	}
	return transient(err)
}
