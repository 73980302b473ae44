package buildhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"

	"kiln/buildhook/build"
	"kiln/buildhook/dockerfile"
	"kiln/storage"
)

// Zero-config rebase (buildhook.autorebase). An image pushed with
// org.opencontainers.image.base.name naming a tag of this registry, and
// with .base.digest, is adopted: kiln keeps an "auto" rule for it
// (auto:<repo:tag>, strategy rebase, built on that tag) next to the
// configured ones, in the same graph and queue, so it coalesces, cascades
// and keeps records like any rule. Adoptions are kept in the store (one
// JSON document per image, see Store.PutAdoption; in a cluster, in the
// database's adoptions table), so they outlive the
// process. A push of the image without the annotations (or naming a base
// elsewhere) drops the adoption.

// stagingTagPrefix starts the tags builders push to before Finalize.
const stagingTagPrefix = "kiln-build-"

// autoRulePrefix starts the names of the rules of adopted images.
const autoRulePrefix = "auto:"

// Adoption is an image kiln rebases on its own when Base moves.
type Adoption struct {
	Image   build.ImageRef
	Base    build.ImageRef
	Adopted time.Time
}

type adoptionJSON struct {
	Image   string    `json:"image"`
	Base    string    `json:"base"`
	Adopted time.Time `json:"adopted"`
}

// autoRule is the rule of an adopted image.
func autoRule(a Adoption) *build.Rule {
	base := a.Base
	return &build.Rule{
		Name:      autoRulePrefix + a.Image.String(),
		Tags:      []build.ImageRef{a.Image},
		Builder:   "rebase",
		Strategy:  "rebase",
		Bases:     []build.ImageRef{base},
		FinalBase: &base,
		Auto:      true,
	}
}

// autoRebase adopts images as their tags move, in the background, and
// keeps the queue's graph = configured rules + adopted images' rules.
type autoRebase struct {
	s     *Service
	store adoptionStore
	log   *slog.Logger

	mu      sync.Mutex // serialises adoption changes and graph swaps
	adopted map[build.ImageRef]Adoption

	// Tag moves waiting for the worker, in push order.
	pmu     sync.Mutex
	pending []storage.TagMove
	busy    bool
	stopped bool
	idle    idleSignal // idle while nothing is pending or handled
	kick    chan struct{}
	wg      sync.WaitGroup
}

func newAutoRebase(s *Service) *autoRebase {
	return &autoRebase{
		s:       s,
		store:   adoptionsOf(s.opts),
		log:     s.log,
		adopted: map[build.ImageRef]Adoption{},
		idle:    newIdleSignal(),
		kick:    make(chan struct{}, 1),
	}
}

