package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// SignatureHeader carries "sha256=" and the hex HMAC-SHA256 of the body
// under the endpoint's secret.
const SignatureHeader = "X-Kiln-Signature"

// Sign returns the value of SignatureHeader for body.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify reports whether sig is body's signature under secret, in
// constant time: what a receiver does.
func Verify(secret, body []byte, sig string) bool {
	return hmac.Equal([]byte(sig), []byte(Sign(secret, body)))
}
