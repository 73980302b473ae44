package rebase

import (
	"cmp"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"kiln/buildhook/build"
)

func imageAnnotations(img v1.Image) (map[string]string, error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, build.RegistryTransient(err)
	}
	if m.Annotations == nil {
		return map[string]string{}, nil
	}
	return maps.Clone(m.Annotations), nil
}

// newBaseFor returns the new base image for platform (nil: a single image).
func (r *run) newBaseFor(platform *v1.Platform) (v1.Image, string, error) {
	if !r.newDesc.MediaType.IsIndex() {
		img, err := r.newDesc.Image()
		if err != nil {
			return nil, "", build.RegistryTransient(err)
		}
		return img, r.newDesc.Digest.String(), nil
	}
	idx, err := r.newDesc.ImageIndex()
	if err != nil {
		return nil, "", build.RegistryTransient(err)
	}
	img, d, err := platformImage(idx, platform)
	if err != nil {
		return nil, "", err
	}
	if platform == nil {
		return nil, "", notApplicable("the new base is an index but the image is a single platform image without platform")
	}
	if img == nil {
		return nil, "", notApplicable("the new base has no %s image", build.PlatformString(*platform))
	}
	return img, d.String(), nil
}

// platformImage is the child of idx for exactly platform, or nil when
// there is none or platform is nil: rebasing onto a near match would mix
// variants.
func platformImage(idx v1.ImageIndex, platform *v1.Platform) (v1.Image, v1.Hash, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, v1.Hash{}, build.RegistryTransient(err)
	}
	if platform == nil {
		return nil, v1.Hash{}, nil
	}
	for _, m := range im.Manifests {
		if build.IsImageType(m.MediaType) && build.PlatformMatch(*platform, m.Platform) == 2 {
			img, err := idx.Image(m.Digest)
			if err != nil {
				return nil, v1.Hash{}, build.RegistryTransient(err)
			}
			return img, m.Digest, nil
		}
	}
	return nil, v1.Hash{}, nil
}

