package buildhook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/opencontainers/go-digest"

	"kiln/buildhook/build"
	"kiln/buildhook/rebase"
	"kiln/storage"
)

// One build, as the queue's Run hook runs it.

// run is one build: choose the builder, build to the staging tag, add
// provenance and move the rule's tags.
func (s *Service) run(ctx context.Context, job *build.Job) error {
	job.Registry = s.opts.Registry
	job.Self = s.opts.Self
	job.Staging = build.ImageRef{Repo: job.Rule.Tags[0].Repo, Tag: "kiln-build-" + job.ID}
	started := time.Now().UTC()
	s.statusChanged(job, s.note(job.ID, func(r *Record) {
		r.Status, r.Started = StatusRunning, &started
		if s.opts.Shared != nil {
			r.Instance = s.opts.Shared.Instance
		}
	}))
	log := s.records.OpenLog(ctx, job.ID)
	defer s.records.CloseLog(context.WithoutCancel(ctx), job.ID)

	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	fmt.Fprintf(log, "build %s of rule %s (%s)\n", job.ID, job.Rule.Name, describeTrigger(job.Trigger))

	baseDigest, err := s.baseDigest(ctx, job)
	if err != nil {
		fmt.Fprintf(log, "error: %v\n", err)
		return err
	}
	if job.Rule.Auto && s.auto != nil {
		why, err := s.auto.upToDate(ctx, job, baseDigest)
		if err != nil {
			fmt.Fprintf(log, "error: %v\n", err)
			return err
		}
		if why != "" {
			fmt.Fprintf(log, "nothing to do: %s\n", why)
			return nil
		}
	}
	inputs, err := s.inputsDigest(ctx, job)
	if err != nil {
		fmt.Fprintf(log, "inputs: %v; building anyway\n", err)
		inputs = ""
	} else if inputs != "" {
		s.progress(job.ID, func(r *Record) { r.Inputs = inputs })
		fmt.Fprintf(log, "inputs %s\n", inputs)
		prev, err := s.unchangedSince(ctx, job, inputs)
		switch {
		case err != nil:
			fmt.Fprintf(log, "reading the last build: %v; building anyway\n", err)
		case prev != nil && job.Trigger.Force:
			fmt.Fprintf(log, "the same inputs as build %s; forced, building anyway\n", prev.ID)
		case prev != nil:
			s.progress(job.ID, func(r *Record) { r.Result = prev.Result })
			fmt.Fprintf(log, "unchanged: the same inputs as build %s, whose image %s the tags still name; nothing to do\n", prev.ID, prev.Result)
			return errUnchanged
		}
	}
	out, result, err := s.buildWithRetries(ctx, job, log)
	if err != nil {
		fmt.Fprintf(log, "error: %v\n", err)
		return err
	}
	if err := s.stillClaimed(ctx, job); err != nil {
		fmt.Fprintf(log, "error: %v\n", err)
		return err
	}
	fmt.Fprintf(log, "built %s; adding provenance and tagging\n", result)
	final, err := Finalize(ctx, job, out, baseDigest, inputs, log)
	if err != nil {
		fmt.Fprintf(log, "error: %v\n", err)
		return err
	}
	s.progress(job.ID, func(r *Record) { r.Result = final })
	fmt.Fprintf(log, "done: %s in %s\n", final, time.Since(started).Round(time.Millisecond))
	return nil
}

// stillClaimed checks, in a cluster, that no other instance took the
// build over (this one's claim ran out) before it moves the rule's tags.
func (s *Service) stillClaimed(ctx context.Context, job *build.Job) error {
	if q, ok := s.queue.(*SharedQueue); ok {
		return q.StillClaimed(ctx, job.ID)
	}
	return nil
}

// baseDigest is the digest the final base's tag has as the build starts.
func (s *Service) baseDigest(ctx context.Context, job *build.Job) (digest.Digest, error) {
	fb := job.Rule.FinalBase
	if fb == nil {
		return "", nil
	}
	d, err := s.opts.Store.ResolveTag(ctx, fb.Repo, fb.Tag)
	if errors.Is(err, storage.ErrTagUnknown) {
		return "", fmt.Errorf("base %s is not in the registry", fb)
	}
	return d, err
}

// buildWithRetries runs the rule's builder, retrying transient failures
// with backoff and falling back from rebase to a full build when rebase
// does not apply. It returns what the builder made (see buildWith).
func (s *Service) buildWithRetries(ctx context.Context, job *build.Job, log io.Writer) (*build.Output, digest.Digest, error) {
	var lastErr error
	for attempt := 0; attempt <= s.opts.Retries; attempt++ {
		if attempt > 0 {
			wait := time.Duration(1<<(attempt-1)) * time.Second
			fmt.Fprintf(log, "transient error, retrying in %s (attempt %d of %d)\n", wait, attempt+1, s.opts.Retries+1)
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return nil, "", ctx.Err()
			}
		}
		s.progress(job.ID, func(r *Record) { r.Attempts = attempt + 1 })
		out, d, err := s.buildOnce(ctx, job, log)
		if err == nil || !build.IsTransient(err) {
			return out, d, err
		}
		lastErr = err
	}
	return nil, "", lastErr
}

func (s *Service) buildOnce(ctx context.Context, job *build.Job, log io.Writer) (*build.Output, digest.Digest, error) {
	if job.Rule.Strategy == "rebase" {
		rb := s.builders["rebase"]
		s.progress(job.ID, func(r *Record) { r.Builder = "rebase" })
		fmt.Fprintln(log, "strategy rebase: swapping base layers")
		out, d, err := buildWith(ctx, rb, job, log)
		if !errors.Is(err, rebase.ErrNotApplicable) {
			return out, d, err
		}
		if job.Rule.Auto {
			fmt.Fprintf(log, "rebase does not apply (%v); an adopted image has no Dockerfile to build instead\n", err)
			return nil, "", fmt.Errorf("%w; %s is adopted by autorebase and has no Dockerfile to build instead", err, job.Rule.Tags[0])
		}
		fmt.Fprintf(log, "rebase does not apply (%v); falling back to a full build\n", err)
	}
	if err := s.checkInputs(job.Rule); err != nil {
		return nil, "", err
	}
	b, why, err := s.chooseBuilder(ctx, job.Rule)
	if err != nil {
		return nil, "", err
	}
	s.progress(job.ID, func(r *Record) { r.Builder = b.Name() })
	fmt.Fprintf(log, "builder %s: %s\n", b.Name(), why)
	if b.Name() != "native" {
		if err := s.checkOnBuild(ctx, job); err != nil {
			return nil, "", err
		}
	}
	return buildWith(ctx, b, job, log)
}

// buildWith runs b. A builder in kiln's process hands over what it made,
// unpushed; any other pushes it to job.Staging (the output is nil).
func buildWith(ctx context.Context, b build.Builder, job *build.Job, log io.Writer) (*build.Output, digest.Digest, error) {
	if ip, ok := b.(build.InProcess); ok {
		out, err := ip.BuildOutput(ctx, job, log)
		if err != nil {
			return nil, "", err
		}
		d, err := out.Digest()
		return out, d, err
	}
	d, err := b.Build(ctx, job, log)
	return nil, d, err
}

func describeTrigger(t build.Trigger) string {
	if t.Ref.Repo == "" {
		return t.Reason
	}
	return fmt.Sprintf("%s of %s@%s", t.Reason, t.Ref, t.Digest)
}
