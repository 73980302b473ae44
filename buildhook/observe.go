package buildhook

import (
	"time"

	"kiln/buildhook/build"
)

// Counts returns how many builds are queued and running now (for gauges).
func (s *Service) Counts() (queued, running int) { return s.queue.Counts() }

// buildDone tells ServiceOptions.OnBuildDone, if set, that a build ended.
func (s *Service) buildDone(job *build.Job, result string, ran time.Duration) {
	if s.opts.OnBuildDone != nil {
		s.opts.OnBuildDone(job.Rule.Name, result, ran)
	}
}

// sinceStarted is how long r's build ran until end; zero if it never
// started (it failed before run, or its record could not be read).
func sinceStarted(r *Record, end time.Time) time.Duration {
	if r.Started == nil {
		return 0
	}
	return end.Sub(*r.Started)
}

// StatusChange is a build queued, started or ended: its record as saved,
// and the tags its rule moves (which a success has moved to Record.Result).
type StatusChange struct {
	Record Record
	Tags   []build.ImageRef
}

// statusChanged tells ServiceOptions.OnStatus, if set, of r (nil: the
// record could not be read, and there is nothing to tell).
func (s *Service) statusChanged(job *build.Job, r *Record) {
	if s.opts.OnStatus == nil || r == nil {
		return
	}
	s.opts.OnStatus(StatusChange{Record: *r, Tags: job.Rule.Tags})
}
