package config

import (
	"strings"
	"testing"
	"time"
)

func TestRetentionParses(t *testing.T) {
	t.Parallel()
	cfg, err := Parse([]byte(`
retention:
  interval: 24h
  policies:
    - repositories: "team/*"
      tags: "v*"
      keep_last: 10
      max_unused: 720h
      untagged_after: 168h
`), "test.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	want := RetentionPolicy{Repositories: "team/*", Tags: "v*", KeepLast: 10, MaxUnused: 720 * time.Hour, UntaggedAfter: 168 * time.Hour}
	if cfg.Retention.Interval != 24*time.Hour || len(cfg.Retention.Policies) != 1 || cfg.Retention.Policies[0] != want {
		t.Fatalf("retention = %+v", cfg.Retention)
	}
}

func TestRetentionValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		yaml, key string
	}{
		{"interval: -1s", "retention.interval"},
		{"policies: [{keep_last: 1}]", "retention.policies[0].repositories"},
		{"policies: [{repositories: 'a/[', keep_last: 1}]", "retention.policies[0].repositories"},
		{"policies: [{repositories: 'a//b', keep_last: 1}]", "retention.policies[0].repositories"},
		{"policies: [{repositories: a, tags: '[', keep_last: 1}]", "retention.policies[0].tags"},
		{"policies: [{repositories: a, tags: 'x/y', keep_last: 1}]", "retention.policies[0].tags"},
		{"policies: [{repositories: a, keep_last: -1}]", "retention.policies[0].keep_last"},
		{"policies: [{repositories: a, max_unused: -1h}]", "retention.policies[0].max_unused"},
		{"policies: [{repositories: a, untagged_after: 1m}]", "retention.policies[0].untagged_after"},
		{"policies: [{repositories: a}]", "retention.policies[0]: deletes nothing"},
	} {
		cfg, err := Parse([]byte("retention:\n  "+tc.yaml+"\n"), "test.yml")
		if err != nil {
			t.Fatalf("%s: %v", tc.yaml, err)
		}
		err = cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s: error %v, want one naming %s", tc.yaml, err, tc.key)
		}
	}
}

func TestRetentionIntervalNamesKey(t *testing.T) {
	t.Parallel()
	_, err := Parse([]byte("retention:\n  interval: daily\n"), "test.yml")
	if err == nil || !strings.Contains(err.Error(), "retention.interval") {
		t.Fatalf("err = %v", err)
	}
}
