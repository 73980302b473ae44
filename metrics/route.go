package metrics

import "strings"

// Route names the API endpoint a path belongs to, for metric labels: a
// small fixed set, never the repository name (that would explode the
// series count).
func Route(method, path string) string {
	switch {
	case path == "/v2/" || path == "/v2":
		return "base"
	case path == "/v2/_catalog":
		return "catalog"
	case strings.HasPrefix(path, "/v2/"):
		switch {
		case strings.Contains(path, "/blobs/uploads"):
			return "blob_upload"
		case strings.Contains(path, "/blobs/"):
			return "blob"
		case strings.Contains(path, "/manifests/"):
			return "manifest"
		case strings.HasSuffix(path, "/tags/list"):
			return "tags"
		case strings.Contains(path, "/referrers/"):
			return "referrers"
		}
		return "other"
	case path == "/kiln/v1/gc":
		return "gc"
	case strings.HasPrefix(path, "/kiln/"):
		return "builds"
	case path == "/metrics", path == "/healthz", path == "/readyz":
		return strings.TrimPrefix(path, "/")
	}
	return "other"
}
