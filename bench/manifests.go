package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
)

const ociManifest = "application/vnd.oci.image.manifest.v1+json"

// manifestRepo is a repository holding a small config and layer, and
// (when tag is set) a manifest over them under tag.
type manifestRepo struct {
	repo          string
	config, layer *blob
	tag           string
	body          []byte
	digest        digest.Digest
}

// imageRepo pushes a small image (config and 4 KiB layer) to a new
// repository, untimed, for the manifest figures; tag "" pushes the blobs
// only.
func (r *runner) imageRepo(ctx context.Context, name, tag string) (*manifestRepo, error) {
	m := &manifestRepo{repo: r.repo(name), tag: tag}
	m.config = blobOf([]byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"comment":"` + r.prefix + `"}`))
	small, err := newBlobSet(4096)
	if err != nil {
		return nil, err
	}
	if m.layer, err = small.next(); err != nil {
		return nil, err
	}
	for _, b := range []*blob{m.config, m.layer} {
		if err := r.pushWhole(ctx, m.repo, b); err != nil {
			return nil, err
		}
	}
	m.body = m.manifest(nil)
	m.digest = digest.FromBytes(m.body)
	if tag != "" {
		if err := r.putManifest(ctx, m.repo, m.tag, m.body, m.digest); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// manifest returns an OCI image manifest over m's config and layer, with
// annotations that make it unique.
func (m *manifestRepo) manifest(annotations map[string]string) []byte {
	type desc struct {
		MediaType string        `json:"mediaType"`
		Digest    digest.Digest `json:"digest"`
		Size      int64         `json:"size"`
	}
	b, _ := json.Marshal(struct {
		SchemaVersion int               `json:"schemaVersion"`
		MediaType     string            `json:"mediaType"`
		Config        desc              `json:"config"`
		Layers        []desc            `json:"layers"`
		Annotations   map[string]string `json:"annotations,omitempty"`
	}{2, ociManifest,
		desc{"application/vnd.oci.image.config.v1+json", m.config.digest, m.config.size()},
		[]desc{{"application/vnd.oci.image.layer.v1.tar", m.layer.digest, m.layer.size()}},
		annotations})
	return b
}

func (r *runner) putManifest(ctx context.Context, repo, tag string, body []byte, d digest.Digest) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, r.url("/v2/"+repo+"/manifests/"+tag), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", ociManifest)
	resp, err := r.client.Do(req)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated {
		return statusError(req, resp, http.StatusCreated)
	}
	drain(resp)
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != d.String() {
		return fmt.Errorf("PUT %s: Docker-Content-Digest %s, want %s", req.URL.Path, got, d)
	}
	return nil
}

// manifestGet runs Clients keep-alive clients GETting one manifest by tag
// for Duration, checking every answer's digest, and reports req/s, p50
// and p99.
func (r *runner) manifestGet(ctx context.Context) error {
	if r.manifest == nil {
		m, err := r.imageRepo(ctx, "manifests", "latest")
		if err != nil {
			return err
		}
		r.manifest = m
	}
	m := r.manifest
	target := r.url("/v2/" + m.repo + "/manifests/" + m.tag)
	var want [sha256.Size]byte
	if _, err := hex.Decode(want[:], []byte(m.digest.Encoded())); err != nil {
		return err
	}
	get := func(ctx context.Context, buf *bytes.Buffer) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Accept", ociManifest)
		resp, err := r.client.Do(req)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return statusError(req, resp, http.StatusOK)
		}
		buf.Reset()
		_, err = buf.ReadFrom(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if sha256.Sum256(buf.Bytes()) != want {
			return fmt.Errorf("GET %s: body's digest is not %s", req.URL.Path, m.digest)
		}
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg      sync.WaitGroup
		ready   sync.WaitGroup
		startCh = make(chan struct{})
		stop    atomic.Bool
		mu      sync.Mutex
		lat     []time.Duration
		first   error
		ok      atomic.Int64
	)
	fail := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
		}
		mu.Unlock()
		cancel()
	}
	ready.Add(r.cfg.Clients)
	for range r.cfg.Clients {
		wg.Go(func() {
			var buf bytes.Buffer
			// Warm up: open the connection and fill caches, untimed.
			for range 5 {
				if err := get(ctx, &buf); err != nil {
					ready.Done()
					fail(err)
					return
				}
			}
			ready.Done()
			<-startCh
			mine := make([]time.Duration, 0, 4096)
			for !stop.Load() {
				t := time.Now()
				if err := get(ctx, &buf); err != nil {
					if !stop.Load() {
						fail(err)
					}
					break
				}
				mine = append(mine, time.Since(t))
			}
			ok.Add(int64(len(mine)))
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	ready.Wait()
	start := time.Now()
	close(startCh)
	select {
	case <-time.After(r.cfg.Duration):
	case <-ctx.Done():
	}
	stop.Store(true)
	wg.Wait()
	el := time.Since(start)
	if first != nil {
		return first
	}
	r.res.mu.Lock()
	r.res.Verified += int(ok.Load())
	r.res.mu.Unlock()
	slices.Sort(lat)
	r.res.add(Metric{Key: "get_req_s", Name: fmt.Sprintf("manifest GET req/s (%d clients)", r.cfg.Clients), Unit: "req/s", Value: float64(len(lat)) / el.Seconds(), Higher: true})
	r.res.add(Metric{Key: "get_p50_ms", Name: "manifest GET p50 ms", Unit: "ms", Value: ms(quantile(lat, 0.50))})
	r.res.add(Metric{Key: "get_p99_ms", Name: "manifest GET p99 ms", Unit: "ms", Value: ms(quantile(lat, 0.99))})
	return nil
}

// tagRepo is the repository the PUT figure filled with tags.
type tagRepo struct {
	repo string
	tags []string
}

// manifestPut PUTs Tags distinct manifests to new tags of one repository,
// one after another, and reports tags/s, p50, and the p50 of the first and
// last tenth (a cost that grows with the repository shows as a gap).
func (r *runner) manifestPut(ctx context.Context) error {
	lat, tr, err := r.fillTags(ctx)
	if err != nil {
		return err
	}
	var total time.Duration
	for _, l := range lat {
		total += l
	}
	tenth := max(len(lat)/10, 1)
	firsts, lasts := slices.Clone(lat[:tenth]), slices.Clone(lat[len(lat)-tenth:])
	slices.Sort(firsts)
	slices.Sort(lasts)
	all := slices.Clone(lat)
	slices.Sort(all)
	r.tagged = tr
	r.res.add(Metric{Key: "put_tags_s", Name: fmt.Sprintf("manifest PUT to a new tag, %d tags: tags/s", len(lat)), Unit: "tags/s", Value: float64(len(lat)) / total.Seconds(), Higher: true})
	r.res.add(Metric{Key: "put_p50_ms", Name: "manifest PUT p50 ms", Unit: "ms", Value: ms(quantile(all, 0.5))})
	r.res.add(Metric{Key: "put_p99_ms", Name: "manifest PUT p99 ms", Unit: "ms", Value: ms(quantile(all, 0.99))})
	r.res.add(Metric{Key: "put_p50_first_ms", Name: "manifest PUT p50 ms, first 10% of tags", Unit: "ms", Value: ms(quantile(firsts, 0.5))})
	r.res.add(Metric{Key: "put_p50_last_ms", Name: "manifest PUT p50 ms, last 10% of tags", Unit: "ms", Value: ms(quantile(lasts, 0.5))})
	return nil
}

// fillTags creates Tags tags in a new repository, each on a manifest of
// its own, and returns each PUT's latency in order.
func (r *runner) fillTags(ctx context.Context) ([]time.Duration, *tagRepo, error) {
	m, err := r.imageRepo(ctx, "tags", "")
	if err != nil {
		return nil, nil, err
	}
	n := r.cfg.Tags
	tr := &tagRepo{repo: m.repo, tags: make([]string, n)}
	bodies := make([][]byte, n)
	digests := make([]digest.Digest, n)
	for i := range n {
		tr.tags[i] = fmt.Sprintf("t%05d", i)
		bodies[i] = m.manifest(map[string]string{"org.kiln.bench.tag": tr.tags[i]})
		digests[i] = digest.FromBytes(bodies[i])
	}
	lat := make([]time.Duration, n)
	for i := range n {
		t := time.Now()
		if err := r.putManifest(ctx, m.repo, tr.tags[i], bodies[i], digests[i]); err != nil {
			return nil, nil, err
		}
		lat[i] = time.Since(t)
	}
	r.res.Verified += n
	return lat, tr, nil
}

// tagsList GETs the tag list of the repository with Tags tags
// TagsListRuns times (following Link pages if the registry paginates),
// checks the count, and reports the median.
func (r *runner) tagsList(ctx context.Context) error {
	if r.tagged == nil {
		_, tr, err := r.fillTags(ctx)
		if err != nil {
			return err
		}
		r.tagged = tr
	}
	tr := r.tagged
	lat := make([]time.Duration, 0, r.cfg.TagsListRuns)
	var buf bytes.Buffer
	for i := -1; i < r.cfg.TagsListRuns; i++ { // i == -1: warm-up
		t := time.Now()
		var pages [][]byte
		next := r.url("/v2/" + tr.repo + "/tags/list")
		for next != "" {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, next, nil)
			if err != nil {
				return err
			}
			resp, err := r.client.Do(req)
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK {
				return statusError(req, resp, http.StatusOK)
			}
			buf.Reset()
			_, err = io.Copy(&buf, resp.Body)
			resp.Body.Close()
			if err != nil {
				return err
			}
			pages = append(pages, bytes.Clone(buf.Bytes()))
			next = ""
			if link := nextLink(resp.Header.Get("Link")); link != "" {
				if next, err = r.resolve(link); err != nil {
					return err
				}
			}
		}
		el := time.Since(t)
		var got []string
		for _, p := range pages {
			var body struct {
				Tags []string `json:"tags"`
			}
			if err := json.Unmarshal(p, &body); err != nil {
				return fmt.Errorf("tags/list: %w", err)
			}
			got = append(got, body.Tags...)
		}
		if len(got) != len(tr.tags) {
			return fmt.Errorf("tags/list of %s: %d tags, want %d", tr.repo, len(got), len(tr.tags))
		}
		if i >= 0 {
			lat = append(lat, el)
		}
	}
	slices.Sort(lat)
	r.res.add(Metric{Key: "tags_list_ms", Name: fmt.Sprintf("tags/list of %d tags ms (median of %d)", len(tr.tags), len(lat)), Unit: "ms", Value: ms(quantile(lat, 0.5))})
	return nil
}

// nextLink extracts the URL of a Link: <...>; rel="next" header.
func nextLink(h string) string {
	if h == "" {
		return ""
	}
	i, j := bytes.IndexByte([]byte(h), '<'), bytes.IndexByte([]byte(h), '>')
	if i < 0 || j < i {
		return ""
	}
	return h[i+1 : j]
}

// quantile returns the q-quantile of sorted durations (nearest rank).
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }
