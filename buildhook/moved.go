package buildhook

import (
	"kiln/buildhook/build"
	"kiln/buildhook/native"
)

// The rebase engine's files still name these helpers as they were called
// before the native builder moved to its own package; they go when the
// rebase engine moves to buildhook/rebase.
var (
	ncIsImageType    = build.IsImageType
	ncPlatformMatch  = build.PlatformMatch
	ncPlatformString = build.PlatformString
)

// NativeBuilder is native.Builder, for the same files.
type NativeBuilder = native.Builder
