package storage

import (
	"path"
	"strings"

	"github.com/opencontainers/go-digest"
)

// The store's layout: every path kiln writes, inside the driver's root
// (the filesystem store's directory, the S3 bucket's prefix). This file
// alone builds and parses them; nothing outside storage sees a path.
//
//	/blobs/<alg>/<hex[0:2]>/<hex>                      blob bytes, written only after the digest was verified
//	/repositories/<name>/                              a repository; <name> may have several components
//	    _layers/<alg>/<hex>                            the repository may read this blob (holds the digest)
//	    _manifests/<alg>/<hex>                         the repository holds this manifest (holds its media type)
//	    _tags/<tag>                                    the tag's current manifest digest
//	    _referrers/<alg>/<subject-hex>/<alg>-<hex>     descriptor (JSON) of a manifest whose subject is that digest
//	    _proxied                                       a marker: the pull-through cache filled this repository
//	    _pulls                                         when each manifest was last pulled (JSON: digest -> Unix milliseconds), see PullLog
//	/uploads/<id>/data                                 bytes received so far by an upload session
//	/uploads/<id>/state                                the session's JSON state: repository, size, hash state
//	/builds/<id>/record                                a build's record (JSON), see Store.PutBuildRecord
//	/builds/<id>/log                                   the build's log
//	/autorebase/<repo>/_tags/<tag>                     an image adopted for automatic rebasing (JSON)
//	/events/<id>                                       an event not yet delivered to every webhook (the outbox); ids sort in order
//	/trash/<alg>/<hex>                                 a blob a GC sweep took out, until it is sure nothing claimed it
//	/trash/_repositories/<name>/...                    repository files a sweep took out (links, referrer entries)
//	/trash/_clock                                      a probe whose modification time is the store's clock (S3)
//	/quarantine/<alg>/<hex>                            a corrupt blob fsck --repair moved aside; nothing reads it
//	/quarantine/stray/<path>                           a file fsck --repair found where it did not belong
//
// Repository names never have a component starting with "_", so the
// underscore entries cannot collide with nested repository names.
const (
	blobsRoot      = "/blobs"
	reposRoot      = "/repositories"
	uploadsRoot    = "/uploads"
	buildsRoot     = "/builds"
	adoptionsRoot  = "/autorebase"
	eventsRoot     = "/events"
	trashRoot      = "/trash"
	quarantineRoot = "/quarantine"
)

// What a repository directory holds besides nested repositories.
const (
	layersDir    = "_layers"
	manifestsDir = "_manifests"
	tagsDir      = "_tags"
	referrersDir = "_referrers"
	proxiedFile  = "_proxied"
	pullsFile    = "_pulls"
)

// repoEntries are the underscore names a repository may hold, and whether
// each is a directory.
var repoEntries = map[string]bool{layersDir: true, manifestsDir: true, tagsDir: true, referrersDir: true, proxiedFile: false, pullsFile: false}

func blobPath(d digest.Digest) string {
	hex := d.Encoded()
	return path.Join(blobsRoot, string(d.Algorithm()), hex[:2], hex)
}

func repoPath(repo string) string { return path.Join(reposRoot, repo) }

func layerLinkPath(repo string, d digest.Digest) string {
	return path.Join(reposRoot, repo, layersDir, string(d.Algorithm()), d.Encoded())
}

func manifestLinkPath(repo string, d digest.Digest) string {
	return path.Join(reposRoot, repo, manifestsDir, string(d.Algorithm()), d.Encoded())
}

func tagsPath(repo string) string { return path.Join(reposRoot, repo, tagsDir) }

func tagPath(repo, tag string) string { return path.Join(reposRoot, repo, tagsDir, tag) }

func referrersPath(repo string, subject digest.Digest) string {
	return path.Join(reposRoot, repo, referrersDir, string(subject.Algorithm()), subject.Encoded())
}