// moved queues a tag move for the worker; it never blocks on the store.
func (a *autoRebase) moved(m storage.TagMove) {
	if strings.HasPrefix(m.Tag, stagingTagPrefix) {
		return // a builder's staging push
	}
	a.pmu.Lock()
	if a.stopped {
		a.pmu.Unlock()
		return
	}
	a.pending = append(a.pending, m)
	a.idle.busy()
	a.pmu.Unlock()
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// Idle returns a channel closed while no tag move waits or is handled.
func (a *autoRebase) Idle() <-chan struct{} {
	a.pmu.Lock()
	defer a.pmu.Unlock()
	return a.idle.ch
}

// updateIdle closes idle when nothing waits. a.pmu is held.
func (a *autoRebase) updateIdle() {
	if len(a.pending) == 0 && !a.busy {
		a.idle.idle()
	}
}

func (a *autoRebase) loop(ctx context.Context) {
	defer a.wg.Done()
	for {
		a.pmu.Lock()
		if ctx.Err() != nil {
			a.stopped, a.pending, a.busy = true, nil, false
			a.updateIdle()
			a.pmu.Unlock()
			return
		}
		if len(a.pending) == 0 {
			a.busy = false
			a.updateIdle()
			a.pmu.Unlock()
			select {
			case <-ctx.Done():
			case <-a.kick:
			}
			continue
		}
		m := a.pending[0]
		a.pending = slices.Delete(a.pending, 0, 1)
		a.busy = true
		a.pmu.Unlock()
		a.handle(ctx, m)
	}
}

// adoptionsOf is where a service keeps its adoptions: the store, or in a
// cluster the database.
func adoptionsOf(opts ServiceOptions) adoptionStore {
	if opts.Shared != nil {
		return sharedAdoptions{pool: opts.Shared.Pool, store: opts.Store}
	}
	return opts.Store
}

// load reads the stored adoptions; those a configured rule now produces
// are dropped.
func (a *autoRebase) load(ctx context.Context) error {
	if shared, ok := a.store.(sharedAdoptions); ok {
		if err := shared.importFromStore(ctx); err != nil {
			return fmt.Errorf("moving the store's adopted images to the cluster's database: %w", err)
		}
	}
	var found []Adoption
	stored, err := a.store.Adoptions(ctx)
	if err != nil {
		return fmt.Errorf("reading adopted images: %w", err)
	}
	for _, st := range stored {
		var j adoptionJSON
		jerr := json.Unmarshal(st.Content, &j)
		img, ok1 := parseImageRef(j.Image)
		base, ok2 := parseImageRef(j.Base)
		if jerr != nil || !ok1 || !ok2 || img.Repo != st.Repo || img.Tag != st.Tag {
			a.log.Warn("autorebase: ignoring a corrupt adoption", "repo", st.Repo, "tag", st.Tag)
			continue
		}
		found = append(found, Adoption{Image: img, Base: base, Adopted: j.Adopted})
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	set := map[build.ImageRef]Adoption{}
	for _, ad := range found {
		if p := a.s.graph.Producer(ad.Image); p != nil {
			a.log.Info("autorebase: dropping an adopted image a build rule now produces", "image", ad.Image, "rule", p.Name)
			a.store.DeleteAdoption(ctx, ad.Image.Repo, ad.Image.Tag)
			continue
		}
		set[ad.Image] = ad
	}
	g, err := a.s.graphWith(set)
	if err != nil {
		// Some combination is invalid (a cycle): add them one by one.
		set = map[build.ImageRef]Adoption{}
		for _, ad := range found {
			try := maps.Clone(set)
			try[ad.Image] = ad
			if _, err := a.s.graphWith(try); err != nil {
				a.log.Warn("autorebase: not adopting", "image", ad.Image, "base", ad.Base, "err", err)
				continue
			}
			set = try
		}
		if g, err = a.s.graphWith(set); err != nil {
			return err
		}
	}
	old := a.adopted
	a.adopted = set
	a.s.queue.SetGraph(g)
	for _, ad := range set {
		if was, ok := old[ad.Image]; !ok || was.Base != ad.Base {
			a.log.Info("autorebase: adopted image", "image", ad.Image, "base", ad.Base)
		}
	}
	for img, was := range old {
		if _, ok := set[img]; !ok {
			a.log.Info("autorebase: image no longer adopted", "image", img, "base", was.Base, "why", "dropped by another instance")
		}
	}
	return nil
}

// handle looks at a moved tag: adopt it (or drop its adoption) by its
// annotations, and rebase it at once when its base has already moved on.
func (a *autoRebase) handle(ctx context.Context, m storage.TagMove) {
	image := build.ImageRef{Repo: m.Repo, Tag: m.Tag}
	if a.s.graph.Producer(image) != nil {
		return // a configured rule rebuilds it; never adopted (see load)
	}
	base, declared, why, err := a.declaredBase(ctx, image, m.To)
	if err != nil {
		a.log.Warn("autorebase: reading the pushed manifest", "image", image, "err", err)
		return
	}
	if why != "" {
		a.unadopt(ctx, image, why)
		return
	}
	if err := a.adopt(ctx, image, base); err != nil {
		a.log.Warn("autorebase: not adopting", "image", image, "base", base, "err", err)
		return
	}
	a.catchUp(ctx, image, base, declared)
}

// declaredBase reads the base an image's manifest (an index's own
// annotations for an index) declares. why says why it has none here.
func (a *autoRebase) declaredBase(ctx context.Context, image build.ImageRef, d digest.Digest) (base build.ImageRef, baseDigest, why string, err error) {
	m, err := a.s.opts.Store.GetManifest(ctx, image.Repo, d)
	if errors.Is(err, storage.ErrManifestUnknown) {
		return build.ImageRef{}, "", "manifest " + d.String() + " is gone", nil
	}
	if err != nil {
		return build.ImageRef{}, "", "", err
	}
	ann, err := build.ManifestAnnotations(m.Content)
	if err != nil {
		return build.ImageRef{}, "", "not a JSON manifest", nil
	}
	name, bd := ann[build.AnnotationBaseName], ann[build.AnnotationBaseDigest]
	if name == "" || bd == "" {
		return build.ImageRef{}, "", "pushed without " + build.AnnotationBaseName + " and .base.digest", nil
	}
	ref, ok := dockerfile.LocalRef(name, a.s.opts.Hosts)
	if !ok {
		return build.ImageRef{}, "", fmt.Sprintf("its base %s is not a tag of this registry", name), nil
	}
	if ref == image {
		return build.ImageRef{}, "", "it names itself as its base", nil
	}
	return ref, bd, "", nil
}

// adopt records image as built on base (a no-op when it already is).
func (a *autoRebase) adopt(ctx context.Context, image, base build.ImageRef) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if old, ok := a.adopted[image]; ok && old.Base == base {
		return nil
	}
	ad := Adoption{Image: image, Base: base, Adopted: time.Now().UTC()}
	set := maps.Clone(a.adopted)
	set[image] = ad
	g, err := a.s.graphWith(set)
	if err != nil {
		return err
	}
	b, err := json.Marshal(adoptionJSON{Image: image.String(), Base: base.String(), Adopted: ad.Adopted})
	if err != nil {
		return err
	}
	if err := a.store.PutAdoption(ctx, image.Repo, image.Tag, b); err != nil {
		return err
	}
	a.adopted = set
	a.s.queue.SetGraph(g)
	a.log.Info("autorebase: adopted image", "image", image, "base", base)
	a.announce(ctx)
	return nil
}

// announce tells the other instances of a cluster that the adoptions
// changed (see SharedQueue.AnnounceAdoptions).
func (a *autoRebase) announce(ctx context.Context) {
	if q, ok := a.s.queue.(*SharedQueue); ok {
		if err := q.AnnounceAdoptions(ctx); err != nil {
			a.log.Warn("autorebase: telling the other instances of an adoption", "err", err)
		}
	}
}

// reload reads the adoptions again after another instance changed them.
func (a *autoRebase) reload() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := a.load(ctx); err != nil {
		a.log.Warn("autorebase: reading the adoptions another instance changed", "err", err)
	}
}

