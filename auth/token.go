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

// tokenSigner makes and checks bearer tokens: a user name, a fingerprint
// of the user's entry and an expiry, HMAC-signed with a key made at start
// (restarts invalidate tokens) or shared by a cluster's instances (each
// accepts the others'). The fingerprint lets a token be refused as soon as
// its user is removed or changes password.
type tokenSigner struct {
	key []byte
	now func() time.Time
}

// newTokenSigner signs with key, or with a random one when key is nil.
func newTokenSigner(key []byte) *tokenSigner {
	if key == nil {
		key = make([]byte, 32)
		rand.Read(key)
	}
	return &tokenSigner{key: key, now: time.Now}
}

type tokenClaims struct {
	User        string `json:"u"`
	Fingerprint string `json:"f,omitempty"`
	Expires     int64  `json:"exp"`
}

func (s *tokenSigner) mac(payload string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// fingerprint identifies a user's current entry (its hash, or for the
// internal user its password) without revealing it: it goes into tokens,
// which clients can read.
func (s *tokenSigner) fingerprint(user string, secret []byte) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte("entry\x00" + user + "\x00"))
	m.Write(secret)
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// issue returns a token for user ("" is anonymous) whose entry has
// fingerprint, and its expiry.
func (s *tokenSigner) issue(user, fingerprint string) (string, time.Time) {
	exp := s.now().Add(tokenTTL)
	b, _ := json.Marshal(tokenClaims{User: user, Fingerprint: fingerprint, Expires: exp.Unix()})
	payload := base64.RawURLEncoding.EncodeToString(b)
	return payload + "." + base64.RawURLEncoding.EncodeToString(s.mac(payload)), exp
}

// verify returns the claims of a valid, unexpired token.
func (s *tokenSigner) verify(token string) (tokenClaims, error) {
	payload, sig, ok := strings.Cut(token, ".")
	if !ok {
		return tokenClaims{}, errors.New("malformed token")
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac(payload)) {
		return tokenClaims{}, errors.New("bad token signature")
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return tokenClaims{}, errors.New("malformed token")
	}
	var c tokenClaims
	if err := json.Unmarshal(b, &c); err != nil {
		return tokenClaims{}, errors.New("malformed token")
	}
	if s.now().Unix() >= c.Expires {
		return tokenClaims{}, errors.New("token expired")
	}
	return c, nil
}
