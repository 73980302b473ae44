// Package ui serves kiln's web pages (repositories and tags, builds with
// live logs, the rebuild graph, storage), rendered on the server from
// embedded templates and assets.
package ui
