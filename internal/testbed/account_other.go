//go:build !unix

package testbed

import "os/exec"

// account is a user to run tools as; elsewhere than unix, tools run as
// this process's user.
type account struct{}

func lookupAccount(string) (*account, error) { return nil, nil }

func (*account) apply(*exec.Cmd) {}

func (*account) own(string) error { return nil }
