// Package buildhook rebuilds images when their base tags move: it reads
// build rules and their Dockerfiles, keeps the base→derived graph, queues
// and coalesces triggers, runs builders (native, docker, buildah, rebase),
// and records every build and its log in the store. With autorebase it
// also adopts images pushed with base annotations naming one of its tags
// and rebases them when that tag moves, with no rule (autorebase.go).
package buildhook
