package auth

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// users are the entries of an htpasswd file.
type users struct {
	hashes map[string][]byte // bcrypt hash by user name
	// dummy is checked against for unknown names so that they cost as
	// much as the costliest entry: a wrong name and a wrong password take
	// the same time. Made on first use: bcrypt is slow by design.
	dummy func() []byte
}

// parseHtpasswd reads an htpasswd file. Only bcrypt entries count (what
// `htpasswd -B` writes); other hash types are skipped with a warning that
// names the line, never the hash. A user listed twice is a warning and
// the last line wins (ignored or not), as in an edited file the last
// line is the newest. A line without "user:hash" makes the whole file bad.
func parseHtpasswd(content []byte, path string, logger *slog.Logger) (users, error) {
	hashes := map[string][]byte{}
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(content))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, hash, ok := strings.Cut(line, ":")
		if !ok || name == "" || hash == "" {
			return users{}, fmt.Errorf("%s line %d: want user:bcrypt-hash", path, n)
		}
		if seen[name] {
			logger.Warn("htpasswd: user listed again; this later line replaces the earlier one",
				slog.String("file", path), slog.Int("line", n), slog.String("user", name))
			delete(hashes, name)
		}
		seen[name] = true
		// bcrypt.Cost parses the whole $2a$/$2b$/$2y$ header, so MD5
		// ($apr1$), SHA ({SHA}), crypt and plain text all fail here.
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			logger.Warn("htpasswd: line ignored: not a bcrypt hash (make one with htpasswd -B)",
				slog.String("file", path), slog.Int("line", n), slog.String("user", name))
			continue
		}
		hashes[name] = []byte(hash)
	}
	if err := sc.Err(); err != nil {
		return users{}, fmt.Errorf("%s: %w", path, err)
	}
	return users{hashes: hashes, dummy: dummyHash(hashes)}, nil
}

// dummyHash makes, when first called, a hash of a random password at the
// highest cost among hashes (bcrypt's default when there are none).
func dummyHash(hashes map[string][]byte) func() []byte {
	cost := 0
	for _, h := range hashes {
		c, _ := bcrypt.Cost(h)
		cost = max(cost, c)
	}
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	return sync.OnceValue(func() []byte {
		h, _ := bcrypt.GenerateFromPassword([]byte(rand.Text()), cost)
		return h
	})
}

// htpasswdFile holds the users of an htpasswd file and re-reads it when
// its size or modification time changes, checking at most once a second.
type htpasswdFile struct {
	path    string
	logger  *slog.Logger
	current atomic.Pointer[users]
	// reloaded is called after every successful re-read (cache flush).
	reloaded func()
	now      func() time.Time

	mu        sync.Mutex // held by the one request that checks the file
	lastCheck time.Time
	size      int64
	mtime     time.Time
}

func openHtpasswd(path string, logger *slog.Logger, reloaded func()) (*htpasswdFile, error) {
	f := &htpasswdFile{path: path, logger: logger, reloaded: reloaded, now: time.Now}
	if err := f.load(); err != nil {
		return nil, err
	}
	if len(f.current.Load().hashes) == 0 {
		logger.Warn("htpasswd: no bcrypt users; only anonymous access (if enabled) works", slog.String("file", path))
	}
	return f, nil
}

// load reads the file and, if it parses, makes its users current.
func (f *htpasswdFile) load() error {
	st, err := os.Stat(f.path)
	if err != nil {
		return err
	}
	content, err := os.ReadFile(f.path)
	if err != nil {
		return err
	}
	u, err := parseHtpasswd(content, f.path, f.logger)
	if err != nil {
		return err
	}
	f.current.Store(&u)
	f.size, f.mtime = st.Size(), st.ModTime()
	return nil
}

// users returns the current users, first re-reading the file if it
// changed. Requests arriving while another checks use the current users
// rather than wait.
func (f *htpasswdFile) users() users {
	if f.mu.TryLock() {
		f.maybeReload()
		f.mu.Unlock()
	}
	return *f.current.Load()
}

func (f *htpasswdFile) maybeReload() {
	now := f.now()
	if now.Sub(f.lastCheck) < time.Second {
		return
	}
	f.lastCheck = now
	st, err := os.Stat(f.path)
	if err != nil {
		f.logger.Warn("htpasswd: cannot stat; keeping the users already loaded", slog.String("file", f.path), slog.Any("err", err))
		return
	}
	if st.Size() == f.size && st.ModTime().Equal(f.mtime) {
		return
	}
	if err := f.load(); err != nil {
		// Remember what was seen so a bad file is reported once, not on
		// every check; the next edit triggers another attempt.
		f.size, f.mtime = st.Size(), st.ModTime()
		f.logger.Error("htpasswd: reload failed; keeping the users already loaded", slog.String("file", f.path), slog.Any("err", err))
		return
	}
	f.logger.Info("htpasswd reloaded", slog.String("file", f.path), slog.Int("users", len(f.current.Load().hashes)))
	if f.reloaded != nil {
		f.reloaded()
	}
}
