package storage

import (
	"os"
	"strings"

	"github.com/google/uuid"
)

// bootID names this boot of the machine: data written but not fsynced
// survives while it stays the same. Without it, each process is a new
// boot (sessions are then checked after every restart).
func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if id := strings.TrimSpace(string(b)); err == nil && id != "" {
		return id
	}
	return "process-" + uuid.NewString()
}