// unadopt forgets image, if it was adopted.
func (a *autoRebase) unadopt(ctx context.Context, image build.ImageRef, why string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	old, ok := a.adopted[image]
	if !ok {
		return
	}
	set := maps.Clone(a.adopted)
	delete(set, image)
	g, err := a.s.graphWith(set)
	if err != nil { // removing a rule cannot make the graph invalid
		a.log.Error("autorebase: dropping an adopted image", "image", image, "err", err)
		return
	}
	if err := a.store.DeleteAdoption(ctx, image.Repo, image.Tag); err != nil {
		a.log.Error("autorebase: dropping an adopted image", "image", image, "err", err)
		return
	}
	a.adopted = set
	a.s.queue.SetGraph(g)
	a.log.Info("autorebase: image no longer adopted", "image", image, "base", old.Base, "why", why)
	a.announce(ctx)
}

// list returns the adopted images, by image.
func (a *autoRebase) list() []Adoption {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := slices.Collect(maps.Values(a.adopted))
	slices.SortFunc(out, func(x, y Adoption) int { return strings.Compare(x.Image.String(), y.Image.String()) })
	return out
}

// catchUp queues a rebase of a just-pushed image whose declared base
// digest is no longer what its base tag points to (the base moved before
// the image was adopted).
func (a *autoRebase) catchUp(ctx context.Context, image, base build.ImageRef, declared string) {
	cur, err := a.s.opts.Store.ResolveTag(ctx, base.Repo, base.Tag)
	if errors.Is(err, storage.ErrTagUnknown) {
		a.log.Warn("autorebase: the base of an adopted image is not in the registry", "image", image, "base", base)
		return
	}
	if err != nil {
		a.log.Warn("autorebase: resolving a base", "base", base, "err", err)
		return
	}
	if a.onBase(ctx, base.Repo, cur, declared) {
		return
	}
	rule := autoRulePrefix + image.String()
	if _, err := a.s.queue.Trigger(rule, build.Trigger{Ref: base, Digest: cur, Reason: "adopted"}); err != nil && !errors.Is(err, ErrQueueStopped) {
		a.log.Warn("autorebase: queueing a rebase", "image", image, "err", err)
	}
}

