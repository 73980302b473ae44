// Package importrules holds no code: its test checks the rules on which
// kiln package may import which, so that a broken rule fails the build's
// tests instead of waiting for a review to notice.
package importrules
