// Package config holds kiln's configuration schema, its embedded default,
// the environment overrides and validation; cmd/kiln applies flags between
// Read and Validate.
package config

import (
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// DefaultYAML is the default configuration. The repository's config.yml is a
// byte-identical copy (a test checks it): go:embed cannot reach the parent
// directory, so the canonical file lives here.
//
//go:embed default.yml
var DefaultYAML []byte

// DefaultPath is the file Load reads when given no path, if it exists.
const DefaultPath = "config.yml"

// Environment variables Load applies over the file.
const (
	EnvAddr = "KILN_ADDR" // http.addr
	EnvData = "KILN_DATA" // storage.filesystem.root

	EnvS3AccessKey = "KILN_S3_ACCESS_KEY" // storage.s3.accesskey
	EnvS3SecretKey = "KILN_S3_SECRET_KEY" // storage.s3.secretkey
)

// Storage drivers.
const (
	DriverFilesystem = "filesystem"
	DriverInMemory   = "inmemory"
	DriverS3         = "s3"
)

// Config is the whole configuration file.
type Config struct {
	Version int     `yaml:"version"`
	HTTP    HTTP    `yaml:"http"`
	Storage Storage `yaml:"storage"`
	Log     Log     `yaml:"log"`
	Auth    Auth    `yaml:"auth"`
	Limits  Limits  `yaml:"limits"`

	Registry  Registry   `yaml:"registry"`
	Proxy     []Upstream `yaml:"proxy"`
	Cache     Cache      `yaml:"cache"`
	Buildhook Buildhook  `yaml:"buildhook"`
	Builds    []Build    `yaml:"builds"`
	Retention Retention  `yaml:"retention"`
	Cluster   Cluster    `yaml:"cluster"`

	Notifications Notifications `yaml:"notifications"`

	// Source says where the configuration came from: a file path or
	// "embedded default". It is not part of the file.
	Source string `yaml:"-"`
}

// HTTP configures the listener.
type HTTP struct {
	Addr            string        `yaml:"addr"`
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// Timeouts that keep slow or stalled clients from holding the server.
	// There is no overall request timeout: blob transfers can take hours.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	IdleTimeout       time.Duration `yaml:"idle_timeout"`
	StallTimeout      time.Duration `yaml:"stall_timeout"`
	TLS               TLS           `yaml:"tls"`
}

// Storage configures where content lives.
type Storage struct {
	Driver     string     `yaml:"driver"`
	Filesystem Filesystem `yaml:"filesystem"`
	S3         S3         `yaml:"s3"`
	// Redirect lets blob GETs answer with a redirect to the backend (a
	// presigned S3 URL) when the driver can hand out URLs.
	Redirect bool    `yaml:"redirect"`
	Delete   Delete  `yaml:"delete"`
	Uploads  Uploads `yaml:"uploads"`
	GC       GC      `yaml:"gc"`
}

// S3 configures the S3 driver (distribution v3's s3-aws).
type S3 struct {
	Endpoint      string `yaml:"endpoint"` // e.g. http://127.0.0.1:9000; empty means AWS
	Region        string `yaml:"region"`
	Bucket        string `yaml:"bucket"`
	AccessKey     string `yaml:"accesskey"` // or $KILN_S3_ACCESS_KEY
	SecretKey     string `yaml:"secretkey"` // or $KILN_S3_SECRET_KEY
	PathStyle     bool   `yaml:"path_style"`
	Insecure      bool   `yaml:"insecure"` // plain HTTP to the endpoint
	RootDirectory string `yaml:"root"`     // key prefix inside the bucket
	ChunkSize     int64  `yaml:"chunksize"`
	// Timeout bounds each metadata request (not blob streams or copies).
	Timeout time.Duration `yaml:"timeout"`
}

// GC configures garbage collection.
type GC struct {
	Interval       time.Duration `yaml:"interval"`        // 0: only on demand
	Grace          time.Duration `yaml:"grace"`           // blobs younger than this are never swept
	DeleteUntagged bool          `yaml:"delete_untagged"` // also delete manifests no tag reaches
}

// Filesystem configures the filesystem driver.
type Filesystem struct {
	Root string `yaml:"root"`
}

// Delete configures the DELETE endpoints.
type Delete struct {
	Enabled bool `yaml:"enabled"`
}

// Uploads configures upload session housekeeping.
type Uploads struct {
	Expiry        time.Duration `yaml:"expiry"`
	PurgeInterval time.Duration `yaml:"purge_interval"`
}

// Log configures the process logger.
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
	// Requests says which requests get an access line: per-request lines
	// can drown everything else.
	Requests string `yaml:"requests"`
}

