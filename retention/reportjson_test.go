package retention

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

func TestReportJSONRoundTrip(t *testing.T) {
	t.Parallel()
	in := &Report{DryRun: true, Started: t0, Duration: 35 * time.Millisecond, Repositories: 2,
		Tags:      []Deletion{{Repository: "team/app", Tag: "v1", Digest: digest.Digest("sha256:" + strings.Repeat("a", 64)), Reason: "old", Pushed: t0}},
		Manifests: []Deletion{}, Protected: []Deletion{}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"duration":"35ms"`) || strings.Contains(string(b), "lastPulled") {
		t.Errorf("JSON %s", b)
	}
	out := &Report{}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Errorf("round trip\n%+v\n%+v", in, out)
	}
}
