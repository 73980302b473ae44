package native

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// layerWriter writes the planned entries as a deterministic tar
// (sorted, fixed times, no user names), gzipped, into a file of the
// build's temp directory and hands it to go-containerregistry as a layer.
// The layer is read back from that file whenever it is needed: nothing of
// it stays in memory.
type layerWriter struct {
	dir    string
	mtime  time.Time
	seq    int
	budget *diskBudget // counts the tar's bytes, before compression
}

// key identifies a plan's content, to reuse one layer object across
// platforms.
func planKey(entries []*planEntry, mt types.MediaType) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n", mt)
	for _, e := range entries {
		id := ""
		if e.content != nil {
			id = e.content.id
		}
		fmt.Fprintf(h, "%q %c %o %d %d %d %q %q\n", e.name, e.typ, e.mode, e.uid, e.gid, e.size, e.link, id)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func sorted(p *copyPlan) []*planEntry {
	entries := make([]*planEntry, 0, len(p.entries))
	for _, e := range p.entries {
		entries = append(entries, e)
	}
	slices.SortFunc(entries, func(a, b *planEntry) int { return strings.Compare(a.name, b.name) })
	return entries
}

func (w *layerWriter) layer(ctx context.Context, entries []*planEntry, mt types.MediaType) (v1.Layer, error) {
	w.seq++
	file := filepath.Join(w.dir, "layer-"+strconv.Itoa(w.seq)+".tar.gz")
	f, err := os.Create(file)
	if err != nil {
		return nil, err
	}
	// The level and header go-containerregistry would use to compress it:
	// the same bytes, so the same digests, as before layers were gzipped
	// here.
	zw, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	err = func() error {
		for _, e := range entries {
			if err := ctx.Err(); err != nil {
				return err
			}
			// A header, and the content as its size says.
			cost := int64(512)
			if e.typ == tar.TypeReg {
				cost += e.size
			}
			if err := w.budget.reserve("/"+e.name, cost); err != nil {
				return err
			}
			h := &tar.Header{
				Name:     e.name,
				Typeflag: e.typ,
				Mode:     e.mode,
				Uid:      e.uid,
				Gid:      e.gid,
				ModTime:  w.mtime,
				Linkname: e.link,
			}
			if e.typ == tar.TypeDir {
				h.Name += "/"
			}
			if e.typ == tar.TypeReg {
				h.Size = e.size
			}
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			if e.typ != tar.TypeReg {
				continue
			}
			rc, err := e.content.open()
			if err != nil {
				return err
			}
			n, err := io.Copy(tw, rc)
			rc.Close()
			if err != nil {
				return fmt.Errorf("/%s: %w", e.name, err)
			}
			if n != e.size {
				return fmt.Errorf("/%s changed size while it was copied", e.name)
			}
		}
		if err := tw.Close(); err != nil {
			return err
		}
		return zw.Close()
	}()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return os.Open(file) },
		tarball.WithMediaType(mt))
}