// log.requests values.
const (
	LogRequestsAll    = "all"
	LogRequestsErrors = "errors" // responses with status 400 or above
	LogRequestsNone   = "none"
)

// logLevels maps log.level values to slog levels.
var logLevels = map[string]slog.Level{
	"debug": slog.LevelDebug,
	"info":  slog.LevelInfo,
	"warn":  slog.LevelWarn,
	"error": slog.LevelError,
}

// SlogLevel returns the slog level of l.Level; info when unknown (Validate
// rejects unknown levels).
func (l Log) SlogLevel() slog.Level {
	if lv, ok := logLevels[l.Level]; ok {
		return lv
	}
	return slog.LevelInfo
}

// DefaultSource is Config.Source when no file was read.
const DefaultSource = "embedded default"

// Default returns the embedded default configuration.
func Default() (*Config, error) {
	cfg := &Config{}
	if err := decode(DefaultYAML, cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", DefaultSource, err)
	}
	cfg.Source = DefaultSource
	return cfg, nil
}

// Parse decodes data over the embedded default, so keys data leaves out keep
// their default values. name labels errors and becomes Config.Source.
// Parse neither applies the environment nor validates.
func Parse(data []byte, name string) (*Config, error) {
	cfg, err := Default()
	if err != nil {
		return nil, err
	}
	if err := decode(data, cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	cfg.Source = name
	return cfg, nil
}

// durationKeys lists every duration in the schema. They are checked on the
// syntax tree before decoding because the decoder's own duration errors name
// neither the key nor the line.
var durationKeys = []string{
	"http.shutdown_timeout",
	"http.read_header_timeout",
	"http.idle_timeout",
	"http.stall_timeout",
	"storage.s3.timeout",
	"storage.uploads.expiry",
	"storage.uploads.purge_interval",
	"storage.gc.interval",
	"storage.gc.grace",
	"cache.max_unused",
	"cache.check_interval",
	"buildhook.window",
	"buildhook.timeout",
	"buildhook.records.max_age",
	"retention.interval",
	"cluster.heartbeat",
	"cluster.lease",
	"notifications.timeout",
	"notifications.min_backoff",
	"notifications.max_backoff",
}

// decode strictly decodes YAML over cfg: unknown keys are errors, so typos
// don't pass silently. Errors carry the line and a source excerpt.
func decode(data []byte, cfg *Config) error {
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		return errors.New(yaml.FormatError(err, false, true))
	}
	if len(f.Docs) > 1 {
		return errors.New("more than one YAML document")
	}
	// An empty or null document would zero cfg: treat it as "no keys set".
	if len(f.Docs) == 0 || f.Docs[0].Body == nil || f.Docs[0].Body.Type() == ast.NullType {
		return nil
	}
	for _, key := range durationKeys {
		if err := checkDuration(f, key); err != nil {
			return err
		}
	}
	if err := yaml.NodeToValue(f.Docs[0].Body, cfg, yaml.Strict()); err != nil {
		return errors.New(yaml.FormatError(err, false, true))
	}
	cfg.applyBuildDefaults()
	cfg.applyProxyDefaults()
	cfg.applyNotificationDefaults()
	return nil
}

// checkDuration reports a value at key that is not a Go duration string.
func checkDuration(f *ast.File, key string) error {
	p, err := yaml.PathString("$." + key)
	if err != nil {
		return err
	}
	n, err := p.FilterFile(f)
	if err != nil || n == nil || n.Type() == ast.NullType {
		return nil // absent: the default stays
	}
	line := n.GetToken().Position.Line
	s, ok := n.(*ast.StringNode)
	if !ok {
		return fmt.Errorf("line %d: %s: %s is not a duration string such as 30s or 1h", line, key, n)
	}
	if _, err := time.ParseDuration(s.Value); err != nil {
		return fmt.Errorf("line %d: %s: %q is not a duration such as 30s or 1h", line, key, s.Value)
	}
	return nil
}

