package config

import (
	"fmt"
	"os"
	"strings"
)

// resolveSecrets fills each upstream's password from its password_file or
// password_env, so the secret itself need not be in the config file. The
// errors name the key, never the secret.
func (c *Config) resolveSecrets(lookup func(string) (string, bool)) error {
	for i := range c.Proxy {
		u := &c.Proxy[i]
		key := fmt.Sprintf("proxy[%d]", i)
		sources := 0
		for _, set := range []bool{u.Password != "", u.PasswordFile != "", u.PasswordEnv != ""} {
			if set {
				sources++
			}
		}
		if sources > 1 {
			return fmt.Errorf("%s: set one of password, password_file and password_env", key)
		}
		switch {
		case u.PasswordFile != "":
			b, err := os.ReadFile(u.PasswordFile)
			if err != nil {
				return fmt.Errorf("%s.password_file: %w", key, err)
			}
			// Secrets written with echo or by an editor end in a newline
			// that is not part of the password.
			u.Password = strings.TrimRight(string(b), "\r\n")
		case u.PasswordEnv != "":
			v, ok := lookup(u.PasswordEnv)
			if !ok || v == "" {
				return fmt.Errorf("%s.password_env: $%s is not set", key, u.PasswordEnv)
			}
			u.Password = v
		}
	}
	return nil
}