// rebaseImage swaps img's old base (oldDigest in the old base repository)
// for the new base of its platform.
func (r *run) rebaseImage(img v1.Image, ann map[string]string, oldDigest string, platform *v1.Platform) (v1.Image, error) {
	oldRef, err := name.NewDigest(r.job.Registry+"/"+r.oldRepo+"@"+oldDigest, name.Insecure)
	if err != nil {
		return nil, notApplicable("%s %q: %v", build.AnnotationBaseDigest, oldDigest, err)
	}
	// Each read is a round trip to kiln: the image's config and the old
	// base's manifest are read at once, then both bases' configs.
	var oldDesc *remote.Descriptor
	var oldErr error
	var wg sync.WaitGroup
	wg.Go(func() { oldDesc, oldErr = remote.Get(oldRef, r.opts...) })
	cf, err := img.ConfigFile()
	wg.Wait()
	if err != nil {
		return nil, build.RegistryTransient(err)
	}
	if platform == nil && cf.OS != "" {
		platform = &v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant, OSVersion: cf.OSVersion}
	}
	err = oldErr
	if build.IsNotFound(err) {
		return nil, notApplicable("the old base %s is gone", oldRef)
	}
	if err != nil {
		return nil, build.RegistryTransient(fmt.Errorf("reading old base %s: %w", oldRef, err))
	}
	var oldImg v1.Image
	if oldDesc.MediaType.IsIndex() {
		// The annotation named the index: take the image's platform.
		oidx, err := oldDesc.ImageIndex()
		if err != nil {
			return nil, build.RegistryTransient(err)
		}
		if oldImg, _, err = platformImage(oidx, platform); err != nil {
			return nil, err
		}
		if oldImg == nil {
			return nil, notApplicable("the old base index %s has no image for the image's platform", oldRef)
		}
	} else if oldImg, err = oldDesc.Image(); err != nil {
		return nil, build.RegistryTransient(err)
	}
	newImg, newDigest, err := r.newBaseFor(platform)
	if err != nil {
		return nil, err
	}
	var oldCf *v1.ConfigFile
	wg.Go(func() { oldCf, oldErr = oldImg.ConfigFile() })
	newCf, newErr := newImg.ConfigFile()
	wg.Wait()

	layers, err := img.Layers()
	if err != nil {
		return nil, build.RegistryTransient(err)
	}
	oldLayers, err := oldImg.Layers()
	if err != nil {
		return nil, build.RegistryTransient(err)
	}
	newLayers, err := newImg.Layers()
	if err != nil {
		return nil, build.RegistryTransient(err)
	}
	if len(oldLayers) > len(layers) {
		return nil, notApplicable("the image has %d layers, fewer than its old base's %d", len(layers), len(oldLayers))
	}
	for i, l := range oldLayers {
		od, err := l.Digest()
		if err != nil {
			return nil, build.RegistryTransient(err)
		}
		id, err := layers[i].Digest()
		if err != nil {
			return nil, build.RegistryTransient(err)
		}
		if od != id {
			return nil, notApplicable("layer %d of the image is %s, not the old base's %s", i, id, od)
		}
	}
	if err := cmp.Or(oldErr, newErr); err != nil {
		return nil, build.RegistryTransient(err)
	}

	// History: the image's entries above the old base's.
	top := layers[len(oldLayers):]
	var topHist []v1.History
	switch {
	case len(cf.History) == 0:
	case len(oldCf.History) <= len(cf.History) && nonEmpty(cf.History[:len(oldCf.History)]) == len(oldLayers) &&
		nonEmpty(cf.History[len(oldCf.History):]) == len(top):
		topHist = cf.History[len(oldCf.History):]
	default:
		return nil, notApplicable("the image's history does not start with its old base's")
	}
	newHist := newCf.History
	if len(cf.History) > 0 && nonEmpty(newHist) != len(newLayers) {
		newHist = make([]v1.History, len(newLayers)) // a base without history
	}
	if len(cf.History) == 0 && len(newHist) > 0 {
		topHist = make([]v1.History, len(top))
	}
	var adds []mutate.Addendum
	addAll := func(hist []v1.History, ls []v1.Layer) {
		k := 0
		for _, h := range hist {
			a := mutate.Addendum{History: h}
			if !h.EmptyLayer {
				a.Layer = ls[k]
				k++
			}
			adds = append(adds, a)
		}
		for ; k < len(ls); k++ {
			adds = append(adds, mutate.Addendum{Layer: ls[k]})
		}
	}
	addAll(newHist, newLayers)
	addAll(topHist, top)

	mt, err := img.MediaType()
	if err != nil {
		return nil, build.RegistryTransient(err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, build.RegistryTransient(err)
	}
	start := mutate.ConfigMediaType(mutate.MediaType(empty.Image, mt), m.Config.MediaType)
	out, err := mutate.Append(start, adds...)
	if err != nil {
		return nil, err
	}
	outCf, err := out.ConfigFile()
	if err != nil {
		return nil, err
	}
	outCf = outCf.DeepCopy()
	outCf.Config = mergeConfig(cf.Config, oldCf.Config, newCf.Config)
	outCf.Created = cf.Created
	outCf.Author = cf.Author
	pick := func(img, old, nw string) string {
		if img == old {
			return nw
		}
		return img
	}
	outCf.OS = pick(cf.OS, oldCf.OS, newCf.OS)
	outCf.Architecture = pick(cf.Architecture, oldCf.Architecture, newCf.Architecture)
	outCf.Variant = pick(cf.Variant, oldCf.Variant, newCf.Variant)
	outCf.OSVersion = pick(cf.OSVersion, oldCf.OSVersion, newCf.OSVersion)
	if reflect.DeepEqual(cf.OSFeatures, oldCf.OSFeatures) {
		outCf.OSFeatures = slices.Clone(newCf.OSFeatures)
	} else {
		outCf.OSFeatures = slices.Clone(cf.OSFeatures)
	}
	if out, err = mutate.ConfigFile(out, outCf); err != nil {
		return nil, err
	}
	newAnn := maps.Clone(ann)
	if newAnn == nil {
		newAnn = map[string]string{}
	}
	newAnn[build.AnnotationBaseDigest] = newDigest
	out = mutate.Annotations(out, newAnn).(v1.Image)

	pl := "image"
	if platform != nil {
		pl = build.PlatformString(*platform)
	}
	fmt.Fprintf(r.log, "%s: %d old base layers -> %d new base layers, %d own layers kept\n", pl, len(oldLayers), len(newLayers), len(top))
	return out, nil
}
