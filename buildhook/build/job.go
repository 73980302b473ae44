package build

import (
	"context"
	"io"
	"net/http"

	"github.com/opencontainers/go-digest"
)

// ImageRef names a tag in this registry.
type ImageRef struct {
	Repo string
	Tag  string
}

func (r ImageRef) String() string { return r.Repo + ":" + r.Tag }

// Rule is a build rule, resolved: absolute context, parsed bases.
type Rule struct {
	Name       string
	Context    string            // absolute directory
	Dockerfile string            // path relative to Context
	Network    string            // none (also "") | default: what a RUN step reaches
	Tags       []ImageRef        // what the rule produces
	Args       map[string]string // build arguments
	Builder    string            // auto | native | docker | buildah
	Strategy   string            // build | rebase
	// Bases are the images of this registry the Dockerfile's FROM lines
	// name (every stage); a move of any of them triggers the rule.
	Bases []ImageRef
	// FinalBase is the base of the last stage: the image's
	// org.opencontainers.image.base.name. Nil when it is not in this registry.
	FinalBase *ImageRef
	// Auto marks a rule kiln made for an adopted image (buildhook.autorebase):
	// named "auto:<repo:tag>", strategy rebase, no Dockerfile to fall back to.
	Auto    bool
	OnBuild bool
	// Unwatched are the images the Dockerfile names that kiln cannot watch
	// (neither this registry nor a mirrored upstream), each with why.
	Unwatched []Unwatched
}

// Trigger says why a build runs.
type Trigger struct {
	Ref    ImageRef      // the base tag that moved (zero for a manual trigger)
	Digest digest.Digest // what it moved to
	Reason string        // "push", "manual", "resume"
	// Restarts is, for a resumed build, how many times kiln stopped while
	// it ran (see Record.Restarts).
	Restarts int
	// Force builds even when the inputs equal those of the rule's last
	// successful build, whose image the tags still name.
	Force bool
}

// Job is one build of a rule.
type Job struct {
	ID      string
	Rule    *Rule
	Trigger Trigger
	// Registry is kiln's own address on loopback (host:port): builders pull
	// bases from it and push results to it over HTTP, like any client.
	Registry string
	// Staging is where a builder outside kiln's process pushes its
	// result (an InProcess builder pushes only the blobs, to its
	// repository); kiln then adds the provenance annotations and moves the
	// rule's tags, so a failed or partial build never touches them.
	Staging ImageRef
	// Self is how builders log in to and trust Registry.
	Self SelfAccess
}

// SelfAccess is what builders need to reach kiln when it requires a login
// or serves HTTPS. The zero value is plain HTTP without credentials.
type SelfAccess struct {
	// Username and Password are kiln's internal builder credential.
	Username, Password string
	// Transport trusts kiln's own certificate (HTTPS); nil for plain HTTP.
	Transport http.RoundTripper
	// CertDir holds kiln's certificate as its only *.crt (buildah's
	// --cert-dir); "" for plain HTTP.
	CertDir string
}

// Builder turns a Job into an image pushed to job.Staging.
type Builder interface {
	// Name is the builder's config name: native, docker, buildah or rebase.
	Name() string
	// Build builds and pushes to job.Staging, streaming progress to log,
	// and returns the digest it pushed (an image manifest or an index).
	Build(ctx context.Context, job *Job, log io.Writer) (digest.Digest, error)
}
