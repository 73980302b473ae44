// Package imagetest builds and serves images for tests: an in-process registry, bases, indexes, build contexts and jobs.
package imagetest
