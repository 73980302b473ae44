package imagetest

import (
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// Index makes an OCI index of imgs, each under its config's platform,
// plus an attestation manifest for imgs[0] on platform unknown/unknown,
// as buildx pushes them.
func Index(t testing.TB, imgs ...v1.Image) v1.ImageIndex {
	t.Helper()
	var adds []mutate.IndexAddendum
	for _, img := range imgs {
		p := platform(t, img)
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	d, err := imgs[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	att, err := mutate.AppendLayers(Empty(), Layer(t, map[string]File{"provenance.json": {Content: "{}"}}))
	if err != nil {
		t.Fatal(err)
	}
	att = Configure(t, att, func(cf *v1.ConfigFile) { cf.OS, cf.Architecture = "unknown", "unknown" })
	adds = append(adds, mutate.IndexAddendum{Add: att, Descriptor: v1.Descriptor{
		Platform:    &v1.Platform{OS: "unknown", Architecture: "unknown"},
		Annotations: map[string]string{"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": d.String()},
	}})
	return mutate.AppendManifests(EmptyIndex(), adds...)
}

func platform(t testing.TB, img v1.Image) v1.Platform {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}
}
