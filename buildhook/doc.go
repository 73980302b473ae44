// Package buildhook rebuilds images when their base tags move: it reads
// build rules and their Dockerfiles, keeps the base→derived graph, queues
// and coalesces triggers, runs builders (native, docker, buildah, rebase),
// and records every build and its log in the store.
package buildhook
