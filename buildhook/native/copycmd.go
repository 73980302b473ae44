package native

import (
	"archive/tar"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/patternmatcher"
)

type copyArgs struct {
	cmd      string
	from     string
	sources  []string
	contents []instructions.SourceContent
	dest     string
	chown    string
	chmod    string
	exclude  []string
	isAdd    bool
	unpack   *bool
}

// text is the instruction, expanded, for the history.
func (a copyArgs) text() string {
	parts := []string{a.cmd}
	if a.from != "" {
		parts = append(parts, "--from="+a.from)
	}
	if a.chown != "" {
		parts = append(parts, "--chown="+a.chown)
	}
	if a.chmod != "" {
		parts = append(parts, "--chmod="+a.chmod)
	}
	for _, e := range a.exclude {
		parts = append(parts, "--exclude="+e)
	}
	parts = append(parts, a.sources...)
	for _, c := range a.contents {
		parts = append(parts, "<<"+c.Path)
	}
	parts = append(parts, a.dest)
	return strings.Join(parts, " ")
}

func (br *buildRun) copy(st *stage, a copyArgs, stages []*stage) error {
	view, err := st.fs()
	if err != nil {
		return err
	}
	cp := &copyOp{cmd: a.cmd, sources: a.sources, isAdd: a.isAdd, unpack: a.unpack}
	for _, c := range a.contents {
		cp.contents = append(cp.contents, inlineFile{name: c.Path, data: []byte(c.Data)})
	}

	// Destination, relative to WORKDIR; a trailing slash means a directory.
	dest := a.dest
	dirDest := dest == "" || dest == "." || strings.HasSuffix(dest, "/") || strings.HasSuffix(dest, "/.")
	if !path.IsAbs(dest) {
		wd := st.cf.Config.WorkingDir
		if wd == "" {
			wd = "/"
		}
		dest = path.Join(wd, dest)
	}
	dest = path.Clean(dest)
	if dirDest && dest != "/" {
		dest += "/"
	}
	cp.dest = dest

	if a.chown != "" {
		o, err := parseOwner(br.ctx, a.chown, view, br.spool)
		if err != nil {
			return fmt.Errorf("--chown=%s: %w", a.chown, err)
		}
		cp.chown = o
	}
	if a.chmod != "" {
		m, err := strconv.ParseUint(a.chmod, 8, 32)
		if err != nil || m > 0o7777 {
			return fmt.Errorf("--chmod=%s: the native builder takes octal modes only", a.chmod)
		}
		mode := int64(m)
		cp.chmod = &mode
	}
	if len(a.exclude) > 0 {
		pm, err := patternmatcher.New(a.exclude)
		if err != nil {
			return fmt.Errorf("--exclude: %w", err)
		}
		cp.exclude = pm
	}

	var src copySource = br.context
	var srcView *fsView
	if a.from != "" {
		j, err := br.copyFrom(a.from, st.index)
		if err != nil {
			return err
		}
		if j >= 0 {
			if srcView, err = stages[j].fs(); err != nil {
				return err
			}
			src = &imageSource{view: srcView, name: "stage " + a.from}
		} else {
			img, err := br.image(a.from, st.platform)
			if err != nil {
				return err
			}
			b, err := br.base(img)
			if err != nil {
				return err
			}
			srcView = &fsView{base: b}
			src = &imageSource{view: srcView, name: "image " + a.from}
		}
		cp.fromImage = true
	}

	plan, err := cp.plan(src, view)
	if err != nil {
		return err
	}
	if srcView != nil {
		var pending []string
		for _, e := range plan.entries {
			if e.pending != "" {
				pending = append(pending, e.pending)
			}
		}
		slices.Sort(pending)
		got, err := srcView.fetch(br.ctx, br.spool, pending)
		if err != nil {
			return err
		}
		for _, e := range plan.entries {
			if e.pending != "" {
				if e.content = got[e.pending]; e.content == nil {
					return fmt.Errorf("%s: cannot read /%s", a.cmd, e.pending)
				}
			}
		}
	}
	var layer v1.Layer
	if len(plan.entries) > 0 {
		if layer, err = br.commit(st, view, plan); err != nil {
			return err
		}
	}
	st.history(a.text(), layer)
	return nil
}

// commit turns a plan into a layer (reusing one made for another
// platform from the same entries) and records its entries in view.
func (br *buildRun) commit(st *stage, view *fsView, plan *copyPlan) (v1.Layer, error) {
	entries := sorted(plan)
	key := planKey(entries, st.layerMT)
	br.mu.Lock()
	layer, ok := br.layers[key]
	br.mu.Unlock()
	if !ok {
		var err error
		layer, err = br.writer.layer(br.ctx, entries, st.layerMT)
		if err != nil {
			return nil, err
		}
		br.mu.Lock()
		br.layers[key] = layer
		br.mu.Unlock()
	}
	for _, e := range entries {
		n := &fsNode{typ: e.typ, mode: e.mode, uid: e.uid, gid: e.gid, size: e.size, link: e.link, src: e.content}
		if e.typ == tar.TypeDir {
			if old := view.lookup(e.name); old.isDir() {
				continue
			}
		}
		view.over[e.name] = n
	}
	if d, err := layer.Digest(); err == nil {
		fmt.Fprintf(br.log, "%s  layer %s (%d entries)\n", br.prefix, d, len(entries))
	}
	return layer, nil
}
