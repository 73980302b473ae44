package native

import (
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

func (br *buildRun) dispatch(st *stage, c instructions.Command, global []string, stages []*stage) error {
	lex := br.shlex
	expand := func(word string) (string, error) {
		v, _, err := lex.ProcessWord(word, shell.EnvsFromSlice(st.env))
		return v, err
	}
	if _, isArg := c.(*instructions.ArgCommand); !isArg {
		if ex, ok := c.(instructions.SupportsSingleWordExpansion); ok {
			if err := ex.Expand(expand); err != nil {
				return err
			}
		}
	}
	if ex, ok := c.(instructions.SupportsSingleWordExpansionRaw); ok {
		raw := shell.NewLex('\\')
		raw.SkipProcessQuotes = true
		if err := ex.ExpandRaw(func(word string) (string, error) {
			v, _, err := raw.ProcessWord(word, shell.EnvsFromSlice(st.env))
			return v, err
		}); err != nil {
			return err
		}
	}
	conf := &st.cf.Config

	switch c := c.(type) {
	case *instructions.RunCommand:
		return fmt.Errorf("RUN needs a container; use builder docker or buildah")

	case *instructions.ArgCommand:
		var parts []string
		for _, kp := range c.Args {
			val := kp.Value
			if v, ok := br.job.Rule.Args[kp.Key]; ok {
				val = &v
			} else if val != nil {
				v, err := expand(*val)
				if err != nil {
					return err
				}
				val = &v
			} else if v, ok := envGet(global, kp.Key); ok {
				val = &v
			}
			s := kp.Key
			if val != nil {
				st.env = envSet(st.env, kp.Key, *val)
				s += "=" + *val
			}
			parts = append(parts, s)
		}
		st.history("ARG "+strings.Join(parts, " "), nil)

	case *instructions.EnvCommand:
		var b strings.Builder
		b.WriteString("ENV")
		for _, kv := range c.Env {
			conf.Env = envSet(conf.Env, kv.Key, kv.Value)
			st.env = envSet(st.env, kv.Key, kv.Value)
			b.WriteString(" " + kv.Key + "=" + kv.Value)
		}
		st.history(b.String(), nil)

	case *instructions.LabelCommand:
		var b strings.Builder
		b.WriteString("LABEL")
		if conf.Labels == nil {
			conf.Labels = map[string]string{}
		} else {
			conf.Labels = maps.Clone(conf.Labels)
		}
		for _, kv := range c.Labels {
			conf.Labels[kv.Key] = kv.Value
			b.WriteString(" " + kv.Key + "=" + kv.Value)
		}
		st.history(b.String(), nil)

	case *instructions.MaintainerCommand:
		st.cf.Author = c.Maintainer
		st.history("MAINTAINER "+c.Maintainer, nil)

	case *instructions.WorkdirCommand:
		wd := c.Path
		if !path.IsAbs(wd) {
			cur := conf.WorkingDir
			if cur == "" {
				cur = "/"
			}
			wd = path.Join(cur, wd)
		}
		wd = path.Clean(wd)
		conf.WorkingDir = wd
		var layer v1.Layer
		if wd != "/" {
			var err error
			if layer, err = br.workdirLayer(st, wd); err != nil {
				return err
			}
		}
		st.history("WORKDIR "+wd, layer)

	case *instructions.CopyCommand:
		if c.Parents {
			return errors.New("COPY --parents is not supported by the native builder; use builder docker or buildah")
		}
		return br.copy(st, copyArgs{
			cmd: "COPY", from: c.From, sources: c.SourcePaths, contents: c.SourceContents, dest: c.DestPath,
			chown: c.Chown, chmod: c.Chmod, exclude: c.ExcludePatterns,
		}, stages)

	case *instructions.AddCommand:
		for _, s := range c.SourcePaths {
			if strings.Contains(s, "://") || strings.HasPrefix(s, "git@") {
				return fmt.Errorf("ADD %s: remote sources are not supported by the native builder; use builder docker or buildah", s)
			}
		}
		if c.Checksum != "" {
			return errors.New("ADD --checksum is not supported by the native builder; use builder docker or buildah")
		}
		return br.copy(st, copyArgs{
			cmd: "ADD", sources: c.SourcePaths, contents: c.SourceContents, dest: c.DestPath,
			chown: c.Chown, chmod: c.Chmod, exclude: c.ExcludePatterns, isAdd: true, unpack: c.Unpack,
		}, stages)

	case *instructions.UserCommand:
		conf.User = c.User
		st.history("USER "+c.User, nil)

	case *instructions.ExposeCommand:
		var ports []string
		for _, p := range c.Ports {
			words, err := lex.ProcessWords(p, shell.EnvsFromSlice(st.env))
			if err != nil {
				return err
			}
			for _, w := range words {
				ps, err := parsePort(w)
				if err != nil {
					return err
				}
				ports = append(ports, ps...)
			}
		}
		if conf.ExposedPorts == nil {
			conf.ExposedPorts = map[string]struct{}{}
		} else {
			conf.ExposedPorts = maps.Clone(conf.ExposedPorts)
		}
		for _, p := range ports {
			conf.ExposedPorts[p] = struct{}{}
		}
		st.history(fmt.Sprintf("EXPOSE %v", ports), nil)

	case *instructions.VolumeCommand:
		if conf.Volumes == nil {
			conf.Volumes = map[string]struct{}{}
		} else {
			conf.Volumes = maps.Clone(conf.Volumes)
		}
		for _, v := range c.Volumes {
			if v == "" {
				return errors.New("VOLUME specified can not be an empty string")
			}
			conf.Volumes[v] = struct{}{}
		}
		st.history(fmt.Sprintf("VOLUME %v", c.Volumes), nil)

	case *instructions.StopSignalCommand:
		conf.StopSignal = c.Signal
		st.history("STOPSIGNAL "+c.Signal, nil)

	case *instructions.ShellCommand:
		conf.Shell = slices.Clone(c.Shell)
		st.history(fmt.Sprintf("SHELL %v", c.Shell), nil)

	case *instructions.CmdCommand:
		args := st.withShell(c.CmdLine, c.PrependShell)
		conf.Cmd = args
		conf.ArgsEscaped = true
		st.cmdSet = true
		st.history(fmt.Sprintf("CMD %q", args), nil)

	case *instructions.EntrypointCommand:
		args := st.withShell(c.CmdLine, c.PrependShell)
		conf.Entrypoint = args
		if !st.cmdSet {
			conf.Cmd = nil
		}
		st.history(fmt.Sprintf("ENTRYPOINT %q", args), nil)

	case *instructions.HealthCheckCommand:
		h := c.Health
		conf.Healthcheck = &v1.HealthConfig{
			Test: slices.Clone(h.Test), Interval: h.Interval, Timeout: h.Timeout,
			StartPeriod: h.StartPeriod, Retries: h.Retries,
		}
		st.history(fmt.Sprintf("HEALTHCHECK %+v", *conf.Healthcheck), nil)

	case *instructions.OnbuildCommand:
		conf.OnBuild = append(slices.Clone(conf.OnBuild), c.Expression)

	default:
		return fmt.Errorf("%s is not supported by the native builder", strings.ToUpper(c.Name()))
	}
	return nil
}

func (st *stage) withShell(args []string, prependShell bool) []string {
	if !prependShell {
		return slices.Clone(args)
	}
	sh := slices.Clone(st.cf.Config.Shell)
	if len(sh) == 0 {
		if st.cf.OS == "windows" {
			sh = []string{"cmd", "/S", "/C"}
		} else {
			sh = []string{"/bin/sh", "-c"}
		}
	}
	return append(sh, strings.Join(args, " "))
}

// parsePort reads an EXPOSE word: port, port/proto, range/proto (also
// [ip:][hostport:] prefixes, ignored), into "port/proto" entries.
func parsePort(raw string) ([]string, error) {
	p := raw
	if i := strings.LastIndex(p, ":"); i >= 0 {
		p = p[i+1:]
	}
	port, proto, _ := strings.Cut(p, "/")
	if proto == "" {
		proto = "tcp"
	}
	start, end, isRange := strings.Cut(port, "-")
	lo, err := strconv.Atoi(start)
	if err != nil || lo < 0 || lo > 65535 {
		return nil, fmt.Errorf("invalid port: %q", raw)
	}
	hi := lo
	if isRange {
		if hi, err = strconv.Atoi(end); err != nil || hi < lo || hi > 65535 {
			return nil, fmt.Errorf("invalid port range: %q", raw)
		}
	}
	var out []string
	for n := lo; n <= hi; n++ {
		out = append(out, strconv.Itoa(n)+"/"+strings.ToLower(proto))
	}
	return out, nil
}

// workdirLayer creates the working directory when it is missing, owned
// by the USER, like BuildKit; nil when it exists.
func (br *buildRun) workdirLayer(st *stage, wd string) (v1.Layer, error) {
	view, err := st.fs()
	if err != nil {
		return nil, err
	}
	resolved, err := view.resolve(wd, true)
	if err != nil {
		return nil, err
	}
	plan := &copyPlan{target: view}
	uid, gid := 0, 0
	if u := st.cf.Config.User; u != "" {
		o, err := parseOwner(br.ctx, u, view, br.spool)
		if err != nil {
			return nil, fmt.Errorf("WORKDIR %s: %w", wd, err)
		}
		uid, gid = o.uid, o.gid
	}
	if err := plan.mkdirAll(resolved, 0o755, uid, gid); err != nil {
		return nil, err
	}
	if len(plan.entries) == 0 {
		return nil, nil
	}
	return br.commit(st, view, plan)
}