// onBase reports whether declared (an image's base.digest) is cur (the
// digest its base tag points to) or, for an index, one of its images.
func (a *autoRebase) onBase(ctx context.Context, repo string, cur digest.Digest, declared string) bool {
	if declared == cur.String() {
		return true
	}
	m, err := a.s.opts.Store.GetManifest(ctx, repo, cur)
	if err != nil || !types.MediaType(m.MediaType).IsIndex() {
		return false
	}
	var idx struct {
		Manifests []struct {
			Digest string `json:"digest"`
		} `json:"manifests"`
	}
	if json.Unmarshal(m.Content, &idx) != nil {
		return false
	}
	for _, c := range idx.Manifests {
		if c.Digest == declared {
			return true
		}
	}
	return false
}

// upToDate says why an auto job has nothing to do ("" when it must
// rebase): the image is gone, no longer names the base, or is already
// built on baseDigest.
func (a *autoRebase) upToDate(ctx context.Context, job *build.Job, baseDigest digest.Digest) (string, error) {
	image, base := job.Rule.Tags[0], *job.Rule.FinalBase
	d, err := a.s.opts.Store.ResolveTag(ctx, image.Repo, image.Tag)
	if errors.Is(err, storage.ErrTagUnknown) {
		a.unadopt(ctx, image, "its tag was deleted")
		return fmt.Sprintf("%s no longer exists; it is no longer adopted", image), nil
	}
	if err != nil {
		return "", err
	}
	got, declared, why, err := a.declaredBase(ctx, image, d)
	if err != nil {
		return "", err
	}
	if why != "" || got != base {
		if why == "" {
			why = "it is now built on " + got.String()
		}
		return fmt.Sprintf("%s is no longer adopted on %s: %s", image, base, why), nil
	}
	if a.onBase(ctx, base.Repo, baseDigest, declared) {
		return fmt.Sprintf("%s is already built on %s@%s", image, base, baseDigest), nil
	}
	return "", nil
}

// graphWith is the graph of the configured rules and the rules of set.
func (s *Service) graphWith(set map[build.ImageRef]Adoption) (*Graph, error) {
	rules := s.graph.Rules()
	auto := slices.Collect(maps.Values(set))
	slices.SortFunc(auto, func(x, y Adoption) int { return strings.Compare(x.Image.String(), y.Image.String()) })
	for _, ad := range auto {
		rules = append(rules, autoRule(ad))
	}
	return NewGraph(rules)
}
