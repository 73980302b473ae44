//go:build !linux

package storage

import "github.com/google/uuid"

// bootID names this process: without a boot id, sessions are checked
// after every restart as after a reboot.
func bootID() string { return "process-" + uuid.NewString() }
