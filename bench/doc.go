// Package bench drives a registry over HTTP and measures it.
package bench
