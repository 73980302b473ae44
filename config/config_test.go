package config

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The repository's config.yml documents the defaults; it must not drift
// from what the binary embeds.
func TestRootConfigMatchesEmbeddedDefault(t *testing.T) {
	t.Parallel()
	root, err := os.ReadFile("../config.yml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(root, DefaultYAML) {
		t.Fatal("config.yml and config/default.yml differ: edit config/default.yml and copy it to config.yml")
	}
}

// A duration added to the schema but not to durationKeys would get the
// decoder's error, which names neither key nor line.
func TestDurationKeysCoverSchema(t *testing.T) {
	t.Parallel()
	var found []string
	var walk func(reflect.Type, string)
	walk = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("yaml")
			if tag == "" || tag == "-" {
				continue
			}
			switch {
			case f.Type == reflect.TypeFor[time.Duration]():
				found = append(found, prefix+tag)
			case f.Type.Kind() == reflect.Struct:
				walk(f.Type, prefix+tag+".")
			}
		}
	}
	walk(reflect.TypeFor[Config](), "")
	if !reflect.DeepEqual(found, durationKeys) {
		t.Fatalf("duration fields %v, durationKeys %v", found, durationKeys)
	}
}

func TestLoad(t *testing.T) {
	def, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Version: 1,
		HTTP: HTTP{Addr: ":5000", ShutdownTimeout: 30 * time.Second,
			ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second, StallTimeout: 60 * time.Second},
		Storage: Storage{
			Driver:     DriverFilesystem,
			Filesystem: Filesystem{Root: "./data"},
			Delete:     Delete{Enabled: true},
			Uploads:    Uploads{Expiry: 24 * time.Hour, PurgeInterval: time.Hour},
			S3:         S3{Region: "us-east-1", ChunkSize: 10 << 20, Timeout: 30 * time.Second},
			GC:         GC{Grace: time.Hour},
		},
		Log:      Log{Level: "info", Format: "text", Requests: LogRequestsAll},
		Auth:     Auth{Anonymous: AnonymousNone, Realm: "kiln", FailedLoginsPerMinute: 10},
		Limits:   Limits{MaxManifestSize: 4 << 20, MaxConcurrentUploads: 64},
		Registry: Registry{Hostnames: []string{}},
		Buildhook: Buildhook{Concurrency: 2, Timeout: 30 * time.Minute, Retries: 2, Limits: BuildLimits{Memory: 2 << 30, Pids: 1024, Spool: 4 << 30, Log: 4 << 20},
			Records: BuildRecords{Keep: 20, MaxAge: 168 * time.Hour}},
		Builds:        []Build{},
		Proxy:         []Upstream{},
		Cache:         Cache{CheckInterval: 10 * time.Minute},
		Retention:     Retention{Policies: []RetentionPolicy{}},
		Cluster:       Cluster{Heartbeat: 10 * time.Second, Lease: 30 * time.Second},
		Notifications: Notifications{Timeout: 10 * time.Second, MinBackoff: time.Second, MaxBackoff: 5 * time.Minute, Endpoints: []Endpoint{}},
		Source:        DefaultSource,
	}
	if !reflect.DeepEqual(*def, want) {
		t.Fatalf("default config\n got %+v\nwant %+v", *def, want)
	}

	tests := []struct {
		name    string
		file    string // written to a temp file when not empty
		env     map[string]string
		check   func(*testing.T, *Config)
		wantErr []string // substrings of the error; nil means success
	}{
		{
			name: "default",
			check: func(t *testing.T, c *Config) {
				if !reflect.DeepEqual(*c, want) {
					t.Errorf("got %+v, want %+v", *c, want)
				}
			},
		},
		{
			name: "file overrides, other keys keep defaults",
			file: "http:\n  addr: 127.0.0.1:6000\nstorage:\n  driver: inmemory\n  delete:\n    enabled: false\n  uploads:\n    expiry: 90m\nlog:\n  format: json\n",
			check: func(t *testing.T, c *Config) {
				w := want
				w.HTTP.Addr = "127.0.0.1:6000"
				w.Storage.Driver = DriverInMemory
				w.Storage.Delete.Enabled = false
				w.Storage.Uploads.Expiry = 90 * time.Minute
				w.Log.Format = "json"
				w.Source = c.Source
				if !reflect.DeepEqual(*c, w) {
					t.Errorf("got %+v, want %+v", *c, w)
				}
				if !strings.HasSuffix(c.Source, "kiln.yml") {
					t.Errorf("Source = %q, want the file path", c.Source)
				}
			},
		},
		{
			name: "empty file is all defaults",
			file: "# nothing\n",
			check: func(t *testing.T, c *Config) {
				if c.HTTP.Addr != ":5000" || c.Storage.Uploads.Expiry != 24*time.Hour {
					t.Errorf("got %+v", *c)
				}
			},
		},
		{
			name: "env overrides file",
			file: "http:\n  addr: :6000\nstorage:\n  filesystem:\n    root: /from/file\n",
			env:  map[string]string{EnvAddr: "127.0.0.1:7000", EnvData: "/from/env"},
			check: func(t *testing.T, c *Config) {
				if c.HTTP.Addr != "127.0.0.1:7000" || c.Storage.Filesystem.Root != "/from/env" {
					t.Errorf("addr %q root %q", c.HTTP.Addr, c.Storage.Filesystem.Root)
				}
			},
		},
		{
			name: "empty env is ignored",
			env:  map[string]string{EnvAddr: "", EnvData: ""},
			check: func(t *testing.T, c *Config) {
				if c.HTTP.Addr != ":5000" || c.Storage.Filesystem.Root != "./data" {
					t.Errorf("addr %q root %q", c.HTTP.Addr, c.Storage.Filesystem.Root)
				}
			},
		},
		{
			name:    "bad env addr is validated",
			env:     map[string]string{EnvAddr: "localhost"},
			wantErr: []string{"http.addr", "localhost"},
		},
		{
			name:    "unknown key",
			file:    "http:\n  addr: :5000\n  adress: :6000\n",
			wantErr: []string{"kiln.yml", `unknown field "adress"`, "[3:3]"},
		},
		{
			name:    "unknown top-level key",
			file:    "version: 1\nstorge:\n  driver: inmemory\n",
			wantErr: []string{`unknown field "storge"`, "[2:1]"},
		},
		{
			name:    "bad duration",
			file:    "storage:\n  uploads:\n    purge_interval: 10 minutes\n",
			wantErr: []string{"line 3", "storage.uploads.purge_interval", `"10 minutes"`},
		},
		{
			name:    "bare number is not a duration",
			file:    "http:\n  shutdown_timeout: 30\n",
			wantErr: []string{"line 2", "http.shutdown_timeout", "duration"},
		},
		{
			name:    "non-positive duration",
			file:    "http:\n  shutdown_timeout: 0s\n",
			wantErr: []string{"http.shutdown_timeout", "positive"},
		},
		{
			name:    "bad driver",
			file:    "storage:\n  driver: gcs\n",
			wantErr: []string{"storage.driver", `"gcs"`, "filesystem, s3 or inmemory"},
		},
		{
			name:    "s3 needs a bucket",
			file:    "storage:\n  driver: s3\n",
			wantErr: []string{"storage.s3.bucket: must be set"},
		},
		{
			name:    "filesystem needs a root",
			file:    "storage:\n  filesystem:\n    root: \"\"\n",
			wantErr: []string{"storage.filesystem.root"},
		},
		{
			name:    "bad addr",
			file:    "http:\n  addr: \"5000\"\n",
			wantErr: []string{"http.addr", `"5000"`},
		},
		{
			name:    "bad port",
			file:    "http:\n  addr: \":99999\"\n",
			wantErr: []string{"http.addr", "port"},
		},
		{
			name:    "bad log level and format, both reported",
			file:    "log:\n  level: verbose\n  format: xml\n",
			wantErr: []string{"log.level", `"verbose"`, "log.format", `"xml"`},
		},
		{
			name: "log.requests errors",
			file: "log:\n  requests: errors\n",
			check: func(t *testing.T, c *Config) {
				if c.Log.Requests != LogRequestsErrors {
					t.Errorf("log.requests = %q, want %q", c.Log.Requests, LogRequestsErrors)
				}
			},
		},
		{
			name:    "bad log.requests",
			file:    "log:\n  requests: some\n",
			wantErr: []string{"log.requests", `"some"`, "all, errors or none"},
		},
		{
			name:    "bad version",
			file:    "version: 2\n",
			wantErr: []string{"version", "2"},
		},
		{
			name:    "syntax error",
			file:    "http: [\n",
			wantErr: []string{"kiln.yml", "[1:7]"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Clear the environment the process may carry, then set the case's.
			t.Setenv(EnvAddr, "")
			t.Setenv(EnvData, "")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			path := ""
			if tt.file != "" {
				path = filepath.Join(t.TempDir(), "kiln.yml")
				if err := os.WriteFile(path, []byte(tt.file), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			c, err := Load(path)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("Load succeeded with %+v, want error containing %q", *c, tt.wantErr)
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestLoadMissingExplicitFile(t *testing.T) {
	t.Parallel()
	_, err := Load(filepath.Join(t.TempDir(), "nope.yml"))
	if err == nil || !strings.Contains(err.Error(), "nope.yml") {
		t.Fatalf("err = %v, want one naming the missing file", err)
	}
}

// Load("") prefers ./config.yml over the embedded default.
func TestLoadFindsConfigInWorkingDir(t *testing.T) {
	t.Setenv(EnvAddr, "")
	t.Setenv(EnvData, "")
	t.Chdir(t.TempDir())
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if c.Source != DefaultSource {
		t.Fatalf("without ./config.yml Source = %q", c.Source)
	}
	if err := os.WriteFile(DefaultPath, []byte("http:\n  addr: :6001\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err = Load("")
	if err != nil {
		t.Fatal(err)
	}
	if c.Source != DefaultPath || c.HTTP.Addr != ":6001" {
		t.Fatalf("Source %q addr %q, want ./config.yml's", c.Source, c.HTTP.Addr)
	}
}

func TestSlogLevel(t *testing.T) {
	t.Parallel()
	for level := range logLevels {
		if got := (Log{Level: level}).SlogLevel().String(); !strings.EqualFold(got, level) {
			t.Errorf("%s -> %s", level, got)
		}
	}
}
