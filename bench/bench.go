package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Figures, in the order they run. Config.Only selects among them.
const (
	FigPush    = "push"    // monolithic push MB/s
	FigChunked = "chunked" // chunked push MB/s
	FigPull    = "pull"    // single pull MB/s
	FigPull8   = "pull8"   // concurrent pulls MB/s
	FigGet     = "get"     // manifest GET req/s, p50, p99
	FigPut     = "put"     // manifest PUT to new tags
	FigTags    = "tags"    // tags/list
	FigRSS     = "rss"     // peak RSS of the server process
)

// AllFigures lists every figure in run order.
var AllFigures = []string{FigPush, FigChunked, FigPull, FigPull8, FigGet, FigPut, FigTags, FigRSS}

// Config says what to measure and how hard.
type Config struct {
	// URL is the registry's base URL, e.g. http://127.0.0.1:5000.
	URL string
	// BlobSize is the size of each pushed and pulled blob.
	BlobSize int64
	// Pushes is how many blobs each push figure uploads, one after another
	// (default 3). Single pulls read the same number of blobs.
	Pushes int
	// Pulls is how many pulls run at once for FigPull8 (default 8).
	Pulls int
	// ChunkSize is the PATCH size of chunked pushes (default 8 MiB).
	ChunkSize int64
	// Duration is how long the manifest GET load runs (default 5s).
	Duration time.Duration
	// Clients is the number of keep-alive clients of the GET load (default 32).
	Clients int
	// Tags is how many new tags the PUT figure creates (default 2000).
	Tags int
	// TagsListRuns is how many tags/list requests the median is over
	// (default 21).
	TagsListRuns int
	// PID is the server's process id for FigRSS (Linux /proc); 0 skips it.
	PID int
	// Only restricts the run to these figures; empty means all.
	Only []string
	// Progress, when set, receives a line as each figure starts.
	Progress io.Writer
}

func (c *Config) defaults() error {
	if c.URL == "" {
		return fmt.Errorf("no registry URL")
	}
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("registry URL %q: want http(s)://host[:port]", c.URL)
	}
	c.URL = strings.TrimSuffix(c.URL, "/")
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.BlobSize <= 0 {
		c.BlobSize = 256 << 20
	}
	if c.ChunkSize <= 0 {
		c.ChunkSize = 8 << 20
	}
	if c.Duration <= 0 {
		c.Duration = 5 * time.Second
	}
	def(&c.Pushes, 3)
	def(&c.Pulls, 8)
	def(&c.Clients, 32)
	def(&c.Tags, 2000)
	def(&c.TagsListRuns, 21)
	for _, f := range c.Only {
		if !slices.Contains(AllFigures, f) {
			return fmt.Errorf("unknown figure %q (figures: %s)", f, strings.Join(AllFigures, ","))
		}
	}
	return nil
}

func (c *Config) wants(fig string) bool {
	return len(c.Only) == 0 || slices.Contains(c.Only, fig)
}

// runner is the state of one run: blobs pushed so far are pulled later,
// tags put are listed later.
type runner struct {
	cfg    Config
	client *http.Client
	prefix string // unique per run: every repository is under it
	res    *Result

	blobs      *blobSet
	monolithic string // "post" (POST ?digest=) or "post+put"
	pushed     []pushedBlob
	manifest   *manifestRepo // the GET figure's repository
	tagged     *tagRepo      // the PUT figure's repository
}

type pushedBlob struct {
	repo string
	b    *blob
}

// Run measures the registry at cfg.URL and returns the figures. Each run
// uses repositories of its own, so runs against one registry do not
// interfere; it does not delete what it pushed.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	var id [4]byte
	rand.Read(id[:])
	r := &runner{
		cfg:    cfg,
		client: newClient(cfg.Clients + cfg.Pulls),
		prefix: "kiln-bench/" + time.Now().UTC().Format("20060102t150405") + "-" + hex.EncodeToString(id[:]),
		res:    &Result{URL: cfg.URL, BlobSize: cfg.BlobSize, Started: time.Now().UTC()},
	}
	defer r.client.CloseIdleConnections()
	if err := r.ping(ctx); err != nil {
		return nil, err
	}
	steps := []struct {
		fig string
		run func(context.Context) error
	}{
		{FigPush, r.pushMonolithic},
		{FigChunked, r.pushChunked},
		{FigPull, r.pullSingle},
		{FigPull8, r.pullConcurrent},
		{FigGet, r.manifestGet},
		{FigPut, r.manifestPut},
		{FigTags, r.tagsList},
		{FigRSS, r.peakRSS},
	}
	for _, s := range steps {
		if !cfg.wants(s.fig) {
			continue
		}
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "bench: %s\n", s.fig)
		}
		if err := s.run(ctx); err != nil {
			return r.res, fmt.Errorf("%s: %w", s.fig, err)
		}
	}
	r.res.Elapsed = time.Since(r.res.Started).Round(time.Millisecond).String()
	return r.res, nil
}

// newClient returns a client whose keep-alive pool holds conns connections
// to the registry, with large buffers and no proxy or compression.
func newClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns + 8,
		MaxIdleConnsPerHost: conns + 8,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		WriteBufferSize:     256 << 10,
		ReadBufferSize:      256 << 10,
	}}
}

func (r *runner) repo(name string) string { return r.prefix + "/" + name }

func (r *runner) url(path string) string { return r.cfg.URL + path }

// resolve turns a Location header into an absolute URL.
func (r *runner) resolve(loc string) (string, error) {
	if loc == "" {
		return "", fmt.Errorf("no Location header")
	}
	base, err := url.Parse(r.cfg.URL + "/")
	if err != nil {
		return "", err
	}
	u, err := base.Parse(loc)
	if err != nil {
		return "", fmt.Errorf("location %q: %w", loc, err)
	}
	return u.String(), nil
}

func (r *runner) ping(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url("/v2/"), nil)
	if err != nil {
		return err
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return err
	}
	drain(resp)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s (is it a registry without authentication?)", req.URL, resp.Status)
	}
	return nil
}

// drain reads what is left of a body so the connection is reused.
func drain(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
}

// statusError describes an unexpected answer, with the start of its body.
func statusError(req *http.Request, resp *http.Response, want int) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	return fmt.Errorf("%s %s: %s, want %d: %s", req.Method, req.URL.Path, resp.Status, want, strings.TrimSpace(string(b)))
}

// addQuery appends k=v to a URL that may already have a query.
func addQuery(u, k, v string) string {
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	return u + sep + url.QueryEscape(k) + "=" + url.QueryEscape(v)
}
