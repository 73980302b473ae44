package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// TokenPath is where clients get bearer tokens when anonymous pull is on.
const TokenPath = "/kiln/v1/token"

// tokenTTL is how long a bearer token is valid; clients fetch a new one
// when it runs out.
const tokenTTL = 5 * time.Minute

// Why tokens: Docker, containers/image and go-containerregistry send Basic
// credentials only after a Basic challenge on GET /v2/, and they refuse
// to pull anonymously after one ("no basic auth credentials"). A Bearer
// challenge lets both through: a client without a login fetches an
// anonymous token, one with a login fetches a token for its user.

// tokenSigner makes and checks bearer tokens: a user name and expiry,
// HMAC-signed with a key made at start (restarts invalidate tokens).
type tokenSigner struct {
	key []byte
	now func() time.Time
}

func newTokenSigner() *tokenSigner {
	key := make([]byte, 32)
	rand.Read(key)
	return &tokenSigner{key: key, now: time.Now}
}

type tokenClaims struct {
	User    string `json:"u"`
	Expires int64  `json:"exp"`
}

func (s *tokenSigner) mac(payload string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// issue returns a token for user ("" is anonymous) and its expiry.
func (s *tokenSigner) issue(user string) (string, time.Time) {
	exp := s.now().Add(tokenTTL)
	b, _ := json.Marshal(tokenClaims{User: user, Expires: exp.Unix()})
	payload := base64.RawURLEncoding.EncodeToString(b)
	return payload + "." + base64.RawURLEncoding.EncodeToString(s.mac(payload)), exp
}

// verify returns the user of a valid, unexpired token.
func (s *tokenSigner) verify(token string) (string, error) {
	payload, sig, ok := strings.Cut(token, ".")
	if !ok {
		return "", errors.New("malformed token")
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac(payload)) {
		return "", errors.New("bad token signature")
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return "", errors.New("malformed token")
	}
	var c tokenClaims
	if err := json.Unmarshal(b, &c); err != nil {
		return "", errors.New("malformed token")
	}
	if s.now().Unix() >= c.Expires {
		return "", errors.New("token expired")
	}
	return c.User, nil
}
