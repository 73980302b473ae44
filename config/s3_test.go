package config

import (
	"os"
	"path/filepath"
	"testing"
)

func TestS3FromFileAndEnv(t *testing.T) {
	yml := []byte(`version: 1
storage:
  driver: s3
  redirect: true
  s3:
    endpoint: http://127.0.0.1:9000
    bucket: reg
    accesskey: file-access
    secretkey: file-secret
    path_style: true
    insecure: true
    root: /kiln
    chunksize: 5242880
`)
	cfg, err := Parse(yml, "test.yml")
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Storage.S3
	if cfg.Storage.Driver != DriverS3 || !cfg.Storage.Redirect || s.Endpoint != "http://127.0.0.1:9000" ||
		s.Region != "us-east-1" || s.Bucket != "reg" || !s.PathStyle || !s.Insecure ||
		s.RootDirectory != "/kiln" || s.ChunkSize != 5<<20 {
		t.Fatalf("parsed: %+v redirect=%v", s, cfg.Storage.Redirect)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}

	// The environment overrides the file's keys; empty values are ignored.
	env := map[string]string{EnvS3AccessKey: "env-access", EnvS3SecretKey: ""}
	cfg.ApplyEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if cfg.Storage.S3.AccessKey != "env-access" || cfg.Storage.S3.SecretKey != "file-secret" {
		t.Errorf("after env: access %q secret %q", cfg.Storage.S3.AccessKey, cfg.Storage.S3.SecretKey)
	}

	// Read applies the process environment.
	path := filepath.Join(t.TempDir(), "kiln.yml")
	if err := os.WriteFile(path, yml, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvS3AccessKey, "proc-access")
	t.Setenv(EnvS3SecretKey, "proc-secret")
	cfg, err = Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Storage.S3.AccessKey != "proc-access" || cfg.Storage.S3.SecretKey != "proc-secret" {
		t.Errorf("Load: access %q secret %q", cfg.Storage.S3.AccessKey, cfg.Storage.S3.SecretKey)
	}
}

func TestS3NeedsBucket(t *testing.T) {
	t.Parallel()
	cfg, err := Parse([]byte("storage: {driver: s3}\n"), "x.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err == nil {
		t.Error("s3 without a bucket validated")
	}
}
