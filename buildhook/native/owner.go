package native

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
)

// maxIDFile bounds what resolving a user or group name reads of
// /etc/passwd or /etc/group: far more than real ones hold, and a base
// whose file is larger (a sparse file of gigabytes costs a few bytes in a
// layer) is refused.
const maxIDFile = 4 << 20

// parseOwner reads --chown=user[:group] (or a USER) against the stage's
// /etc/passwd and /etc/group when names are used. A numeric user without
// group gets the same number as group, like BuildKit.
func parseOwner(ctx context.Context, spec string, view *fsView, spool *spoolFile) (*userGroup, error) {
	user, group, hasGroup := strings.Cut(spec, ":")
	o := &userGroup{}
	var passwd, groups []byte
	load := func(file string, into *[]byte) error {
		if *into != nil {
			return nil
		}
		b, err := view.readFile(ctx, spool, file, maxIDFile)
		if errors.Is(err, fs.ErrNotExist) {
			*into = []byte{}
			return nil
		}
		*into = b
		return err
	}
	lookup := func(data []byte, name string) (id, gid int, ok bool) {
		for line := range strings.Lines(string(data)) {
			line = strings.TrimSuffix(line, "\n")
			f := strings.Split(line, ":")
			if len(f) >= 3 && f[0] == name {
				id, err := strconv.Atoi(f[2])
				if err != nil {
					return 0, 0, false
				}
				g := -1
				if len(f) >= 4 {
					if v, err := strconv.Atoi(f[3]); err == nil {
						g = v
					}
				}
				return id, g, true
			}
		}
		return 0, 0, false
	}
	if n, err := strconv.Atoi(user); err == nil {
		o.uid, o.gid = n, n
	} else {
		if err := load("/etc/passwd", &passwd); err != nil {
			return nil, err
		}
		id, g, ok := lookup(passwd, user)
		if !ok {
			return nil, fmt.Errorf("user %q not found in /etc/passwd", user)
		}
		o.uid = id
		if g >= 0 {
			o.gid = g
		}
	}
	if hasGroup {
		if n, err := strconv.Atoi(group); err == nil {
			o.gid = n
		} else {
			if err := load("/etc/group", &groups); err != nil {
				return nil, err
			}
			id, _, ok := lookup(groups, group)
			if !ok {
				return nil, fmt.Errorf("group %q not found in /etc/group", group)
			}
			o.gid = id
		}
	}
	return o, nil
}
