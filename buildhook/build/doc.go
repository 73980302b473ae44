// Package build is the contract shared by buildhook's orchestration and
// its builders: a build Job of a Rule, the ImageRef it names, the Builder
// interface, how a builder reaches this registry (SelfAccess,
// RemoteOptions, IsNotFound), which failures are worth retrying
// (Transient), the provenance annotations kiln writes and reads back, and
// what the builders that read images themselves share (IsImageType,
// PlatformMatch, PlatformString, CheckConfigSize).
package build
