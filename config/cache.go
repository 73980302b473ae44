package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Cache bounds the pull-through cache's share of the store (see
// storage.Evict): what mirror repositories hold alone, never what a pushed
// or built image also references.
type Cache struct {
	// MaxSize bounds the cache: bytes, or a share of the store's
	// filesystem ("20%"); 0 means no bound.
	MaxSize Size `yaml:"max_size"`
	// MaxUnused evicts cached images not pulled for longer; 0: never.
	MaxUnused time.Duration `yaml:"max_unused"`
	// CheckInterval is how often the cache is measured and evicted.
	CheckInterval time.Duration `yaml:"check_interval"`
	// MinFree evicts at once, and as much as it takes, when the store's
	// filesystem has less free space: before a push would get 507.
	MinFree Size `yaml:"min_free"`
}

// Enabled reports whether the cache has any bound.
func (c Cache) Enabled() bool { return !c.MaxSize.IsZero() || c.MaxUnused > 0 || !c.MinFree.IsZero() }

// Size is a number of bytes ("512MiB", "10GB", 1048576) or a share of a
// filesystem ("20%").
type Size struct {
	Bytes   int64
	Percent float64
}

// IsZero reports whether s is no size at all.
func (s Size) IsZero() bool { return s.Bytes == 0 && s.Percent == 0 }

// Of is s in bytes, a percentage taken of total.
func (s Size) Of(total int64) int64 {
	if s.Percent > 0 {
		return int64(float64(total) * s.Percent / 100)
	}
	return s.Bytes
}

func (s Size) String() string {
	if s.Percent > 0 {
		return strconv.FormatFloat(s.Percent, 'f', -1, 64) + "%"
	}
	return strconv.FormatInt(s.Bytes, 10)
}

var sizeUnits = []struct {
	suffix string
	n      int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
}

// ParseSize reads a Size.
func ParseSize(v string) (Size, error) {
	v = strings.TrimSpace(v)
	if p, ok := strings.CutSuffix(v, "%"); ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || f < 0 || f > 100 {
			return Size{}, fmt.Errorf("%q is not a percentage from 0%% to 100%%", v)
		}
		return Size{Percent: f}, nil
	}
	mult := int64(1)
	for _, u := range sizeUnits {
		if n, ok := strings.CutSuffix(v, u.suffix); ok {
			v, mult = strings.TrimSpace(n), u.n
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return Size{}, fmt.Errorf("%q is not a size such as 512MiB, 10GB or 20%%", v)
	}
	return Size{Bytes: n * mult}, nil
}

// UnmarshalYAML reads a Size from a number or a string.
func (s *Size) UnmarshalYAML(unmarshal func(any) error) error {
	var v any
	if err := unmarshal(&v); err != nil {
		return err
	}
	var err error
	switch v := v.(type) {
	case nil:
		*s = Size{}
	case string:
		*s, err = ParseSize(v)
	case uint64:
		*s, err = ParseSize(strconv.FormatUint(v, 10))
	case int64:
		*s, err = ParseSize(strconv.FormatInt(v, 10))
	case int:
		*s, err = ParseSize(strconv.Itoa(v))
	default:
		err = fmt.Errorf("%v is not a size such as 512MiB, 10GB or 20%%", v)
	}
	return err
}

func (c *Config) validateCache(bad func(key, format string, args ...any)) {
	k := c.Cache
	if k.MaxUnused < 0 {
		bad("cache.max_unused", "must not be negative")
	}
	if k.Enabled() && k.CheckInterval <= 0 {
		bad("cache.check_interval", "must be a positive duration when the cache is bounded")
	}
	if (k.MaxSize.Percent > 0 || k.MinFree.Percent > 0) && c.Storage.Driver != DriverFilesystem {
		bad("cache.max_size", "a percentage needs the filesystem driver (a share of its filesystem); give bytes")
	}
}
