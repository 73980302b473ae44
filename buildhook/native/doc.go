// Package native is kiln's in-process Dockerfile interpreter: Builder
// builds Dockerfiles that run no commands with go-containerregistry, from
// the base images' layers and the build context, and pushes the result's
// blobs, handing the image to Finalize (or, from Build, pushing it to the
// job's staging tag). It reads Dockerfiles through the shared front end
// (buildhook/dockerfile), spools to a locked directory of TMPDIR within a
// disk budget, and knows this registry only through the build contract
// (buildhook/build), never the orchestration.
package native
