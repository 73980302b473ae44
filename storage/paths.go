package storage

import (
	"path"

	"github.com/opencontainers/go-digest"
)

const (
	blobsRoot   = "/blobs"
	reposRoot   = "/repositories"
	uploadsRoot = "/uploads"
)

func blobPath(d digest.Digest) string {
	hex := d.Encoded()
	return path.Join(blobsRoot, string(d.Algorithm()), hex[:2], hex)
}

func repoPath(repo string) string { return path.Join(reposRoot, repo) }

func layerLinkPath(repo string, d digest.Digest) string {
	return path.Join(reposRoot, repo, "_layers", string(d.Algorithm()), d.Encoded())
}

func manifestLinkPath(repo string, d digest.Digest) string {
	return path.Join(reposRoot, repo, "_manifests", string(d.Algorithm()), d.Encoded())
}

func tagsPath(repo string) string { return path.Join(reposRoot, repo, "_tags") }

func tagPath(repo, tag string) string { return path.Join(reposRoot, repo, "_tags", tag) }

func referrersPath(repo string, subject digest.Digest) string {
	return path.Join(reposRoot, repo, "_referrers", string(subject.Algorithm()), subject.Encoded())
}

func referrerPath(repo string, subject, referrer digest.Digest) string {
	return path.Join(referrersPath(repo, subject), string(referrer.Algorithm())+"-"+referrer.Encoded())
}

func uploadDataPath(id string) string  { return path.Join(uploadsRoot, id, "data") }
func uploadStatePath(id string) string { return path.Join(uploadsRoot, id, "state") }
