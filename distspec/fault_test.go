package distspec

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
)

func TestStorageFault(t *testing.T) {
	secret := "/var/lib/kiln/secret-bucket-name"
	for _, tc := range []struct {
		err    error
		status int
	}{
		{&fs.PathError{Op: "write", Path: secret, Err: syscall.ENOSPC}, http.StatusInsufficientStorage},
		{fmt.Errorf("commit: %w", &os.LinkError{Op: "rename", Old: secret, New: secret, Err: syscall.EDQUOT}), http.StatusInsufficientStorage},
		{&fs.PathError{Op: "open", Path: secret, Err: syscall.EROFS}, http.StatusServiceUnavailable},
		{fmt.Errorf("s3 %s: %w", secret, context.DeadlineExceeded), http.StatusServiceUnavailable},
		{&fs.PathError{Op: "read", Path: secret, Err: syscall.EIO}, http.StatusInternalServerError},
		{errors.New("s3: AccessDenied on " + secret), http.StatusInternalServerError},
	} {
		e := StorageFault(tc.err)
		if e.Status != tc.status || e.Code != "UNKNOWN" {
			t.Errorf("%v: %d %s, want %d UNKNOWN", tc.err, e.Status, e.Code, tc.status)
		}
		if e.Message == "" || e.Message == Internal.Message {
			t.Errorf("%v: message %q says nothing about the fault", tc.err, e.Message)
		}
		if strings.Contains(e.Message, secret) {
			t.Errorf("%v: message leaks the backend's text: %q", tc.err, e.Message)
		}
	}
}