func referrerPath(repo string, subject, referrer digest.Digest) string {
	return path.Join(referrersPath(repo, subject), string(referrer.Algorithm())+"-"+referrer.Encoded())
}

func proxiedPath(repo string) string { return path.Join(reposRoot, repo, proxiedFile) }

func pullsPath(repo string) string { return path.Join(reposRoot, repo, pullsFile) }

func uploadPath(id string) string      { return path.Join(uploadsRoot, id) }
func uploadDataPath(id string) string  { return path.Join(uploadsRoot, id, "data") }
func uploadStatePath(id string) string { return path.Join(uploadsRoot, id, "state") }

func buildPath(id string) string       { return path.Join(buildsRoot, id) }
func buildRecordPath(id string) string { return path.Join(buildsRoot, id, "record") }
func buildLogPath(id string) string    { return path.Join(buildsRoot, id, "log") }

func eventPath(id string) string { return path.Join(eventsRoot, id) }

// parseEventPath returns the id of an outbox entry /events/<id>; false for
// anything else (such as a PutContent temporary file).
func parseEventPath(p string) (string, bool) {
	id, ok := strings.CutPrefix(p, eventsRoot+"/")
	if !ok || !validEventID(id) {
		return "", false
	}
	return id, true
}

func adoptionPath(repo, tag string) string { return path.Join(adoptionsRoot, repo, tagsDir, tag) }

// parseAdoptionPath splits /autorebase/<repo>/_tags/<tag>.
func parseAdoptionPath(p string) (repo, tag string, ok bool) {
	rel, ok := strings.CutPrefix(p, adoptionsRoot+"/")
	if !ok {
		return "", "", false
	}
	repo, tag, ok = strings.Cut(rel, "/"+tagsDir+"/")
	if !ok || repo == "" || tag == "" || strings.Contains(tag, "/") || adoptionPath(repo, tag) != p {
		return "", "", false
	}
	return repo, tag, true
}

func trashBlobPath(d digest.Digest) string {
	return path.Join(trashRoot, string(d.Algorithm()), d.Encoded())
}

// trashRepoPath is where the repository file p (under /repositories) waits.
func trashRepoPath(p string) string {
	return path.Join(trashRoot, "_repositories", strings.TrimPrefix(p, reposRoot))
}

// trashClockPath is the probe storeClock writes to read the store's time.
func trashClockPath() string { return path.Join(trashRoot, "_clock") }

// parseRepoPath splits p, a path under /repositories, at its first
// underscore component: the repository's name, that component (the kind
// of entry: one of the names above, or another, which is a stray) and the
// components after it. ok is false for a path with no underscore
// component: a repository directory, or a directory of names. repo is ""
// for an underscore name right under /repositories, which is a stray.
func parseRepoPath(p string) (repo, kind string, rest []string, ok bool) {
	parts := strings.Split(strings.TrimPrefix(p, reposRoot+"/"), "/")
	i := 0
	for i < len(parts) && !strings.HasPrefix(parts[i], "_") {
		i++
	}
	if i == len(parts) {
		return "", "", nil, false
	}
	return strings.Join(parts[:i], "/"), parts[i], parts[i+1:], true
}

// parseBlobPath returns the digest of a blob path /blobs/<alg>/<xx>/<hex>.
func parseBlobPath(p string) (digest.Digest, bool) {
	parts := strings.Split(strings.TrimPrefix(p, blobsRoot+"/"), "/")
	if len(parts) != 3 || len(parts[2]) < 2 || parts[1] != parts[2][:2] {
		return "", false
	}
	return pathDigest(parts[0], parts[2])
}

// pathDigest makes a digest of a path's algorithm and hex components;
// false for anything else (such as a PutContent temporary file).
func pathDigest(alg, hex string) (digest.Digest, bool) {
	d := digest.NewDigestFromEncoded(digest.Algorithm(alg), hex)
	return d, d.Validate() == nil
}
