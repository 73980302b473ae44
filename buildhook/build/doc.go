// Package build is the contract shared by buildhook's orchestration and
// its builders: a build Job of a Rule, the ImageRef it names, the Builder
// interface, how a builder reaches this registry (SelfAccess,
// RemoteOptions) and which failures are worth retrying (Transient).
package build
