package config

import (
	"fmt"
	"os"
	"strings"
)

// resolveSecrets fills each upstream's password from its password_file or
// password_env, and each webhook's secret from its secret_file or
// secret_env, so the secret itself need not be in the config file. The
// errors name the key, never the secret.
func (c *Config) resolveSecrets(lookup func(string) (string, bool)) error {
	for i := range c.Proxy {
		u := &c.Proxy[i]
		if err := resolveSecret(fmt.Sprintf("proxy[%d]", i), "password", &u.Password, u.PasswordFile, u.PasswordEnv, lookup); err != nil {
			return err
		}
	}
	for i := range c.Notifications.Endpoints {
		e := &c.Notifications.Endpoints[i]
		if err := resolveSecret(fmt.Sprintf("notifications.endpoints[%d]", i), "secret", &e.Secret, e.SecretFile, e.SecretEnv, lookup); err != nil {
			return err
		}
	}
	return nil
}

// resolveSecret sets *value, the field called name under key, from file or
// from the environment variable env, whichever is set (at most one of the
// three may be).
func resolveSecret(key, name string, value *string, file, env string, lookup func(string) (string, bool)) error {
	sources := 0
	for _, set := range []bool{*value != "", file != "", env != ""} {
		if set {
			sources++
		}
	}
	if sources > 1 {
		return fmt.Errorf("%s: set one of %s, %[2]s_file and %[2]s_env", key, name)
	}
	switch {
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("%s.%s_file: %w", key, name, err)
		}
		// Secrets written with echo or by an editor end in a newline
		// that is not part of the secret.
		*value = strings.TrimRight(string(b), "\r\n")
	case env != "":
		v, ok := lookup(env)
		if !ok || v == "" {
			return fmt.Errorf("%s.%s_env: $%s is not set", key, name, env)
		}
		*value = v
	}
	return nil
}
