// Package dockerfile is kiln's one Dockerfile front end: BuildKit's parser
// and linter, behind a recover, and BuildKit's expansion of the meta ARGs
// (those before the first FROM). Rule parsing reads a Dockerfile's bases
// with Parse; the native builder reads its instructions with Read and
// expands its FROM lines with the same GlobalArgs.
package dockerfile
