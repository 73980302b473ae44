// Package build is the contract shared by buildhook's orchestration and
// its builders: a build Job of a Rule, the ImageRef it names, the Builder
// interface, how a builder reaches this registry (SelfAccess,
// RemoteOptions), which failures are worth retrying (Transient) and
// what the builders that read images themselves share (IsImageType,
// PlatformMatch, CheckConfigSize).
package build
