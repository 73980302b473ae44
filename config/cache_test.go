package config

import "testing"

func TestCacheSizes(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]Size{
		"0": {}, "1048576": {Bytes: 1 << 20}, "512MiB": {Bytes: 512 << 20}, "10GB": {Bytes: 10e9},
		"2 GiB": {Bytes: 2 << 30}, "20%": {Percent: 20}, "2.5%": {Percent: 2.5},
	} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "120%", "10XB", "lots", "99999999999TiB"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %+v, want an error", in, got)
		}
	}
	if got := (Size{Percent: 20}).Of(1000); got != 200 {
		t.Errorf("20%% of 1000 = %d", got)
	}

	cfg, err := Parse([]byte("cache:\n  max_size: 50GiB\n  min_free: \"5%\"\n  max_unused: 720h\n"), "test")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Cache.MaxSize.Bytes != 50<<30 || cfg.Cache.MinFree.Percent != 5 || !cfg.Cache.Enabled() {
		t.Errorf("cache %+v", cfg.Cache)
	}
	if err := cfg.Validate(); err != nil {
		t.Error(err)
	}
	for _, doc := range []string{
		"cache:\n  max_size: lots\n",
		"cache:\n  max_size: 1GiB\n  check_interval: 0s\n",
		"storage:\n  driver: inmemory\ncache:\n  max_size: \"10%\"\n",
	} {
		cfg, err := Parse([]byte(doc), "test")
		if err == nil {
			err = cfg.Validate()
		}
		if err == nil {
			t.Errorf("%q: no error", doc)
		}
	}
}