// Load reads the configuration at path over the embedded default, applies
// the environment and validates. path "" means ./config.yml when it exists,
// else the embedded default.
func Load(path string) (*Config, error) {
	cfg, err := Read(path)
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Read is Load without validation, for callers that override keys from
// flags first and then call Validate: a bad environment value a flag
// replaces is then no error.
func Read(path string) (*Config, error) {
	cfg, err := read(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg.ApplyEnv(os.LookupEnv)
	if err := cfg.resolveSecrets(os.LookupEnv); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := cfg.resolvePostgres(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}

// read parses the file Load chose, or the default when there is none.
func read(path string) (*Config, error) {
	explicit := path != ""
	if !explicit {
		path = DefaultPath
	}
	data, err := os.ReadFile(path)
	if err != nil {
		if !explicit && errors.Is(err, os.ErrNotExist) {
			return Default()
		}
		return nil, err
	}
	return Parse(data, path)
}

// ApplyEnv sets the keys that have an environment variable from lookup
// (os.LookupEnv in Load). Empty values are ignored.
func (c *Config) ApplyEnv(lookup func(string) (string, bool)) {
	if v, ok := lookup(EnvAddr); ok && v != "" {
		c.HTTP.Addr = v
	}
	if v, ok := lookup(EnvData); ok && v != "" {
		c.Storage.Filesystem.Root = v
	}
	// S3 credentials are better kept out of config files.
	if v, ok := lookup(EnvS3AccessKey); ok && v != "" {
		c.Storage.S3.AccessKey = v
	}
	if v, ok := lookup(EnvS3SecretKey); ok && v != "" {
		c.Storage.S3.SecretKey = v
	}
}

// Validate reports every invalid key, each error naming its key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("config: %s: %s", key, fmt.Sprintf(format, args...)))
	}

	if c.Version != 1 {
		bad("version", "unsupported version %d (want 1)", c.Version)
	}

	if _, port, err := net.SplitHostPort(c.HTTP.Addr); err != nil {
		bad("http.addr", "%q is not host:port: %v", c.HTTP.Addr, err)
	} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		bad("http.addr", "%q: port %q is not a number in 0-65535", c.HTTP.Addr, port)
	}
	positive(bad, "http.shutdown_timeout", c.HTTP.ShutdownTimeout)

	switch c.Storage.Driver {
	case DriverFilesystem:
		if c.Storage.Filesystem.Root == "" {
			bad("storage.filesystem.root", "must be set for the filesystem driver")
		}
	case DriverInMemory:
	case DriverS3:
		if c.Storage.S3.Bucket == "" {
			bad("storage.s3.bucket", "must be set for the s3 driver")
		}
		if c.Storage.S3.Region == "" {
			bad("storage.s3.region", "must be set for the s3 driver")
		}
		positive(bad, "storage.s3.timeout", c.Storage.S3.Timeout)
	case "":
		bad("storage.driver", "must be set (filesystem, s3 or inmemory)")
	default:
		bad("storage.driver", "unsupported driver %q (want filesystem, s3 or inmemory)", c.Storage.Driver)
	}
	if c.Storage.GC.Interval < 0 {
		bad("storage.gc.interval", "must not be negative")
	}
	if c.Storage.GC.Grace <= 0 {
		bad("storage.gc.grace", "must be a positive duration")
	}
	positive(bad, "storage.uploads.expiry", c.Storage.Uploads.Expiry)
	positive(bad, "storage.uploads.purge_interval", c.Storage.Uploads.PurgeInterval)

	if _, ok := logLevels[c.Log.Level]; !ok {
		bad("log.level", "unknown level %q (want debug, info, warn or error)", c.Log.Level)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		bad("log.format", "unknown format %q (want text or json)", c.Log.Format)
	}
	switch c.Log.Requests {
	case LogRequestsAll, LogRequestsErrors, LogRequestsNone:
	default:
		bad("log.requests", "unknown value %q (want all, errors or none)", c.Log.Requests)
	}
	c.validateOps(bad)
	c.validateBuilds(bad)
	c.validateProxy(bad)
	c.validateCache(bad)
	c.validateRetention(bad)
	c.validateCluster(bad)
	c.validateNotifications(bad)
	return errors.Join(errs...)
}

// positive reports d at key unless it is a positive duration.
func positive(bad func(key, format string, args ...any), key string, d time.Duration) {
	if d <= 0 {
		bad(key, "must be a positive duration, got %v", d)
	}
}
